"""Small heads on top of the skeletons, each with the loss of its objective beside it.

Shape legend: B batch, T length, C hidden size, E embedding size, V vocabulary, N labelled tokens.
Every loss ignores label -100; padding never carries a label (the skeletons set it to -100).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.models.blocks import ACTIVATIONS
from plmkit.models.config import ModelConfig

IGNORE = -100


@dataclass
class ModelOutput:
    """What every plmkit model returns.

    loss:   sum of `losses`, or None when no labels were given.
    logits: the main head's logits (see each skeleton's docstring for their shape).
    losses: each objective's loss by name, e.g. {"mlm": …, "nsp": …}.
    extra:  other outputs, e.g. "nsp_logits", "sop_logits", "hidden_states", "encoder_outputs".
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    losses: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


def total_loss(losses: dict) -> torch.Tensor | None:
    return sum(losses.values()) if losses else None


def token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over targets != -100; 0 (still differentiable) when there are none."""
    logits, targets = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    # sum / count instead of mean: no host sync, and no 0/0 when nothing is labelled
    total = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="sum")
    return total / (targets != IGNORE).sum().clamp(min=1)


def select_labelled(h: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states and targets of the labelled positions only, in row-major order.

    Predicting 15% of positions instead of all of them makes an MLM head ~6× cheaper.
    h: (B, T, C), labels: (B, T) -> (N, C), (N,)
    """
    keep = labels != IGNORE
    return h[keep], labels[keep]


def mask_padding(labels: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """labels with -100 wherever attention_mask is 0, so padding never counts."""
    if attention_mask is None:
        return labels
    return labels.masked_fill(attention_mask == 0, IGNORE)


class MLMHead(nn.Module):
    """BERT/RoBERTa/ALBERT: dense(C→E) → act → LayerNorm(E) → tied decoder (E→V) with its own bias."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        E = cfg.embed_dim
        self.dense = nn.Linear(cfg.hidden_size, E)
        self.act = ACTIVATIONS[cfg.head_activation]
        self.norm = nn.LayerNorm(E, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(self.norm(self.act(self.dense(h))), word_embeddings, self.bias)   # (…, V)


class PairHead(nn.Module):
    """NSP (BERT) / SOP (ALBERT): tanh pooler on the first token, then a 2-way classifier."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.classifier = nn.Linear(cfg.hidden_size, 2)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.pooler(h[:, 0]))                 # (B, C)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(self.pool(h)))         # (B, 2)


class LMHead(nn.Module):
    """Decoder output layer: tied to the word embeddings (no bias) or its own Linear(C→V).

    `scale` multiplies the hidden state first (T5 v1.0 tied head: d_model**-0.5).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.weight = None if cfg.tie_word_embeddings else nn.Parameter(torch.empty(cfg.vocab_size, cfg.hidden_size))
        self.scale = cfg.hidden_size ** -0.5 if cfg.scale_decoder_outputs else None

    def forward(self, h: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            h = h * self.scale
        return F.linear(h, word_embeddings if self.weight is None else self.weight)   # (…, V)
