"""Run a fine-tuned model: load FT/, infer probabilities, score them, predict labels for texts.

    ft = load_finetuned("FT")
    evaluate_ft("FT", "test.csv")        # {"accuracy": …, "macro_f1": …, "confusion": [[…]], …}
    predict("FT", ["some text"])         # [{"text": …, "label": "pos", "probs": {"neg": 0.1, "pos": 0.9}}]

FT/ holds `plmkit.json` (stage "finetune": task, labels, fields, the run it came from),
`config.json` (the backbone's ModelConfig), `model.safetensors` (backbone + head, the best
evaluation's weights), `tokenizer/` and `metrics.jsonl`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch

from plmkit.errors import PlmkitError
from plmkit.finetune import metrics as m
from plmkit.finetune.data import Example, Features, TextEncoder, check_known, collate, read_examples
from plmkit.finetune.heads import FinetuneModel, label_targets
from plmkit.models.config import ModelConfig

STAGE = "finetune"


def context_length(cfg: ModelConfig) -> int:
    """Tokens one sequence may hold (RoBERTa's positions start at pad + 1)."""
    return cfg.max_position_embeddings - cfg.position_offset


def text_encoder(tok, cfg: ModelConfig, task: str, labels: Sequence[str], max_seq_len: int) -> TextEncoder:
    return TextEncoder(tok, cfg.family, task, labels, min(max_seq_len, context_length(cfg)),
                       token_types=cfg.type_vocab_size > 1)


def build_finetune_model(backbone, cfg: ModelConfig, task: str, labels: Sequence[str], tok) -> FinetuneModel:
    targets = label_targets(tok, list(labels)) if cfg.family == "t5" and task == "classify" else None
    return FinetuneModel(backbone, cfg, task, len(labels), targets)


@dataclass
class Finetuned:
    """A loaded FT/ directory, ready to infer on `device`."""

    path: Path
    model: FinetuneModel
    cfg: ModelConfig
    tokenizer: Any
    manifest: dict
    device: torch.device

    @property
    def task(self) -> str:
        return self.manifest["task"]

    @property
    def labels(self) -> list[str]:
        return self.manifest["labels"]

    @property
    def fields(self) -> tuple[str, str | None, str]:
        f = self.manifest["fields"]
        return f["text"], f["pair"], f["label"]

    def encoder(self) -> TextEncoder:
        return text_encoder(self.tokenizer, self.cfg, self.task, self.labels, self.manifest["params"]["max_seq_len"])


def load_finetuned(path: str | Path, device: str = "auto", flag: str = "FT") -> Finetuned:
    """Read FT/ (written by `plmkit finetune`): manifest, backbone config, weights, tokenizer."""
    from plmkit.manifest import read_manifest
    from plmkit.models import WEIGHTS_NAME, build_model, load_config, load_weights
    from plmkit.tokenization import load_tokenizer
    from plmkit.train.distributed import resolve_device

    manifest = read_manifest(path, STAGE, flag=flag)
    cfg = load_config(path, flag=flag)
    tok = load_tokenizer(Path(path) / "tokenizer", flag=f"{flag}'s")
    model = build_finetune_model(build_model(cfg), cfg, manifest["task"], manifest["labels"], tok)
    load_weights(model, Path(path) / WEIGHTS_NAME, flag=flag)
    dev = resolve_device(device)
    return Finetuned(Path(path), model.to(dev).eval(), cfg, tok, manifest, dev)


# ---- inference and scores -----------------------------------------------------------------------

@torch.no_grad()
def infer(model: FinetuneModel, features: Features, *, batch_size: int, pad_id: int,
          device: torch.device) -> tuple[list[np.ndarray], float | None]:
    """Probabilities of every row, and the mean loss when the rows carry labels.

    classify: (K,) per row; label-tokens: (kept words, K) per row, read at each word's first sub-token.
    The loss is averaged over examples (classify) or labelled words (label-tokens).
    """
    model.eval()
    out, loss_sum, weight = [], 0.0, 0
    for start in range(0, len(features), batch_size):
        rows = range(start, min(start + batch_size, len(features)))
        batch = {k: v.to(device) for k, v in collate(features, rows, pad_id).items()}
        result = model(**batch)
        probs = result.logits.float().softmax(dim=-1).cpu().numpy()
        if result.loss is not None:
            n = int((batch["labels"] != -100).sum())
            loss_sum, weight = loss_sum + float(result.loss) * n, weight + n
        for b, i in enumerate(rows):
            out.append(probs[b] if features.word_positions is None else probs[b, features.word_positions[i]])
    return out, (loss_sum / weight if weight else None)


def score(task: str, labels: Sequence[str], features: Features, probs: list[np.ndarray],
          loss: float | None) -> dict[str, Any]:
    """Validation figures: classify → accuracy, macro-F1; label-tokens → entity/token F1, word accuracy.

    Both carry `confusion` (rows: gold label, columns: predicted) and `loss`.
    """
    K = len(labels)
    if task == "classify":
        gold = list(features.labels)
        pred = [int(np.argmax(p)) for p in probs]
        return {"accuracy": m.accuracy(gold, pred), "macro_f1": m.macro_f1(gold, pred, K), "loss": loss,
                "examples": len(gold), "confusion": m.confusion_matrix(gold, pred, K)}
    gold_ids = [features.labels[i][features.word_positions[i]].tolist() for i in range(len(features))]
    pred_ids = [np.argmax(p, axis=-1).tolist() if len(p) else [] for p in probs]
    gold_tags = [[labels[t] for t in row] for row in gold_ids]
    pred_tags = [[labels[t] for t in row] for row in pred_ids]
    flat_gold, flat_pred = list(chain.from_iterable(gold_ids)), list(chain.from_iterable(pred_ids))
    token, entity = m.token_prf(gold_tags, pred_tags), m.entity_prf(gold_tags, pred_tags)
    words = sum(features.num_words)
    return {"entity_f1": entity["f1"], "entity_precision": entity["precision"], "entity_recall": entity["recall"],
            "token_f1": token["f1"], "token_precision": token["precision"], "token_recall": token["recall"],
            "accuracy": m.accuracy(flat_gold, flat_pred), "loss": loss, "examples": len(features), "words": words,
            "truncated_words": words - len(flat_gold), "confusion": m.confusion_matrix(flat_gold, flat_pred, K)}


def evaluate_ft(path: str | Path, data: str | Path, *, batch_size: int = 32, device: str = "auto",
                fmt: str = "auto", fields: tuple[str | None, str | None, str | None] = (None, None, None),
                flag: str = "--data") -> dict[str, Any]:
    """Scores of FT/ on a labelled file (fields default to the ones it was trained with).

    Returns `score`'s dict plus `labels`, `task`, `family`, `ft` and `data`.
    """
    if batch_size <= 0:
        raise PlmkitError(f"--batch-size must be a number > 0, got {batch_size}")
    ft = load_finetuned(path, device)
    names = tuple(given or trained for given, trained in zip(fields, ft.fields, strict=True))
    examples = read_examples(data, task=ft.task, fields=names, flag=flag, fmt=fmt)
    check_known(examples, ft.labels, data, flag)
    features = ft.encoder().encode(examples)
    probs, loss = infer(ft.model, features, batch_size=batch_size, pad_id=ft.tokenizer.id("pad"), device=ft.device)
    result = score(ft.task, ft.labels, features, probs, loss)
    return {"ft": str(path), "data": str(data), "task": ft.task, "family": ft.cfg.family, **result,
            "labels": ft.labels}


def predict(path: str | Path | Finetuned, texts: Sequence[str], pairs: Sequence[str] | None = None, *,
            batch_size: int = 32, device: str = "auto") -> list[dict[str, Any]]:
    """Labels with probabilities for raw texts.

    classify: [{"text", ("pair",) "label", "prob", "probs": {label: p}}], probabilities sorted high to low.
    label-tokens: [{"text", "words", "labels", "probs"}] with one label and its probability per word
    (the text is split on whitespace; words past the model's context get label None).
    """
    ft = path if isinstance(path, Finetuned) else load_finetuned(path, device)
    if not texts:
        raise PlmkitError("no text to label", hint="pass --prompt TEXT or --prompt-file FILE")
    if pairs is not None and len(pairs) != len(texts):
        raise PlmkitError(f"{len(texts)} texts but {len(pairs)} second texts")
    if ft.task == "classify":
        examples = [Example(t, None if pairs is None else pairs[i]) for i, t in enumerate(texts)]
    else:
        examples = [Example(t.split()) for t in texts]
    features = ft.encoder().encode(examples)
    probs, _ = infer(ft.model, features, batch_size=batch_size, pad_id=ft.tokenizer.id("pad"), device=ft.device)
    return [_prediction(ft.labels, e, p, text) for e, p, text in zip(examples, probs, texts, strict=True)]


def _prediction(labels: list[str], example: Example, p: np.ndarray, text: str) -> dict[str, Any]:
    if isinstance(example.text, str):
        order = np.argsort(-p, kind="stable")
        out: dict[str, Any] = {"text": text} if example.pair is None else {"text": text, "pair": example.pair}
        return {**out, "label": labels[order[0]], "prob": float(p[order[0]]),
                "probs": {labels[i]: float(p[i]) for i in order}}
    best = np.argmax(p, axis=-1) if len(p) else np.zeros(0, dtype=np.int64)
    tags = [labels[t] for t in best] + [None] * (len(example.text) - len(best))
    probs = [float(p[i, t]) for i, t in enumerate(best)] + [None] * (len(example.text) - len(best))
    return {"text": text, "words": example.text, "labels": tags, "probs": probs}

