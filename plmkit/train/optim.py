"""AdamW with decoupled weight decay on weight matrices only, and the learning-rate schedule.

The schedule is a pure function of the step, so a resumed run needs nothing but the step to
continue it exactly (no scheduler object to save).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

# Position tables are embeddings of positions, not features: decaying them pulls rarely seen
# far positions towards zero (GPT-2's wpe, BERT's position_embeddings, GLM's block positions,
# T5's relative attention bias).
NO_DECAY_NAME = re.compile(r"position|wpe|relative_attention_bias")


def decays(name: str, param: nn.Parameter) -> bool:
    """Whether weight decay applies: matrices yes; biases, norm gains and position tables no.

    >>> decays("h.0.mlp.fc.weight", nn.Parameter(torch.zeros(4, 4)))
    True
    >>> decays("h.0.ln_1.weight", nn.Parameter(torch.zeros(4))), decays("wpe.weight", nn.Parameter(torch.zeros(8, 4)))
    (False, False)
    """
    return param.ndim >= 2 and not NO_DECAY_NAME.search(name)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed matrices, then everything else (tied weights appear once)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if decays(name, param) else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with transformers' defaults (betas 0.9/0.999, eps 1e-8), fused where the device has it."""
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                             fused=fused or None)


def lr_at(step: int, *, lr: float, min_lr: float, warmup: int, total: int, schedule: str) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then decay to `min_lr`.

    Warm-up reaches `lr` on step `warmup` (step 0 trains at lr/warmup, not at 0, so no step is
    wasted); decay runs from there to `min_lr` at step `total`.

    >>> [round(lr_at(s, lr=1.0, min_lr=0.0, warmup=2, total=6, schedule="linear"), 2) for s in range(7)]
    [0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    >>> [round(lr_at(s, lr=1.0, min_lr=0.0, warmup=0, total=4, schedule="cosine"), 3) for s in range(5)]
    [1.0, 0.854, 0.5, 0.146, 0.0]
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return lr + (min_lr - lr) * progress
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
