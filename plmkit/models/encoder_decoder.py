"""Encoder-decoder skeleton: T5 v1.0 and v1.1.

Shape legend: B batch, S encoder length, T new decoder tokens, P past + new decoder tokens,
A heads, C d_model, V vocabulary.

Pre-RMSNorm blocks without biases; no score scaling (T5 folds 1/sqrt(d) into the q init); one
relative-position bias per stack (bidirectional buckets in the encoder, causal ones in the
decoder), computed once and shared by every layer; cross-attention has none. v1.0 ties the
output layer to the shared embedding and scales the decoder output by d_model**-0.5; v1.1
(gated GELU) has its own untied `lm_head`.

Incremental decoding (the interface the generation stage uses)::

    enc = model.encode(input_ids, attention_mask)                    # (B, S, C), once
    cache = model.new_cache(batch_size=B, max_length=max_new_tokens + 1)
    ids = torch.full((B, 1), model.cfg.decoder_start_token_id or pad)
    out = model(decoder_input_ids=ids, encoder_outputs=enc, attention_mask=attention_mask, cache=cache)
    …  # then feed each new token (B, 1) with the same encoder_outputs, attention_mask and cache

The cache keeps the decoder's self-attention K/V and, after the first call, the cross-attention
K/V of `encoder_outputs`.
"""

from __future__ import annotations

import torch
from torch import nn

from plmkit.models.blocks import (
    Block,
    KVCache,
    RMSNorm,
    additive,
    build_mask,
    make_norm,
    maybe_dropout,
    relative_buckets,
)
from plmkit.models.config import ModelConfig
from plmkit.models.heads import IGNORE, LMHead, ModelOutput, mask_padding, token_loss, total_loss


class EncoderDecoderModel(nn.Module):
    """`model(input_ids, attention_mask, labels | decoder_input_ids, decoder_attention_mask)`.

    `labels` (B, T) are the targets; decoder inputs are the labels shifted right with
    `decoder_start_token_id` (default: pad), -100 replaced by pad. logits: (B, T, V).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.encoder_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_attention_heads)
        self.encoder_layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.encoder_norm = make_norm(cfg)
        self.decoder_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_attention_heads)
        self.decoder_layers = nn.ModuleList(Block(cfg, cross=True) for _ in range(cfg.decoder_layers))
        self.decoder_norm = make_norm(cfg)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)
        self.lm_head = LMHead(cfg)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """HF T5 init with factor f = initializer_range: q ~ N(0, f/sqrt(C·D)), k, v, wi ~ N(0, f/sqrt(C)), …"""
        cfg = self.cfg
        f, C, D, A, F_ = cfg.initializer_range, cfg.hidden_size, cfg.attn_head_dim, cfg.num_attention_heads, \
            cfg.intermediate_size
        nn.init.normal_(self.shared.weight, std=f)
        if self.lm_head.weight is not None:
            nn.init.normal_(self.lm_head.weight, std=f)
        for table in (self.encoder_bias, self.decoder_bias):
            nn.init.normal_(table.weight, std=f * C ** -0.5)
        for module in self.modules():
            if isinstance(module, RMSNorm):
                nn.init.constant_(module.weight, f)
        for block in [*self.encoder_layers, *self.decoder_layers]:
            for attn in filter(None, (block.attn, block.cross_attn)):
                if attn.cross:
                    nn.init.normal_(attn.q.weight, std=f * (C * D) ** -0.5)
                    nn.init.normal_(attn.kv.weight, std=f * C ** -0.5)
                else:
                    nn.init.normal_(attn.qkv.weight, std=f * C ** -0.5)
                    nn.init.normal_(attn.qkv.weight[: A * D], std=f * (C * D) ** -0.5)
                nn.init.normal_(attn.o.weight, std=f * (A * D) ** -0.5)
            nn.init.normal_(block.mlp.up.weight, std=f * C ** -0.5)
            nn.init.normal_(block.mlp.down.weight, std=f * F_ ** -0.5)

    @property
    def output_weight(self) -> torch.Tensor:
        """The LM head's (V, C) weight: the shared embeddings when tied (v1.0)."""
        return self.shared.weight if self.lm_head.weight is None else self.lm_head.weight

    def new_cache(self, batch_size: int, max_length: int, dtype=None, device=None) -> KVCache:
        cfg, p = self.cfg, self.shared.weight
        return KVCache(cfg.decoder_layers, batch_size, cfg.num_attention_heads, max_length, cfg.attn_head_dim,
                       dtype=dtype or p.dtype, device=device or p.device)

    def position_bias(self, table: nn.Embedding, T: int, P: int, bidirectional: bool, device) -> torch.Tensor:
        """(1, A, T, P) bias for the last T of P query positions against all P keys."""
        q_pos = torch.arange(P - T, P, device=device)[:, None]
        k_pos = torch.arange(P, device=device)[None, :]
        buckets = relative_buckets(k_pos - q_pos, bidirectional, self.cfg.relative_attention_num_buckets,
                                   self.cfg.relative_attention_max_distance)        # (T, P)
        return table(buckets).permute(2, 0, 1)[None]                                # (1, A, T, P)

    def encode(self, input_ids, attention_mask=None) -> torch.Tensor:
        """Encoder output (B, S, C)."""
        S = input_ids.shape[1]
        x = self.drop(self.shared(input_ids))
        bias = self.position_bias(self.encoder_bias, S, S, True, input_ids.device)
        pad = additive(build_mask("bidirectional", attention_mask, S, S, input_ids.device), x.dtype)
        mask = (bias if pad is None else bias + pad).to(x.dtype)                  # (B or 1, A, S, S)
        for layer in self.encoder_layers:
            x = layer(x, mask)
        return self.drop(self.encoder_norm(x))

    def shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """[[5, 6, 1, -100]] -> [[start, 5, 6, 1]] (start = pad by default; -100 -> pad)."""
        start = self.cfg.decoder_start_token_id
        start = self.cfg.pad_token_id if start is None else start
        shifted = torch.cat([torch.full_like(labels[:, :1], start), labels[:, :-1]], dim=1)
        return shifted.masked_fill(shifted == IGNORE, self.cfg.pad_token_id)

    def decode(self, decoder_input_ids, memory, attention_mask=None, decoder_attention_mask=None,
               cache: KVCache | None = None) -> torch.Tensor:
        """Decoder output after the final norm (B, T, C)."""
        B, T = decoder_input_ids.shape
        past = cache.length if cache is not None else 0
        P, device = past + T, decoder_input_ids.device
        y = maybe_dropout(self.drop, self.shared(decoder_input_ids))
        bias = self.position_bias(self.decoder_bias, T, P, False, device)
        causal = additive(build_mask("causal", decoder_attention_mask, T, P, device), y.dtype)
        self_mask = bias + causal                                                   # (B or 1, A, T, P)
        S = memory.shape[1]
        memory_mask = additive(build_mask("bidirectional", attention_mask, T, S, device), y.dtype)  # (B, 1, 1, S)
        for i, layer in enumerate(self.decoder_layers):
            y = layer(y, self_mask, cache=cache, layer=i, memory=memory, memory_mask=memory_mask)
        if cache is not None:
            cache.advance(T)
        return maybe_dropout(self.drop, self.decoder_norm(y))

    def forward(self, input_ids=None, attention_mask=None, labels=None, decoder_input_ids=None,
                decoder_attention_mask=None, encoder_outputs=None, cache: KVCache | None = None) -> ModelOutput:
        memory = self.encode(input_ids, attention_mask) if encoder_outputs is None else encoder_outputs
        if decoder_input_ids is None:
            assert labels is not None, "T5 needs labels or decoder_input_ids"
            decoder_input_ids = self.shift_right(labels)
        h = self.decode(decoder_input_ids, memory, attention_mask, decoder_attention_mask, cache)
        logits = self.lm_head(h, self.shared.weight)                               # (B, T, V)
        losses = {}
        if labels is not None:
            losses["t5-span"] = token_loss(logits, mask_padding(labels, decoder_attention_mask))
        return ModelOutput(loss=total_loss(losses), logits=logits, losses=losses, extra={"encoder_outputs": memory})
