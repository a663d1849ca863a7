"""Fine-tuning: a pretrained RUN/ + labelled CSV/TSV/JSONL/CoNLL files → FT/ (`plmkit finetune`).

    from plmkit.finetune import FinetuneConfig, finetune, evaluate_ft, predict, export_hf
    finetune(FinetuneConfig(run="RUN", task="classify", train="train.csv", validation="dev.csv", out="FT"))
    evaluate_ft("FT", "test.csv")["accuracy"]
    predict("FT", ["a text to label"])[0]["label"]
    export_hf("FT", "hf-dir")          # BERT/RoBERTa/ALBERT → AutoModelFor{Sequence,Token}Classification

Modules: `config` (settings, no torch), `data` (files → examples → ids), `heads` (backbone +
head), `loop` (training), `inference` (load, infer, score, predict), `metrics` (pure), `hf` (export).
Everything but `FinetuneConfig` and `is_finetuned` is imported on first use, so the CLI can
read this package without loading torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from plmkit.finetune.config import FinetuneConfig

_LAZY = {"finetune": "loop", "prepare": "loop", "evaluate_ft": "inference", "predict": "inference",
         "load_finetuned": "inference", "export_hf": "hf"}

__all__ = ["FinetuneConfig", "is_finetuned", *_LAZY]


def is_finetuned(path: str | Path) -> bool:
    """Whether `path` holds a FT/ directory (by its manifest's stage; nothing else is checked here).

    `plmkit eval` and `plmkit generate` use it to hand FT/ directories to this package.
    """
    try:
        return json.loads((Path(path) / "plmkit.json").read_text(encoding="utf-8")).get("stage") == "finetune"
    except (OSError, ValueError, AttributeError):
        return False


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"plmkit.finetune.{_LAZY[name]}"), name)
    raise AttributeError(name)
