"""Tiny tokenizers and DATA directories for the training, evaluation and export tests.

The text is generated: documents of sentences drawn from a few fixed templates, so every
objective has something a tiny model can learn in a hundred steps (the next word of a template,
a masked word from its neighbours, the order of two sentences). DATA directories follow the
data-stage contract (`plmkit.json` with the objective, `tokenizer/`, `train/`, `validation/`)
and are built with the objective functions themselves.
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


def make_tokenizer(out: Path, preset: str = "bert") -> Path:
    from plmkit.tokenization import resolve_spec, train_tokenizer

    spec = resolve_spec(preset=preset, vocab_size=260, allow_smaller_vocab=True)
    train_tokenizer(documents(200, seed=1), out, spec)
    return out


def _rows(objective: str, docs: list[str], tok, seq_len: int, seed: int, dynamic: bool) -> list[dict]:
    from plmkit.data.objectives import SpecialIds, example_rng
    from plmkit.data.objectives.clm import pack_documents
    from plmkit.data.objectives.glm import glm_examples
    from plmkit.data.objectives.mlm import MaskSpec, mlm_dynamic_example, mlm_example, mlm_segments
    from plmkit.data.objectives.pairs import nsp_examples, other_document_sampler, sop_examples
    from plmkit.data.objectives.spans import span_corrupt

    sp = SpecialIds.from_tokenizer(tok)
    sentences = [tok.encode_batch(d.split("\n")) for d in docs]
    streams = [np.concatenate(s) for s in sentences]
    rows = []
    if objective == "clm":
        return [{"input_ids": b} for b in pack_documents(streams, seq_len, sp)]
    for i, stream in enumerate(streams):
        rng = example_rng(seed, i)
        if objective == "mlm":
            for seg in mlm_segments(stream, seq_len, sp):
                rows.append(mlm_dynamic_example(seg, sp) if dynamic else mlm_example(seg, rng, sp))
        elif objective == "nsp":
            rows += nsp_examples(sentences[i], rng, seq_len=seq_len, specials=sp,
                                 sample_other=other_document_sampler(sentences, i))
        elif objective == "sop":
            rows += sop_examples(sentences[i], rng, seq_len=seq_len, specials=sp, spec=MaskSpec())
        elif objective == "t5-span":
            for start in range(0, len(stream), seq_len):
                chunk = stream[start : start + seq_len]
                if len(chunk) >= 8:
                    rows.append(span_corrupt(chunk, rng, sentinels=sp.sentinels, eos=sp.eos))
        elif objective == "glm":
            rows += glm_examples(stream, rng, seq_len=seq_len, specials=sp)
    return rows


def _columns(rows: list[dict]) -> dict[str, list]:
    return {name: [np.asarray(r[name]).tolist() for r in rows] for name in rows[0]}


def make_data(out: Path, tok_dir: Path, objective: str, *, seq_len: int = 32, n_train: int = 120,
              n_valid: int = 12, seed: int = 0, dynamic: bool = False) -> Path:
    """A DATA directory of `objective` shards built from generated documents."""
    import datasets

    from plmkit.manifest import write_manifest
    from plmkit.tokenization import load_tokenizer

    tok = load_tokenizer(tok_dir)
    out.mkdir(parents=True)
    shutil.copytree(tok_dir, out / "tokenizer")
    counts = {}
    for split, n, split_seed in (("train", n_train, seed), ("validation", n_valid, seed + 1000)):
        rows = _rows(objective, documents(n, seed=split_seed), tok, seq_len, split_seed, dynamic)
        datasets.Dataset.from_dict(_columns(rows)).save_to_disk(str(out / split))
        counts[split] = len(rows)
    params = {"objective": objective, "seq_len": seq_len, "seed": seed, "dynamic": dynamic}
    write_manifest(out, "data", params, upstream=tok.manifest, counts=counts,
                   columns=sorted(_rows(objective, documents(1), tok, seq_len, 0, dynamic)[0]))
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


def tokenizer_dir(preset: str = "bert") -> Path:
    """A tokenizer trained once per session (read-only for tests)."""
    key = ("tok", preset)
    if key not in _CACHE:
        _CACHE[key] = make_tokenizer(_root() / f"tok-{preset}", preset)
    return _CACHE[key]


def data_dir(objective: str, *, dynamic: bool = False, preset: str = "bert", **kw) -> Path:
    """DATA shards built once per session for (objective, dynamic, preset, kw) (read-only for tests)."""
    key = ("data", objective, dynamic, preset, tuple(sorted(kw.items())))
    if key not in _CACHE:
        name = "-".join(str(k) for k in key[1:4]) + f"-{len(_CACHE)}"
        _CACHE[key] = make_data(_root() / name, tokenizer_dir(preset), objective, dynamic=dynamic, **kw)
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
    return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "elapsed_s")} for r in records]
