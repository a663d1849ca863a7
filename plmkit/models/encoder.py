"""Encoder skeleton: BERT, RoBERTa, ALBERT (bidirectional, post-norm, MLM + optional NSP/SOP).

Shape legend: B batch, T length, C hidden size, E embedding size (ALBERT: E < C), V vocabulary.

Embeddings are word + position (+ token type), LayerNorm and dropout at width E, then a
Linear(E→C) when `embedding_size` is set (ALBERT). ALBERT runs `num_hidden_groups` layer sets, layer i using
set ⌊i·G/L⌋; with G=1 one set of weights is applied L times.
"""

from __future__ import annotations

import torch
from torch import nn

from plmkit.models.blocks import Block, build_mask, init_weights
from plmkit.models.config import ModelConfig
from plmkit.models.heads import (
    MLMHead,
    ModelOutput,
    PairHead,
    mask_padding,
    select_labelled,
    token_loss,
    total_loss,
)


class EncoderModel(nn.Module):
    """`model(input_ids, attention_mask, token_type_ids, labels, next_sentence_label | sentence_order_label)`.

    logits: with `labels` and `full_logits=False` (the default; 6× cheaper for 15% masking) only
    the labelled positions are predicted, shape (N, V) in row-major order, i.e. aligned with
    `labels[labels != -100]`; otherwise (B, T, V). extra["nsp_logits"] / ["sop_logits"]: (B, 2).
    `special_tokens_mask` (a column of mlm shards, used by dynamic masking) is accepted and ignored.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        E, C = cfg.embed_dim, cfg.hidden_size
        self.word = nn.Embedding(cfg.vocab_size, E, padding_idx=cfg.pad_token_id)
        self.position = nn.Embedding(cfg.max_position_embeddings, E)
        self.token_type = nn.Embedding(cfg.type_vocab_size, E) if cfg.type_vocab_size else None
        self.embed_norm = nn.LayerNorm(E, eps=cfg.layer_norm_eps)
        self.embed_proj = nn.Linear(E, C) if cfg.embedding_size else None   # ALBERT keeps it even when E == C
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.groups))
        self.mlm_head = MLMHead(cfg)
        self.pair_objective = next((o for o in cfg.objectives if o in ("nsp", "sop")), None)
        self.pair_head = PairHead(cfg) if self.pair_objective else None
        init_weights(self, cfg.initializer_range)
        with torch.no_grad():
            self.word.weight[cfg.pad_token_id].zero_()

    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """0..T-1; with `position_offset` (RoBERTa) real tokens count from the offset and pads get offset-1.

        >>> ids = [[5, 6, 1, 1]] with pad 1, offset 2  ->  [[2, 3, 1, 1]]
        """
        B, T = input_ids.shape
        offset = self.cfg.position_offset
        if not offset:
            return torch.arange(T, device=input_ids.device).expand(B, T)
        real = (input_ids != self.cfg.pad_token_id).long()
        return torch.cumsum(real, dim=1) * real + (offset - 1)

    def encode(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """Final hidden states (B, T, C)."""
        x = self.word(input_ids) + self.position(self.positions(input_ids))     # (B, T, E)
        if self.token_type is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.token_type(token_type_ids)
        x = self.drop(self.embed_norm(x))
        if self.embed_proj is not None:
            x = self.embed_proj(x)                                               # (B, T, C)
        T = input_ids.shape[1]
        mask = build_mask("bidirectional", attention_mask, T, T, input_ids.device)
        L, G = self.cfg.num_hidden_layers, self.cfg.groups
        for i in range(L):
            x = self.layers[i * G // L](x, mask)
        return x

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None,
                next_sentence_label=None, sentence_order_label=None, special_tokens_mask=None,
                full_logits=False) -> ModelOutput:
        h = self.encode(input_ids, attention_mask, token_type_ids)
        losses, extra = {}, {}
        if labels is not None and not full_logits:
            h_mlm, targets = select_labelled(h, mask_padding(labels, attention_mask))   # (N, C), (N,)
        else:
            h_mlm, targets = h, labels
        logits = self.mlm_head(h_mlm, self.word.weight)
        if labels is not None:
            losses["mlm"] = token_loss(logits, mask_padding(targets, attention_mask) if full_logits else targets)
        if self.pair_head is not None:
            pair_logits = self.pair_head(h)                                      # (B, 2)
            extra[f"{self.pair_objective}_logits"] = pair_logits
            pair_label = next_sentence_label if self.pair_objective == "nsp" else sentence_order_label
            if pair_label is not None:
                losses[self.pair_objective] = token_loss(pair_logits, pair_label.reshape(-1))
        return ModelOutput(loss=total_loss(losses), logits=logits, losses=losses, extra=extra)
