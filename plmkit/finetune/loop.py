"""`finetune(FinetuneConfig(...))`: a pretrained RUN/ + labelled files → FT/.

    read RUN (manifest, model, tokenizer) → read --train/--validation, label map from --train →
    encode → backbone + head → for each epoch: shuffled batches, AdamW steps (warm-up, then linear
    decay to 0), evaluate every --eval-every steps and at each epoch's end → the best evaluation's
    weights in FT/model.safetensors; stop after --patience evaluations without improvement.

The optimizer and schedule are the pretraining loop's (`plmkit.train.optim`): AdamW without
decay on biases, norms and position tables. Everything is seeded, so the same inputs and seed
give the same FT/ on CPU. FT/ is built under a temporary name (`staging_dir`), so an
interrupted run leaves nothing that looks finished.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from plmkit.errors import PlmkitError
from plmkit.finetune.config import METRICS, FinetuneConfig
from plmkit.finetune.data import Features, check_known, collate, label_names, read_examples
from plmkit.finetune.heads import FinetuneModel, head_kind
from plmkit.finetune.inference import STAGE, build_finetune_model, context_length, infer, score, text_encoder
from plmkit.finetune.metrics import OUTSIDE
from plmkit.manifest import describe_file, read_manifest, staging_dir, write_manifest
from plmkit.progress import NULL, Progress
from plmkit.train.metrics import MetricsLog
from plmkit.train.optim import build_optimizer, lr_at, set_lr


def default_metric(task: str, labels: list[str]) -> str:
    """classify: accuracy; label-tokens: entity F1 when the tags are BIO (B-X/I-X/O), else token F1."""
    if task == "classify":
        return "accuracy"
    bio = all(t == OUTSIDE or (len(t) > 2 and t[1] == "-" and t[0] in "BI") for t in labels)
    return "entity_f1" if bio and any(t != OUTSIDE for t in labels) else "token_f1"


@dataclass
class Prepared:
    """Everything read before training: the run, its model and tokenizer, the encoded files."""

    run: dict
    backbone: torch.nn.Module
    model_cfg: Any
    tokenizer: Any
    labels: list[str]
    train: Features
    validation: Features
    inputs: list[dict]


def prepare(cfg: FinetuneConfig) -> Prepared:
    """Read and check RUN and both files; a mistake in any of them stops here, before any training."""
    from plmkit.models import WEIGHTS_NAME, load_model
    from plmkit.tokenization import load_tokenizer

    run = read_manifest(cfg.run, "run", flag="RUN")
    if not (Path(cfg.run) / WEIGHTS_NAME).is_file():
        raise PlmkitError(f"RUN {cfg.run} has no {WEIGHTS_NAME}: the run has no final weights",
                          hint="let `plmkit train` finish (or resume it with --resume)")
    tok = load_tokenizer(Path(cfg.run) / "tokenizer", flag="RUN's")
    backbone, model_cfg = load_model(cfg.run, flag="RUN")
    head_kind(model_cfg.family, cfg.task)
    train = read_examples(cfg.train, task=cfg.task, fields=cfg.fields, flag="--train", fmt=cfg.format)
    validation = read_examples(cfg.validation, task=cfg.task, fields=cfg.fields, flag="--validation", fmt=cfg.format)
    labels = label_names(train)
    if cfg.task == "classify" and len(labels) < 2:
        raise PlmkitError(f"--train {cfg.train} has only one label ({labels[0]!r})",
                          hint="a classifier needs examples of at least two labels")
    check_known(validation, labels, cfg.validation, "--validation")
    encoder = text_encoder(tok, model_cfg, cfg.task, labels, cfg.max_seq_len)
    return Prepared(run, backbone, model_cfg, tok, labels, encoder.encode(train), encoder.encode(validation),
                    [describe_file(cfg.train), describe_file(cfg.validation)])


class Finetuner:
    """One fine-tuning run: `Finetuner(cfg, prepared, out_dir, progress).run()` → summary dict."""

    def __init__(self, cfg: FinetuneConfig, p: Prepared, out: Path, progress: Progress):
        from plmkit.train.distributed import resolve_device

        self.cfg, self.p, self.out, self.progress = cfg, p, out, progress
        self.device = resolve_device(cfg.device)
        self.metric = cfg.metric or default_metric(cfg.task, p.labels)
        torch.manual_seed(cfg.seed)                           # the head's initial weights and dropout
        self.model: FinetuneModel = build_finetune_model(p.backbone, p.model_cfg, cfg.task, p.labels,
                                                         p.tokenizer).to(self.device)
        self.optimizer = build_optimizer(self.model, cfg.lr, cfg.weight_decay)
        self.per_epoch = math.ceil(len(p.train) / cfg.batch_size)
        self.total = self.per_epoch * cfg.epochs
        self.warmup = cfg.warmup if cfg.warmup is not None else round(0.1 * self.total)
        self.pad_id = p.tokenizer.id("pad")
        self.log = MetricsLog(out / "metrics.jsonl")
        self.step, self.epoch, self.bad_evals = 0, 0, 0
        self.best: dict[str, Any] | None = None

    def run(self) -> dict[str, Any]:
        cfg, t0 = self.cfg, time.monotonic()
        order = torch.Generator().manual_seed(cfg.seed)
        self.progress.start("finetune", total=self.total, unit="steps")
        stopped = False
        while self.epoch < cfg.epochs and not stopped:
            self.epoch += 1
            perm = torch.randperm(len(self.p.train), generator=order).tolist()
            for start in range(0, len(perm), cfg.batch_size):
                loss, grad_norm = self.train_step(perm[start:start + cfg.batch_size])
                if self.step % cfg.log_every == 0 or self.step == self.total:
                    self.log.write({"step": self.step, "epoch": self.epoch, "loss": loss,
                                    "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm})
                self.progress.update(1, loss=round(loss, 4))
                end_of_epoch = start + cfg.batch_size >= len(perm)
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or end_of_epoch:
                    stopped = self.evaluate()
                    if stopped:
                        break
        self.progress.finish()
        if stopped:
            self.progress.log(f"stopped early at step {self.step}: {self.metric} did not improve in "
                              f"{cfg.patience} evaluations")
        return {"steps": self.step, "epochs": self.epoch, "stopped_early": stopped, "metric": self.metric,
                "best": self.best, "elapsed_s": round(time.monotonic() - t0, 3)}

    def train_step(self, rows: list[int]) -> tuple[float, float]:
        self.model.train()
        set_lr(self.optimizer, lr_at(self.step, lr=self.cfg.lr, min_lr=0.0, warmup=self.warmup, total=self.total,
                                     schedule="linear"))
        batch = {k: v.to(self.device) for k, v in collate(self.p.train, rows, self.pad_id).items()}
        loss = self.model(**batch).loss
        loss.backward()
        max_norm = self.cfg.clip if self.cfg.clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise PlmkitError(f"fine-tuning diverged at step {self.step} (loss {value})",
                              hint="lower --lr or raise --warmup")
        return value, float(grad_norm)

    def evaluate(self) -> bool:
        """Score the validation file; keep the weights when they are the best so far. True = stop now."""
        probs, loss = infer(self.model, self.p.validation, batch_size=self.cfg.batch_size, pad_id=self.pad_id,
                            device=self.device)
        result = score(self.cfg.task, self.p.labels, self.p.validation, probs, loss)
        scalars = {k: v for k, v in result.items() if isinstance(v, float)}
        self.log.write({"step": self.step, "epoch": self.epoch, **{f"eval_{k}": v for k, v in scalars.items()}})
        value = result[self.metric]
        better = self.best is None or (value < self.best["value"] if self.metric == "loss"
                                       else value > self.best["value"])
        self.progress.log(f"step {self.step} (epoch {self.epoch}): validation {self.metric} {value:.4f}"
                          + (" (best so far)" if better else ""))
        if better:
            from safetensors.torch import save_model

            save_model(self.model, str(self.out / "model.safetensors"), metadata={"format": "pt"})
            self.best = {"step": self.step, "epoch": self.epoch, "value": value, "eval": result}
            self.bad_evals = 0
            return False
        self.bad_evals += 1
        return bool(self.cfg.patience) and self.bad_evals >= self.cfg.patience


def finetune(cfg: FinetuneConfig, progress: Progress = NULL, *, force: bool = False) -> dict[str, Any]:
    """Fine-tune RUN on the labelled files of `cfg` into `cfg.out`; returns the run's summary."""
    from plmkit.models import CONFIG_NAME

    cfg.validate()
    p = prepare(cfg)
    with staging_dir(cfg.out, force=force, flag="--out") as tmp:
        summary = Finetuner(cfg, p, tmp, progress).run()
        (tmp / CONFIG_NAME).write_text((Path(cfg.run) / CONFIG_NAME).read_text())
        p.tokenizer.save(tmp / "tokenizer")
        best = summary["best"]
        text, pair, label = cfg.fields
        write_manifest(tmp, STAGE, params=cfg.to_dict(), inputs=p.inputs, upstream=p.run, task=cfg.task,
                       family=p.model_cfg.family, head=head_kind(p.model_cfg.family, cfg.task), labels=p.labels,
                       fields={"text": text, "pair": pair, "label": label},
                       max_seq_len=min(cfg.max_seq_len, context_length(p.model_cfg)),
                       counts={"train": len(p.train), "validation": len(p.validation)},
                       metric=summary["metric"], best={k: best[k] for k in ("step", "epoch", "value")},
                       steps=summary["steps"], eval=best["eval"])
    return {**summary, "out": str(cfg.out), "labels": p.labels, "task": cfg.task, "family": p.model_cfg.family}


__all__ = ["METRICS", "FinetuneConfig", "default_metric", "finetune", "prepare"]
