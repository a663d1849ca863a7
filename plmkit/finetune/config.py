"""The settings of one fine-tuning run (`plmkit finetune`), their defaults and their checks.

No torch here: the CLI reads this module to build its flags without loading the library.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from plmkit.errors import PlmkitError

TASKS = ("classify", "label-tokens")
FORMATS = ("auto", "csv", "tsv", "jsonl", "conll")

# Validation metrics each task can select the best checkpoint by; the first is the default.
# label-tokens defaults to entity F1 when its tags are BIO-like, token F1 otherwise (see `default_metric`).
METRICS = {"classify": ("accuracy", "macro_f1", "loss"),
           "label-tokens": ("entity_f1", "token_f1", "accuracy", "loss")}

# Field names a file uses when the flags do not say (Hugging Face dataset conventions).
DEFAULT_FIELDS = {"classify": ("text", "label"), "label-tokens": ("tokens", "tags")}


@dataclass
class FinetuneConfig:
    run: str = ""
    task: str = "classify"
    train: str = ""
    validation: str = ""
    out: str = ""
    text_field: str | None = None       # None: "text" (classify) / "tokens" (label-tokens)
    text_pair_field: str | None = None  # sentence pairs: the second text
    label_field: str | None = None      # None: "label" (classify) / "tags" (label-tokens)
    format: str = "auto"                # by extension: .csv .tsv .jsonl/.json/.ndjson .conll/.iob/.bio/.txt
    lr: float = 3e-4                    # small BERTs (Turc et al. 2019) fine-tune best at 1e-4 … 3e-4
    epochs: int = 3
    batch_size: int = 32
    warmup: int | None = None           # steps; None: 10% of the run
    weight_decay: float = 0.01
    clip: float = 1.0
    max_seq_len: int = 128
    metric: str | None = None           # None: the task's default (see METRICS)
    patience: int = 3                   # evaluations without improvement before stopping; 0 = never stop early
    eval_every: int = 0                 # steps between evaluations; 0 = once per epoch
    log_every: int = 10
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def fields(self) -> tuple[str, str | None, str]:
        """(text field, pair field, label field) with the task's defaults filled in."""
        text, label = DEFAULT_FIELDS[self.task]
        return self.text_field or text, self.text_pair_field, self.label_field or label

    def validate(self) -> None:
        """Raise a PlmkitError naming the first flag whose value cannot work."""
        if self.task not in TASKS:
            raise PlmkitError(f"--task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.format not in FORMATS:
            raise PlmkitError(f"--format {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.metric is not None and self.metric not in METRICS[self.task]:
            raise PlmkitError(f"--metric {self.metric!r} does not apply to --task {self.task}",
                              hint=f"choose one of {', '.join(METRICS[self.task])}")
        if self.task == "label-tokens" and self.text_pair_field:
            raise PlmkitError("--text-pair-field applies to --task classify only",
                              hint="label-tokens labels the words of one text")
        _positive("--lr", self.lr)
        _at_least("--weight-decay", self.weight_decay, 0)
        _at_least("--clip", self.clip, 0)
        for flag, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1),
                                 ("--max-seq-len", self.max_seq_len, 4), ("--patience", self.patience, 0),
                                 ("--eval-every", self.eval_every, 0), ("--log-every", self.log_every, 1)):
            _integer(flag, value, low)
        if self.warmup is not None:
            _integer("--warmup", self.warmup, 0)


def _positive(flag: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise PlmkitError(f"{flag} must be a number > 0, got {value}")


def _at_least(flag: str, value: float, low: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= low):
        raise PlmkitError(f"{flag} must be a number ≥ {low}, got {value}")


def _integer(flag: str, value: int, low: int) -> None:
    if not isinstance(value, int) or value < low:
        raise PlmkitError(f"{flag} must be an integer ≥ {low}, got {value}")
