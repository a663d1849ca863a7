"""Held-out metrics for every objective: loss, perplexity and the accuracy that objective predicts.

| objective | token metric (over labelled tokens) | sentence metric |
|---|---|---|
| mlm, nsp, sop | `mlm_accuracy` at the masked positions | `nsp_accuracy` / `sop_accuracy` |
| t5-span | `token_accuracy` over the target tokens (sentinels, span tokens, EOS) | |
| glm | `span_accuracy` over the Part B tokens | |
| clm | `next_token_accuracy` | |

`loss` is what training minimises: the token loss averaged over all labelled tokens of the split
(not over batches), plus the sentence loss averaged over rows; `perplexity` = exp(token loss).
Sums are accumulated as float64 and summed over ranks before dividing, so the result does not
depend on the batch size or the number of processes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.errors import PlmkitError

IGNORE = -100

TOKEN_ACCURACY = {"mlm": "mlm_accuracy", "nsp": "mlm_accuracy", "sop": "mlm_accuracy",
                  "t5-span": "token_accuracy", "glm": "span_accuracy", "clm": "next_token_accuracy"}
PAIR_TASK = {"nsp": "next_sentence_label", "sop": "sentence_order_label"}
SUMS = ("token_loss", "tokens", "token_correct", "pair_loss", "pairs", "pair_correct", "rows")


def token_targets(objective: str, logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(predictions' logits (N, V), targets (N,)) for the labelled tokens, however the model laid them out.

    Encoder and GLM models return logits for the labelled positions only (N, V) in row-major
    order; CLM logits at position t predict the token at t+1; T5 logits align with `labels`.
    """
    labels = batch["labels"]
    if objective != "t5-span" and "attention_mask" in batch:
        labels = labels.masked_fill(batch["attention_mask"] == 0, IGNORE)
    if objective == "clm":
        logits, labels = logits[:, :-1], labels[:, 1:]
    labels = labels.reshape(-1)
    keep = labels != IGNORE
    if logits.dim() == 2:  # already the labelled positions only
        return logits, labels[keep]
    return logits.reshape(-1, logits.shape[-1])[keep], labels[keep]


def batch_sums(objective: str, batch: dict, out) -> dict[str, float]:
    """Loss sums, counts and correct predictions of one batch."""
    sums = dict.fromkeys(SUMS, 0.0)
    logits, targets = token_targets(objective, out.logits, batch)
    if targets.numel():
        sums["token_loss"] = float(F.cross_entropy(logits.float(), targets, reduction="sum"))
        sums["token_correct"] = float((logits.argmax(-1) == targets).sum())
    sums["tokens"] = float(targets.numel())
    sums["rows"] = float(batch["input_ids"].shape[0])
    if objective in PAIR_TASK:
        pair_logits, pair_labels = out.extra[f"{objective}_logits"], batch[PAIR_TASK[objective]].reshape(-1)
        sums["pair_loss"] = float(F.cross_entropy(pair_logits.float(), pair_labels, reduction="sum"))
        sums["pair_correct"] = float((pair_logits.argmax(-1) == pair_labels).sum())
        sums["pairs"] = float(pair_labels.numel())
    return sums


def finish(objective: str, sums: dict[str, float]) -> dict[str, float]:
    """Divide the summed figures into the reported metrics."""
    token_loss = sums["token_loss"] / sums["tokens"] if sums["tokens"] else float("nan")
    result = {"loss": token_loss}
    if objective in PAIR_TASK:
        result["mlm_loss"] = token_loss
        pair_loss = sums["pair_loss"] / sums["pairs"] if sums["pairs"] else float("nan")
        result[f"{objective}_loss"] = pair_loss
        result["loss"] = token_loss + pair_loss
    result["perplexity"] = math.exp(min(token_loss, 700.0)) if math.isfinite(token_loss) else float("nan")
    result[TOKEN_ACCURACY[objective]] = sums["token_correct"] / sums["tokens"] if sums["tokens"] else float("nan")
    if objective in PAIR_TASK:
        result[f"{objective}_accuracy"] = sums["pair_correct"] / sums["pairs"] if sums["pairs"] else float("nan")
    result["tokens"] = int(sums["tokens"])
    result["examples"] = int(sums["rows"])
    return result


@torch.no_grad()
def evaluate(model: nn.Module, batches: Iterable[tuple[dict, bool]], objective: str, device: torch.device,
             autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
             reduce: Callable[[list[float]], list[float]] | None = None) -> dict[str, float]:
    """Metrics of `model` over `batches` of (batch, counted) pairs.

    `counted=False` batches are run but not counted: under FSDP every rank must run the same
    number of forward passes. `reduce` sums the figures over ranks.
    """
    was_training = model.training
    model.eval()
    totals = dict.fromkeys(SUMS, 0.0)
    try:
        for batch, counted in batches:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with autocast():
                out = model(**batch)
            if counted:
                for key, value in batch_sums(objective, batch, out).items():
                    totals[key] += value
    finally:
        model.train(was_training)
    if reduce is not None:
        totals = dict(zip(SUMS, reduce([totals[k] for k in SUMS]), strict=True))
    return finish(objective, totals)


def evaluate_run(run: str | Path, data: str | Path, split: str = "validation", *, batch_size: int = 32,
                 device: str = "auto", precision: str = "fp32") -> dict[str, Any]:
    """Metrics of a finished run's model on one split of a DATA directory built with its tokenizer."""
    from plmkit.data.collate import collator_for
    from plmkit.data.loader import check_objective, eval_batches, open_data
    from plmkit.manifest import read_manifest
    from plmkit.models import load_model
    from plmkit.tokenization import load_tokenizer
    from plmkit.train.distributed import resolve_device

    if batch_size <= 0:
        raise PlmkitError(f"--batch-size must be a number > 0, got {batch_size}")
    if precision not in ("fp32", "bf16"):
        raise PlmkitError(f"--precision must be one of fp32, bf16, got {precision!r}")
    manifest = read_manifest(run, "run", flag="RUN")
    shards = open_data(data)
    run_tok = load_tokenizer(Path(run) / "tokenizer", flag="RUN")
    if run_tok.fingerprint != shards.tokenizer.fingerprint:
        raise PlmkitError(f"--data {data} was built with a different tokenizer than RUN {run} was trained with",
                          hint=f"build shards with `plmkit build-data … --tokenizer {Path(run) / 'tokenizer'}`")
    model, cfg = load_model(run, flag="RUN")
    check_objective(cfg.family, shards.objective)
    if split not in ("train", "validation") or not (shards.path / split).is_dir():
        raise PlmkitError(f"--split {split}: {shards.path} has no such split", hint="use train or validation")
    target = shards.split(split)
    if len(target) == 0:
        raise PlmkitError(f"--split {split} of {shards.path} is empty", hint="evaluate on another split")
    dev = resolve_device(device)
    collate = collator_for(shards, int(manifest["params"].get("seed", 0)))
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
    metrics = evaluate(model.to(dev), eval_batches(target, collate, batch_size), shards.objective, dev, autocast)
    return {"run": str(Path(run)), "data": str(shards.path), "split": split, "objective": shards.objective,
            "family": cfg.family, **metrics}
