"""Decoder skeleton: GPT, LLaMA (causal) and GLM (one stack over Part A + Part B, prefix mask).

Shape legend: B batch, T new tokens, S past + new tokens, C hidden size, V vocabulary.

Positions: `learned` (GPT), `sinusoidal` (fixed table, exported to HF as a learned one),
`rope` (LLaMA, rotate-half, applied to q and k) or `glm2d` (two learned tables added to the
word embeddings: `position_ids` and `block_position_ids`).

Incremental decoding (the interface the generation stage uses)::

    cache = model.new_cache(batch_size=B, max_length=prompt_len + max_new_tokens)
    out = model(prompt_ids, attention_mask=mask, cache=cache, num_last_logits=1)   # prefill
    while …:
        out = model(next_ids[:, None], attention_mask=mask_so_far, cache=cache, num_last_logits=1)

Each call appends to the preallocated cache and advances `cache.length`; positions default to
`cache.length + arange(T)` (pass `position_ids` for left-padded batches: cumsum(mask) - 1).
`attention_mask`, when given with a cache, covers past and new tokens: (B, S).
GLM: pass `sep`, `position_ids` and `block_position_ids` with the prefill (Part A + `[sop]`);
every later token is in Part B, which is causal, so later calls pass only the two position
rows (the [MASK]'s position, and 2, 3, … for the block position) and no `sep`.
"""

from __future__ import annotations

import torch
from torch import nn

from plmkit.models.blocks import (
    Block,
    KVCache,
    build_mask,
    init_weights,
    make_norm,
    maybe_dropout,
    rope_cos_sin,
    sinusoidal_table,
)
from plmkit.models.config import ModelConfig
from plmkit.models.heads import LMHead, ModelOutput, mask_padding, select_labelled, token_loss, total_loss


class DecoderModel(nn.Module):
    """`model(input_ids, attention_mask, labels | position_ids, block_position_ids, sep, cache)`.

    CLM (GPT, LLaMA): logits (B, T, V) (or the last `num_last_logits`); the loss predicts token
    t+1 from position t, on `labels` (default: `input_ids`, except in cached or
    `num_last_logits` calls, which return no loss) with padding ignored.
    GLM: `labels` are aligned with the inputs (-100 on Part A); like the MLM head, with labels and
    `full_logits=False` only the labelled positions are predicted, logits (N, V); without
    labels, logits (B, T, V) or the last `num_last_logits`.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        C = cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, C)
        if cfg.position in ("learned", "glm2d"):
            self.position = nn.Embedding(cfg.max_position_embeddings, C)
        if cfg.position == "glm2d":
            self.block_position = nn.Embedding(cfg.max_position_embeddings, C)
        if cfg.position == "sinusoidal":
            self.register_buffer("position_table", sinusoidal_table(cfg.max_position_embeddings, C), persistent=False)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_hidden_layers))
        self.final_norm = make_norm(cfg) if cfg.norm_placement == "pre" else None
        self.lm_head = LMHead(cfg)
        self._rope_table: tuple[torch.Tensor, torch.Tensor] | None = None   # cos, sin (P, D), see `rope`
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, 0.02); residual output projections N(0, 0.02/sqrt(2L)) as GPT-2 (keeps the stream's variance flat)."""
        cfg = self.cfg
        init_weights(self, cfg.initializer_range)
        if self.lm_head.weight is not None:
            nn.init.normal_(self.lm_head.weight, std=cfg.initializer_range)
        for layer in self.layers:
            for proj in (layer.attn.o, layer.mlp.down):
                nn.init.normal_(proj.weight, std=cfg.initializer_range / (2 * cfg.num_hidden_layers) ** 0.5)

    @property
    def output_weight(self) -> torch.Tensor:
        """The LM head's (V, C) weight: the word embeddings when tied."""
        return self.word.weight if self.lm_head.weight is None else self.lm_head.weight

    def new_cache(self, batch_size: int, max_length: int, dtype=None, device=None) -> KVCache:
        cfg, p = self.cfg, self.word.weight
        return KVCache(cfg.num_hidden_layers, batch_size, cfg.kv_heads, max_length, cfg.attn_head_dim,
                       dtype=dtype or p.dtype, device=device or p.device)

    def embed(self, input_ids, position_ids, block_position_ids) -> torch.Tensor:
        """Word + position embeddings. `position_ids`: (B, T), or a slice when every row sits at the
        same positions (learned/sinusoidal/rope only): rows of the table, (T, C), no gather."""
        x = self.word(input_ids)                                                  # (B, T, C)
        if self.cfg.position == "learned":
            x = x + self.position.weight[position_ids]
        elif self.cfg.position == "sinusoidal":
            x = x + self.position_table[position_ids]
        elif self.cfg.position == "glm2d":
            if block_position_ids is None:
                block_position_ids = torch.zeros_like(position_ids)
            x = x + self.position(position_ids) + self.block_position(block_position_ids)
        return maybe_dropout(self.drop, x)

    def rope(self, position_ids, S: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE's cos, sin for `position_ids` (as in `embed`), (B, 1, T, D) or (1, T, D) for a slice,
        looked up in a table of positions 0…S-1 at least.

        The table is `rope_cos_sin` of every position, computed once per device (and again if S
        exceeds it) instead of at every decode step; it is not a buffer, so it stays fp32 and
        out of the state dict.
        """
        cfg, table = self.cfg, self._rope_table
        if table is None or table[0].device != torch.device(device) or table[0].shape[0] < S:
            P = max(cfg.max_position_embeddings, S)
            positions = torch.arange(P, device=device)[None]
            cos, sin = rope_cos_sin(positions, cfg.attn_head_dim, cfg.rope_theta, torch.float32)  # (1, 1, P, D)
            table = self._rope_table = (cos[0, 0], sin[0, 0])
        return tuple(t[position_ids].unsqueeze(-3).to(dtype) for t in table)

    def forward(self, input_ids, attention_mask=None, labels=None, position_ids=None, block_position_ids=None,
                sep=None, cache: KVCache | None = None, full_logits=False, num_last_logits=0) -> ModelOutput:
        cfg = self.cfg
        B, T = input_ids.shape
        past = cache.length if cache is not None else 0
        S = past + T
        if position_ids is None and cfg.position == "glm2d":
            position_ids = torch.arange(past, S, device=input_ids.device).expand(B, T)
        elif position_ids is None:
            position_ids = slice(past, S)       # the same positions in every row: table rows, no index tensor
        x = self.embed(input_ids, position_ids, block_position_ids)
        rope = self.rope(position_ids, S, x.device, x.dtype) if cfg.position == "rope" else None
        padded = attention_mask is not None and not bool(attention_mask.all())
        kind = cfg.attention_mask if sep is not None else "causal"   # no sep: pure causal (GLM decoding steps)
        if kind == "causal" and not padded and (T == 1 or past == 0):
            mask, is_causal = None, T > 1       # SDPA's fused causal path; one new token sees everything
        else:
            mask, is_causal = build_mask(kind, attention_mask, T, S, input_ids.device, sep), False
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, is_causal, rope, cache, i)
        if cache is not None:
            cache.advance(T)
        if self.final_norm is not None:
            x = self.final_norm(x)
        if cfg.family == "glm":
            return self._glm_output(x, labels, attention_mask, full_logits, num_last_logits)
        # A clm shard is its own label: full-sequence calls always return the loss.
        if labels is None and cache is None and not num_last_logits:
            labels = input_ids
        return self._clm_output(x, labels, attention_mask, num_last_logits)

    def _clm_output(self, h, labels, attention_mask, num_last_logits) -> ModelOutput:
        logits = self.lm_head(h[:, -num_last_logits:] if num_last_logits else h, self.word.weight)
        losses = {}
        if labels is not None:
            # Shift the targets left (last position predicts nothing) instead of slicing the
            # logits: a (B, T-1, V) slice would be copied before the loss, forward and backward.
            targets = mask_padding(labels, attention_mask)[:, 1:]                       # (B, T-1)
            targets = torch.cat([targets, torch.full_like(targets[:, :1], -100)], dim=1)  # (B, T)
            losses["clm"] = token_loss(logits, targets)
        return ModelOutput(loss=total_loss(losses), logits=logits, losses=losses)

    def _glm_output(self, h, labels, attention_mask, full_logits, num_last_logits) -> ModelOutput:
        losses = {}
        if labels is None and num_last_logits:
            h = h[:, -num_last_logits:]                                             # decoding: (B, n, C)
        if labels is not None and not full_logits:
            h, targets = select_labelled(h, mask_padding(labels, attention_mask))     # (N, C), (N,)
        else:
            targets = None if labels is None else mask_padding(labels, attention_mask)
        logits = self.lm_head(h, self.word.weight)
        if targets is not None:
            losses["glm"] = token_loss(logits, targets)
        return ModelOutput(loss=total_loss(losses), logits=logits, losses=losses)
