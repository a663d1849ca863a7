"""Tokenizer, RUN directories and labelled files for the fine-tuning tests, made once per session.

Text comes from the bundled `corpora/` (English and Chinese documents) or is generated here:
- `language_task()`: which language a sentence of the bundled corpus is in (en / zh), JSONL.
- `tagging_task()`: generated sentences whose numbers are tagged B-NUM and capitalised words B-CAP.
RUN directories are either pretrained for a few dozen steps with plmkit's own stages
(`pretrained_run`) or written straight from a random initialisation (`random_run`).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = [ROOT / "corpora" / "en", ROOT / "corpora" / "zh"]
# A narrower "tiny" for tests: 32 wide, 2 heads, 2 layers.
SMALL = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}

_ROOT: Path | None = None
_CACHE: dict[tuple, object] = {}


def workdir() -> Path:
    global _ROOT
    if _ROOT is None:
        import atexit
        import tempfile

        _ROOT = Path(tempfile.mkdtemp(prefix="plmkit-finetune-tests-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


def _cached(key: tuple, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def tokenizer_dir() -> Path:
    """A cased WordPiece tokenizer of the bundled corpus (cased: the tagging task tags capitals)."""
    def make():
        from plmkit.corpus import iter_documents
        from plmkit.tokenization import resolve_spec, train_tokenizer

        spec = resolve_spec(preset="bert", vocab_size=1200, lowercase=False, allow_smaller_vocab=True)
        train_tokenizer(list(iter_documents(CORPUS)) + tagging_sentences(300, seed=99), workdir() / "tok", spec)
        return workdir() / "tok"
    return _cached(("tok",), make)


def sentences(lang: str) -> list[str]:
    from plmkit.corpus import iter_documents, split_sentences

    return [s for d in iter_documents([ROOT / "corpora" / lang]) for s in split_sentences(d) if len(s) >= 8]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def language_task(n_train: int = 400, n_valid: int = 200) -> tuple[Path, Path]:
    """(train.jsonl, validation.jsonl) of {"text", "label": "en" | "zh"}, disjoint sentences, shuffled."""
    def make():
        rows = [{"text": s, "label": "en"} for s in sentences("en")] + \
               [{"text": s, "label": "zh"} for s in sentences("zh")]
        random.Random(0).shuffle(rows)
        assert len(rows) >= n_train + n_valid
        d = workdir()
        return (write_jsonl(d / "lang-train.jsonl", rows[:n_train]),
                write_jsonl(d / "lang-valid.jsonl", rows[n_train:n_train + n_valid]))
    return _cached(("lang", n_train, n_valid), make)


WORDS = ("the cat sat on a mat while my old dog ran far away from home and we saw birds sing over "
         "green hills near the quiet river every morning").split()


def tagging_sentence(rng: random.Random) -> tuple[list[str], list[str]]:
    """3–12 words: a number (B-NUM) 20% of the time, a capitalised word (B-CAP) 20%, else a lower-case word (O)."""
    words, tags = [], []
    for _ in range(rng.randint(3, 12)):
        r = rng.random()
        if r < 0.2:
            words.append(str(rng.randint(0, 99999)))
            tags.append("B-NUM")
        elif r < 0.4:
            words.append(rng.choice(WORDS).capitalize())
            tags.append("B-CAP")
        else:
            words.append(rng.choice(WORDS))
            tags.append("O")
    return words, tags


def tagging_sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(tagging_sentence(rng)[0]) for _ in range(n)]


def tagging_task(n_train: int = 300, n_valid: int = 100) -> tuple[Path, Path]:
    """(train.jsonl, validation.jsonl) of {"tokens": [...], "tags": [...]}."""
    def make():
        out = []
        for name, n, seed in (("train", n_train, 1), ("valid", n_valid, 2)):
            rng = random.Random(seed)
            rows = [dict(zip(("tokens", "tags"), tagging_sentence(rng), strict=True)) for _ in range(n)]
            out.append(write_jsonl(workdir() / f"tags-{name}.jsonl", rows))
        return tuple(out)
    return _cached(("tags", n_train, n_valid), make)


def random_run(family: str, **overrides) -> Path:
    """A RUN directory holding a randomly initialised tiny `family` model (no training)."""
    key = ("random", family, tuple(sorted(overrides.items())))

    def make():
        import torch

        from plmkit.manifest import write_manifest
        from plmkit.models import build_model, get_config, save_model
        from plmkit.tokenization import load_tokenizer

        tok = load_tokenizer(tokenizer_dir())
        ids = {"vocab_size": tok.vocab_size, "pad_token_id": tok.id("pad"), "eos_token_id": tok.id("eos"),
               "bos_token_id": tok.id("bos")}
        if family == "roberta":   # positions count from pad + 1, as `plmkit train` sets them
            ids.update(position_offset=tok.id("pad") + 1, max_position_embeddings=128 + tok.id("pad") + 1)
        cfg = get_config(family, "tiny", **{**SMALL, **ids, **overrides})
        torch.manual_seed(0)
        out = workdir() / f"run-{family}-{len(_CACHE)}"
        save_model(build_model(cfg), cfg, out)
        tok.save(out / "tokenizer")
        write_manifest(out, "run", params={"model": f"{family}:tiny"}, upstream=tok.manifest)
        return out
    return _cached(key, make)


def pretrained_run() -> Path:
    """A tiny BERT pretrained (MLM + NSP) for 40 steps on the bundled corpus by plmkit's own stages."""
    def make():
        from plmkit.data.build import build_data
        from plmkit.data.params import resolve_params
        from plmkit.train import TrainConfig, train

        d = workdir()
        build_data(CORPUS, tokenizer_dir(), d / "data-nsp", resolve_params("nsp", seq_len=64, validation_fraction=0.05))
        cfg = TrainConfig(data=str(d / "data-nsp"), model="bert:tiny", out=str(d / "run-pretrained"), max_steps=40,
                          batch_size=16, lr=2e-3, warmup=4, eval_every=0, save_every=0, log_every=10, device="cpu",
                          model_overrides=dict(SMALL))
        train(cfg)
        return d / "run-pretrained"
    return _cached(("pretrained",), make)
