"""Tiny tokenizers and DATA directories for the training, evaluation and export tests.

The text is generated: documents of sentences drawn from a few fixed templates, so every
objective has something a tiny model can learn in a hundred steps (the next word of a template,
a masked word from its neighbours, the order of two sentences). DATA directories follow the
data-stage contract (`plmkit.json` with the objective, `tokenizer/`, `train/`, `validation/`)
and are built by the data stage itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

TEMPLATES = [
    "the cat sat on the mat .",
    "a dog ran under the old tree .",
    "birds sing over the red roof every morning .",
    "my friend reads a long book at night .",
    "the river flows past the quiet town .",
    "we plant green seeds in the spring garden .",
    "she writes short letters to her brother .",
    "cold wind blows across the empty field .",
]


def documents(n: int, seed: int = 0) -> list[str]:
    """`n` documents of 3–6 template sentences, one sentence per line."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        k = int(rng.integers(3, 7))
        start = int(rng.integers(len(TEMPLATES)))
        # consecutive templates (cyclic), so the order of two sentences is learnable (SOP/NSP)
        docs.append("\n".join(TEMPLATES[(start + i) % len(TEMPLATES)] for i in range(k)))
    return docs


def make_tokenizer(out: Path, preset: str = "bert", vocab_size: int = 260) -> Path:
    from plmkit.tokenization import resolve_spec, train_tokenizer

    spec = resolve_spec(preset=preset, vocab_size=vocab_size, allow_smaller_vocab=True)
    train_tokenizer(documents(200, seed=1), out, spec)
    return out


def make_data(out: Path, tok_dir: Path, objective: str, *, seq_len: int = 32, n_docs: int = 132,
              validation_fraction: float = 0.1, seed: int = 0, **options) -> Path:
    """A DATA directory of `objective` shards, built by `plmkit build-data` from generated documents.

    `options` are build-data options of the objective (`dynamic=True`, `ngram=1`, …).
    """
    from plmkit.data.build import build_data
    from plmkit.data.params import resolve_params

    corpus = out.with_name(out.name + ".txt")
    corpus.write_text("\n\n".join(documents(n_docs, seed=seed)) + "\n", encoding="utf-8")
    params = resolve_params(objective, seq_len=seq_len, seed=seed, validation_fraction=validation_fraction, **options)
    build_data([str(corpus)], tok_dir, out, params)
    return out


# ---- cached fixtures shared by the test modules of one session ------------------------------

_ROOT: Path | None = None
_CACHE: dict[tuple, Path] = {}


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        import atexit
        import tempfile

        _ROOT = Path(tempfile.mkdtemp(prefix="plmkit-train-tests-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def tokenizer_dir(preset: str = "bert", vocab_size: int = 260) -> Path:
    """A tokenizer trained once per session (read-only for tests)."""
    key = ("tok", preset, vocab_size)
    if key not in _CACHE:
        _CACHE[key] = make_tokenizer(_root() / f"tok-{preset}-{vocab_size}", preset, vocab_size)
    return _CACHE[key]


def data_dir(objective: str, *, preset: str = "bert", vocab_size: int = 260, **options) -> Path:
    """DATA shards built once per session for (objective, tokenizer, options) (read-only for tests)."""
    key = ("data", objective, preset, vocab_size, tuple(sorted(options.items())))
    if key not in _CACHE:
        _CACHE[key] = make_data(_root() / f"{objective}-{len(_CACHE)}", tokenizer_dir(preset, vocab_size), objective,
                                **options)
    return _CACHE[key]


# A smaller "tiny" for tests that only need the loop to run: 32 wide, 2 heads.
SMALL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}


def one_thread():
    """Context: torch on one thread (tiny models run fastest so, and the CI's two cores are shared)."""
    import contextlib

    import torch

    @contextlib.contextmanager
    def ctx():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return ctx()


def read_metrics(run: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def without_timing(records: list[dict]) -> list[dict]:
    from plmkit.train.metrics import TIMING_FIELDS

    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]
