"""Specification of `plmkit build-data` (plmkit.data.build): every objective end to end through the
CLI, the contracts of each objective checked against a reconstruction of the corpus, determinism
over worker counts, validation-split rules, slices and `--merge`, resume after SIGKILL, the error
cases, and the realised masking statistics.

The corpus is the repository's own `corpora/en` (261 documents); the tokenizer is a 1,000-token
WordPiece trained once per session.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from plmkit.corpus import iter_documents
from plmkit.data.build import (
    Chunker,
    SplitRouter,
    _splitmix64,
    _splitmix64_array,
    check_tokenizer,
    validation_draw,
    validation_draws,
)
from plmkit.data.objectives import IGNORE_INDEX, SpecialIds
from plmkit.data.objectives.mlm import masked_count
from plmkit.data.objectives.spans import t5_input_target_lengths
from plmkit.data.params import resolve_params
from plmkit.data.shards import open_data_split
from plmkit.errors import PlmkitError

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpora" / "en"


class ReferenceRouter:
    """Step 1 of build.py's docstring, one document at a time: each document goes to validation
    when `validation_draw(seed, d) < fraction`, except the last, which goes to whichever split
    would otherwise be empty (two documents or more, fraction above 0). `SplitRouter` must agree."""

    def __init__(self, seed: int, fraction: float):
        self.seed, self.fraction, self.docs = seed, fraction, []

    def push(self, d: int, text: str) -> None:
        self.docs.append((d, text))

    def routed(self) -> list[tuple[str, int, str]]:
        out = [("validation" if self.fraction > 0 and validation_draw(self.seed, d) < self.fraction else "train", d, t)
               for d, t in self.docs]
        splits = [s for s, _, _ in out[:-1]]
        if out and self.fraction > 0 and splits:
            if "validation" not in splits:
                out[-1] = ("validation", *out[-1][1:])
            elif "train" not in splits:
                out[-1] = ("train", *out[-1][1:])
        return out


class ReferenceChunker:
    """Step 2, one document at a time: a chunk ends at the document that makes it `max_docs` long
    or `max_chars` characters. `Chunker.add_many` must cut the same chunks."""

    def __init__(self, split: str, max_docs: int, max_chars: int):
        self.split, self.max_docs, self.max_chars = split, max_docs, max_chars
        self.index, self.doc_ids, self.texts = 0, [], []

    def add(self, d: int, text: str) -> tuple | None:
        self.doc_ids.append(d)
        self.texts.append(text)
        if len(self.texts) >= self.max_docs or sum(map(len, self.texts)) >= self.max_chars:
            return self.flush()
        return None

    def flush(self) -> tuple | None:
        if not self.texts:
            return None
        chunk = (self.split, self.index, self.doc_ids, self.texts, len("".join(self.texts).encode("utf-8")))
        self.index, self.doc_ids, self.texts = self.index + 1, [], []
        return chunk


def as_tuple(chunk) -> tuple:
    return chunk.split, chunk.index, chunk.doc_ids, chunk.texts, chunk.nbytes


@pytest.fixture(scope="session")
def tok_dir(tmp_path_factory) -> Path:
    from plmkit.tokenization import resolve_spec, train_from_corpus

    out = tmp_path_factory.mktemp("tok") / "TOK"
    train_from_corpus([CORPUS], out, resolve_spec(preset="bert", vocab_size=1000))
    return out


@pytest.fixture(scope="session")
def tok(tok_dir):
    from plmkit.tokenization import load_tokenizer

    return load_tokenizer(tok_dir)


@pytest.fixture(scope="session")
def split_docs(tok) -> dict[str, list[np.ndarray]]:
    """The token ids of each split's documents, routed as the build routes them (seed 0, 1%)."""
    router, out = ReferenceRouter(0, 0.01), {"train": [], "validation": []}
    for d, text in enumerate(iter_documents([CORPUS])):
        router.push(d, text)
    for split, _, text in router.routed():
        out[split].append(text)
    return {s: tok.encode_batch(texts) for s, texts in out.items()}


@pytest.fixture(scope="session")
def builds(tmp_path_factory, tok_dir):
    """Build each objective once per session through the CLI (in-process); cache by arguments."""
    from plmkit.cli import main

    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("builds")

    def build(objective: str, *extra: str, corpus: Path = CORPUS) -> Path:
        key = (objective, *extra, str(corpus))
        if key not in cache:
            out = root / f"d{len(cache)}"
            args = ["build-data", str(corpus), "--tokenizer", str(tok_dir), "--objective", objective,
                    "--seq-len", "64", "--out", str(out), *extra]
            with pytest.raises(SystemExit) as e:
                main(args)
                raise SystemExit(0)
            assert e.value.code in (0, None), f"build failed: {args}"
            cache[key] = out
        return cache[key]

    return build


def rows(data: Path, split: str = "train") -> list[dict]:
    return open_data_split(data, split).to_pylist()


def file_hashes(d: Path) -> dict[str, str]:
    """sha256 of every file but the manifest (which holds a timestamp)."""
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file() and (p.name != "plmkit.json" or p.parent.name == "tokenizer")}


def manifest(d: Path) -> dict:
    return json.loads((d / "plmkit.json").read_text())


# --------------------------------------------------------------------------- every objective end to end

COLUMNS = {
    "mlm": ["input_ids", "labels", "special_tokens_mask"],
    "nsp": ["input_ids", "token_type_ids", "labels", "special_tokens_mask", "next_sentence_label"],
    "sop": ["input_ids", "token_type_ids", "labels", "special_tokens_mask", "sentence_order_label"],
    "t5-span": ["input_ids", "labels"],
    "glm": ["input_ids", "labels", "position_ids", "block_position_ids", "sep"],
    "clm": ["input_ids"],
}


@pytest.mark.parametrize("objective", list(COLUMNS))
def test_every_objective_loads_with_datasets_in_the_narrow_types(builds, objective):
    import datasets

    data = builds(objective)
    m = manifest(data)
    assert m["stage"] == "data" and m["params"]["objective"] == objective
    assert list(m["columns"]) == COLUMNS[objective]
    for split in ("train", "validation"):
        ds = datasets.load_from_disk(str(data / split))
        assert ds.column_names == COLUMNS[objective]
        assert ds.features["input_ids"].feature.dtype == "uint16"  # vocabulary of 1,000
        assert len(ds) == m["counts"][split]["examples"] > 0
        assert max(len(r) for r in ds["input_ids"]) <= 64
    assert (data / "tokenizer" / "tokenizer.json").is_file()
    assert m["upstream"]["fingerprint"] == manifest(data / "tokenizer")["fingerprint"]


def test_mlm_rows_unmask_to_the_documents_cut_into_segments(builds, split_docs, tok):
    sp = SpecialIds.from_tokenizer(tok)
    got = rows(builds("mlm"))
    ids = [np.array(r["input_ids"]) for r in got]
    labels = [np.array(r["labels"]) for r in got]
    unmasked = [np.where(lab != IGNORE_INDEX, lab, i) for i, lab in zip(ids, labels, strict=True)]
    assert all(u[0] == sp.cls and u[-1] == sp.sep for u in unmasked)
    assert np.array_equal(np.concatenate([u[1:-1] for u in unmasked]), np.concatenate(split_docs["train"]))
    # A document's segments are full (62 tokens) except its last.
    expected = [min(62, d.size - s) for d in split_docs["train"] for s in range(0, d.size, 62)]
    assert [u.size - 2 for u in unmasked] == expected
    for r, u in zip(got, unmasked, strict=True):
        assert r["special_tokens_mask"] == sp.is_special(u).astype(int).tolist()


def test_clm_blocks_concatenate_to_the_eos_joined_stream(builds, split_docs, tok):
    for split in ("train", "validation"):
        blocks = [np.array(r["input_ids"]) for r in rows(builds("clm"), split)]
        stream = np.concatenate([np.append(d, tok.id("eos")) for d in split_docs[split]])
        assert np.array_equal(np.concatenate(blocks), stream)
        assert all(b.size == 64 for b in blocks[:-1]) and 0 < blocks[-1].size <= 64


def test_clm_bos_and_drop_remainder(builds, split_docs, tok):
    data = builds("clm", "--bos", "--drop-remainder")
    blocks = [np.array(r["input_ids"]) for r in rows(data)]
    stream = np.concatenate([np.concatenate(([tok.id("bos")], d, [tok.id("eos")])) for d in split_docs["train"]])
    assert all(b.size == 64 for b in blocks)
    assert np.array_equal(np.concatenate(blocks), stream[: len(blocks) * 64])
    assert manifest(data)["counts"]["train"]["dropped_tokens"] == stream.size % 64 > 0


def test_t5_inputs_and_targets_have_exact_lengths_and_give_back_the_raw_text(builds, split_docs, tok):
    sentinels = {s: k for k, s in enumerate(tok.sentinel_ids)}
    raw_len, target_len = t5_input_target_lengths(64)
    got = rows(builds("t5-span"))
    raw = []
    for r in got:
        inputs, labels = r["input_ids"], r["labels"]
        assert inputs[-1] == labels[-1] == tok.id("eos")
        spans, k = {}, None
        for i in labels[:-1]:
            if i in sentinels:
                k = sentinels[i]
                spans[k] = []
            else:
                spans[k].append(i)
        assert list(spans) == list(range(len(spans)))  # the k-th span has the k-th sentinel
        for i in inputs[:-1]:
            raw += spans[sentinels[i]] if i in sentinels else [i]
    # T5 concatenates documents without a separator; packing restarts at each chunk of 256
    # documents, so each of the 2 training chunks may end with one shorter example.
    assert raw == np.concatenate(split_docs["train"]).tolist()
    full = [len(r["input_ids"]) == 64 and len(r["labels"]) == target_len for r in got]
    assert len(full) - sum(full) <= 2 and all(len(r["input_ids"]) <= 64 for r in got)


def _glm_text(got: list[dict], tok) -> list[int]:
    """Check each GLM row's layout; return the text of all rows, spans put back, [CLS] dropped."""
    cls, mask, sop, eop = (tok.id(r) for r in ("cls", "mask", "sop", "eop"))
    text = []
    for r in got:
        ids, labels, pos, block, sep = (np.array(r[k]) for k in COLUMNS["glm"])
        assert (labels[:sep] == IGNORE_INDEX).all() and (block[:sep] == 0).all()
        assert np.array_equal(pos[:sep], np.arange(sep)) and ids[0] == cls
        starts = np.flatnonzero(block[sep:] == 1) + sep
        assert (ids[starts] == sop).all()
        spans = {}
        for s, e in zip(starts, [*starts[1:], ids.size], strict=True):
            assert np.array_equal(block[s:e], np.arange(1, e - s + 1)) and labels[e - 1] == eop
            assert np.array_equal(ids[s + 1 : e], labels[s : e - 1])  # input = target shifted by one
            spans[int(pos[s])] = labels[s : e - 1].tolist()
        assert sorted(spans) == np.flatnonzero(ids[:sep] == mask).tolist()
        text += [t for k, i in enumerate(ids[1:sep], 1) for t in (spans[k] if k in spans else [int(i)])]
    return text


def test_glm_rows_have_parts_a_and_b_with_2d_positions(builds, tok):
    text = _glm_text(rows(builds("glm")), tok)
    assert len(text) > 10_000


def test_glm_rows_rebuild_every_document_with_its_eos(builds, split_docs, tok):
    text = _glm_text(rows(builds("glm")), tok)
    assert text == np.concatenate([np.append(d, tok.id("eos")) for d in split_docs["train"]]).tolist()


@pytest.mark.parametrize("objective,label", [("nsp", "next_sentence_label"), ("sop", "sentence_order_label")])
def test_pairs_are_cls_a_sep_b_sep_with_segment_ids(builds, tok, objective, label):
    got = rows(builds(objective))
    cls, sep = tok.id("cls"), tok.id("sep")
    for r in got:
        ids = np.where(np.array(r["labels"]) != IGNORE_INDEX, r["labels"], r["input_ids"])
        seps = np.flatnonzero(ids == sep)
        assert ids[0] == cls and seps.size == 2 and seps[1] == ids.size - 1 and seps[0] >= 2
        assert r["token_type_ids"] == [0] * (seps[0] + 1) + [1] * (ids.size - seps[0] - 1)
        assert r[label] in (0, 1)
    if objective == "sop":
        # Swap probability ½ per pair: the share of label 1 is within 4σ = 4·sqrt(¼/n) of ½.
        share = np.mean([r[label] for r in got])
        assert abs(share - 0.5) < 4 * math.sqrt(0.25 / len(got))


def test_dynamic_mlm_stores_unmasked_segments(builds, split_docs):
    data = builds("mlm", "--dynamic")
    assert list(manifest(data)["columns"]) == ["input_ids", "special_tokens_mask"]
    got = [np.array(r["input_ids"]) for r in rows(data)]
    assert np.array_equal(np.concatenate([g[1:-1] for g in got]), np.concatenate(split_docs["train"]))


# --------------------------------------------------------------------------- masking statistics


def test_static_masking_statistics(builds, tok):
    """Counts per row are exact; the 80/10/10 split is binomial, checked within 4σ of n predictions."""
    sp = SpecialIds.from_tokenizer(tok)
    got = rows(builds("mlm"))
    n_pred = n_mask = n_keep = 0
    for r in got:
        ids, labels, special = (np.array(r[k]) for k in ("input_ids", "labels", "special_tokens_mask"))
        pred = labels != IGNORE_INDEX
        assert pred.sum() == masked_count(int((special == 0).sum()), 0.15)  # round(0.15 × maskable), ≥ 1
        assert not (pred & (special == 1)).any()  # never a special position
        replaced = pred & (ids != labels) & (ids != sp.mask)
        assert not sp.is_special(ids[replaced]).any()  # random replacements are never special
        n_pred += int(pred.sum())
        n_mask += int((ids[pred] == sp.mask).sum())
        n_keep += int((ids[pred] == labels[pred]).sum())
    assert n_pred > 5000
    redraw = 0.1 / (tok.vocab_size - len(tok.special_ids))  # a random replacement may draw the original id
    for share, p in ((n_mask / n_pred, 0.8), (n_keep / n_pred, 0.1 + redraw)):
        assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / n_pred)
    c = manifest(builds("mlm"))["counts"]["train"]
    assert (c["predicted"], c["masked"]) == (n_pred, n_mask)


def test_whole_word_masking_takes_every_piece_of_a_word(builds, tok):
    got = rows(builds("mlm", "--whole-word"))
    for r in got:
        ids = np.where(np.array(r["labels"]) != IGNORE_INDEX, r["labels"], r["input_ids"])
        starts = tok.word_start_mask(ids)
        pred = np.array(r["labels"]) != IGNORE_INDEX
        word = np.cumsum(starts)  # word number of every token
        for w in np.unique(word[pred]):
            assert pred[word == w].all(), "a word was only partly selected"


# --------------------------------------------------------------------------- determinism and splits


@pytest.mark.parametrize("objective", ["mlm", "nsp", "clm"])
def test_one_and_two_workers_write_identical_bytes(builds, objective):
    small = ("--chunk-docs", "16")  # 17 chunks: several in flight at once
    one, two = builds(objective, *small), builds(objective, *small, "--num-proc", "2")
    assert file_hashes(one) == file_hashes(two)
    assert manifest(one)["fingerprint"] == manifest(two)["fingerprint"]


def test_tasks_run_by_the_main_process_or_a_worker_give_the_same_bytes(builds, tok_dir, tmp_path, monkeypatch):
    """With a task per chunk the workers are soon all busy, so the main process runs tasks too; which
    process ran a task must not show in the output."""
    import plmkit.data.build as build_module
    from plmkit.data.build import build_data
    from plmkit.data.params import resolve_params

    ran_here = []
    local = build_module.ChunkWorker.__call__
    monkeypatch.setattr(build_module, "TASK_BYTES", 1)
    monkeypatch.setattr(build_module.ChunkWorker, "__call__", lambda self, c: ran_here.append(c.index) or local(self, c))
    params = resolve_params("mlm", seq_len=64, chunk_docs=4)
    for n in (2, 3):
        ran_here.clear()
        build_data([CORPUS], tok_dir, tmp_path / f"n{n}", params, num_proc=n)
        assert ran_here, "the main process never ran a task"
    one = builds("mlm", "--chunk-docs", "4")
    assert file_hashes(one) == file_hashes(tmp_path / "n2") == file_hashes(tmp_path / "n3")


@pytest.fixture
def two_process_runner(tok_dir):
    """A `_Runner` for --num-proc 2 with its worker forked, stopped after the test."""
    from plmkit.data.build import _Runner
    from plmkit.data.params import resolve_params
    from plmkit.tokenization import load_tokenizer

    runner = _Runner(str(tok_dir), load_tokenizer(tok_dir), resolve_params("mlm", seq_len=64), num_proc=2)
    runner._start_pool()
    yield runner
    runner.close(ok=True)


@pytest.mark.skipif(not Path("/proc/sys/fs/pipe-max-size").exists(), reason="Linux pipes only")
def test_the_pipes_to_worker_processes_hold_a_task_in_one_write(two_process_runner):
    """Default 64 KB pipes made a worker wait ~20 ms for each ~1 MB task (see build._widen_pipes)."""
    import fcntl

    from plmkit.data.build import PIPE_BYTES

    want = min(PIPE_BYTES, int(Path("/proc/sys/fs/pipe-max-size").read_text()))
    for queue in (two_process_runner._pool._call_queue, two_process_runner._pool._result_queue):
        assert fcntl.fcntl(queue._reader.fileno(), fcntl.F_GETPIPE_SZ) == want


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="forked workers only")
def test_forked_workers_keep_the_parents_objects_out_of_their_garbage_collection(two_process_runner):
    """Workers are forked with the parent's objects frozen (see _Runner._start_pool); the parent's are not."""
    import gc

    assert two_process_runner._pool.submit(gc.get_freeze_count).result() > 1000
    assert gc.get_freeze_count() == 0


def test_validation_documents_are_chosen_by_seed_and_index(builds):
    docs = list(iter_documents([CORPUS]))
    for seed in (0, 7):
        data = builds("clm", "--validation-fraction", "0.2", "--seed", str(seed))
        expected = sum(validation_draw(seed, d) < 0.2 for d in range(len(docs)))
        assert manifest(data)["counts"]["validation"]["documents"] == expected
    a = rows(builds("clm", "--validation-fraction", "0.2", "--seed", "0"), "validation")
    b = rows(builds("clm", "--validation-fraction", "0.2", "--seed", "7"), "validation")
    assert a != b


def test_validation_gets_a_document_whenever_there_are_two(tmp_path, builds):
    router = SplitRouter(seed=0, fraction=1e-9)
    validation = router.push_many(0, ["x"] * 5)[1].tolist()
    assert validation == [False] * 4 and [s for s, _, _ in router.finish()] == ["validation"]
    router = SplitRouter(seed=0, fraction=0.999999)
    validation = router.push_many(0, ["x"] * 3)[1].tolist()
    assert validation == [True] * 2 and [s for s, _, _ in router.finish()] == ["train"]
    one = tmp_path / "one.txt"
    one.write_text("A single document with several words in it.\n")
    data = builds("clm", "--validation-fraction", "0.5", corpus=one)
    assert manifest(data)["counts"]["validation"].get("documents", 0) == 0
    assert len(rows(data, "validation")) == 0
    assert len(rows(builds("clm", "--validation-fraction", "0"), "validation")) == 0


def test_vectorised_validation_draws_equal_the_scalar_definition():
    rng = np.random.default_rng(0)
    ids = np.concatenate([np.arange(20_000), rng.integers(0, 2**63 - 1, 5_000, dtype=np.int64)])
    for seed in (0, 7, 2**63 - 1):
        assert validation_draws(seed, ids).tolist() == [validation_draw(seed, int(d)) for d in ids]
    # uint64 -> float64 rounds to nearest even like Python's int -> float, also at exact ties
    edges = [0, 1, 2**53 + 1, 2**53 + 3, 2**63 + 2**10, 2**63 + 3 * 2**10, 2**63 + 2**10 + 1, 2**64 - 2**10,
             2**64 - 1, *rng.integers(0, 2**64 - 1, 10_000, dtype=np.uint64, endpoint=True).tolist()]
    assert np.array(edges, dtype=np.uint64).astype(np.float64).tolist() == [float(v) for v in edges]
    assert _splitmix64_array(np.array(edges, dtype=np.uint64)).tolist() == [_splitmix64(v) for v in edges]


@pytest.mark.parametrize("fraction", [0.0, 1e-9, 0.3, 0.999999])
def test_split_router_routes_as_the_reference_for_any_batch_sizes(fraction):
    """Including the last document's ≥ 1 validation / ≥ 1 training rule."""
    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 40):
        texts = [f"doc {d}" for d in range(n)]
        reference = ReferenceRouter(5, fraction)
        for d, t in enumerate(texts):
            reference.push(d, t)
        many, got, first = SplitRouter(5, fraction), [], 0
        while first < n:
            size = int(rng.integers(0, 7))  # an empty batch too
            ids, validation, routed = many.push_many(first, texts[first : first + size])
            got += [("validation" if v else "train", int(d), t) for d, v, t in zip(ids, validation, routed, strict=True)]
            first += size
        assert got + many.finish() == reference.routed()
        assert many.count == {s: sum(r[0] == s for r in reference.routed()) for s in ("train", "validation")}


def test_chunker_cuts_as_the_reference_for_any_batch_sizes():
    """Same chunks (documents, index, bytes), completed at the same documents."""
    rng = np.random.default_rng(2)
    for max_docs, max_chars in [(3, 10**9), (10**9, 25), (4, 12), (1, 1)]:
        texts = ["x" * int(k) + "é" for k in rng.integers(0, 15, 200)]
        ids = sorted(rng.choice(10_000, 200, replace=False).tolist())
        reference = ReferenceChunker("train", max_docs, max_chars)
        expected = [(d, c) for d, t in zip(ids, texts, strict=True) if (c := reference.add(d, t)) is not None]
        many, got, at = Chunker("train", max_docs, max_chars), [], 0
        while at < len(texts):
            size = int(rng.integers(1, 30))
            got += many.add_many(ids[at : at + size], texts[at : at + size])
            at += size
        assert [(d, as_tuple(c)) for d, c in got] == expected
        last = many.flush()
        assert (last and as_tuple(last)) == reference.flush()


def scalar_stream(docs: list[str], p: dict) -> list:
    """`_stream_chunks` one document at a time, from the reference definitions."""
    router = ReferenceRouter(p["seed"], p["validation_fraction"])
    for d, t in enumerate(docs):
        router.push(d, t)
    lay = p["layout"]
    chunkers = {s: ReferenceChunker(s, lay["chunk_docs"], lay["chunk_chars"]) for s in ("train", "validation")}
    out = [c for split, d, t in router.routed() if (c := chunkers[split].add(d, t)) is not None]
    for split in ("train", "validation"):
        out += [c for c in [chunkers[split].flush()] if c is not None] + [(split, chunkers[split].index)]
    return out


@pytest.mark.parametrize("batch", [1, 7, 1024])
def test_stream_chunks_emits_the_chunks_of_the_scalar_definition_in_its_order(monkeypatch, batch):
    import plmkit.data.build as build

    monkeypatch.setattr(build, "ROUTE_BATCH", batch)
    p = resolve_params("clm", seq_len=64, validation_fraction=0.3, chunk_docs=5, chunk_chars=700)
    got = [c if isinstance(c, tuple) else as_tuple(c) for c in build._stream_chunks([str(CORPUS)], p)]
    assert got == scalar_stream(list(iter_documents([CORPUS])), p)
    assert sum(1 for c in got if len(c) == 5 and c[0] == "validation") > 10  # both splits interleave


@pytest.mark.parametrize("objective", ["mlm", "clm"])
def test_slices_union_is_the_single_build_and_merge_is_byte_identical(builds, tmp_path, run_cli, objective):
    from plmkit.data.shards import open_shard

    layout = ("--chunk-docs", "8", "--shard-chunks", "2")  # 17 train groups over 3 slices
    single = builds(objective, *layout)
    slices = [builds(objective, *layout, "--num-shards", "3", "--shard-index", str(i)) for i in range(3)]
    owned = {rec["group"]: (s, rec["file"]) for s in slices for rec in manifest(s)["slice"]["groups"]["train"]}
    assert sorted(owned) == list(range(17))
    assert all(s == slices[g % 3] for g, (s, _) in owned.items())  # group g belongs to slice g mod K
    if objective == "mlm":  # the slices' rows, in group order, are the single build's rows
        union = [r for g in sorted(owned) for r in open_shard(owned[g][0] / "train" / owned[g][1]).to_pylist()]
        assert union == rows(single)
    code, _, err = run_cli("build-data", "--merge", *map(str, reversed(slices)), "--out", tmp_path / "merged")
    assert code == 0, err
    assert file_hashes(tmp_path / "merged") == file_hashes(single)
    assert manifest(tmp_path / "merged")["fingerprint"] == manifest(single)["fingerprint"]


def test_merge_refuses_slices_that_do_not_belong_together(builds, tmp_path, run_cli, tok_dir):
    layout = ("--chunk-docs", "8", "--shard-chunks", "2")
    s0, s1 = (builds("mlm", *layout, "--num-shards", "2", "--shard-index", str(i)) for i in range(2))
    other_seed = builds("mlm", *layout, "--num-shards", "2", "--shard-index", "1", "--seed", "3")
    cases = [
        ([s0, other_seed], "their params differ"),
        ([s0], "lacks shard index 1"),
        ([s0, s0], "lacks shard index 1"),
        ([builds("mlm"), s1], "is a complete build, not a slice"),
    ]
    from plmkit.tokenization import resolve_spec, train_from_corpus

    other_tok = tmp_path / "TOK2"
    train_from_corpus([CORPUS], other_tok, resolve_spec(preset="bert", vocab_size=600))
    code, _, err = run_cli("build-data", str(CORPUS), "--tokenizer", other_tok, "--objective", "mlm", "--seq-len",
                           "64", *layout, "--num-shards", "2", "--shard-index", "1", "--out", tmp_path / "s1b")
    assert code == 0, err
    cases.append(([s0, tmp_path / "s1b"], "their upstream differ (built with another tokenizer)"))
    for dirs, message in cases:
        code, _, err = run_cli("build-data", "--merge", *map(str, dirs), "--out", tmp_path / "m")
        assert code == 1 and message in err and "Traceback" not in err, err
        assert not (tmp_path / "m").exists()


# --------------------------------------------------------------------------- interruption


def test_sigkill_then_rerun_completes_identically(tmp_path, tok_dir, run_cli):
    corpus = tmp_path / "big.txt"
    words = "the cat sat on a mat while language models read long documents about corpora".split()
    rng = np.random.default_rng(0)
    corpus.write_text("\n\n".join(" ".join(rng.choice(words, 60)) for _ in range(1500)) + "\n")
    args = ["build-data", str(corpus), "--tokenizer", str(tok_dir), "--objective", "mlm", "--seq-len", "64",
            "--chunk-docs", "10", "--shard-chunks", "1"]
    out, ref = tmp_path / "DATA", tmp_path / "REF"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "plmkit", *args, "--out", str(out)], env=env,
                            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(tmp_path.glob(".DATA.work-*/train/g*.arrow"))) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(tmp_path.glob(".DATA.work-*/train/g*.arrow")))
    assert 3 <= done < 140, "the build was not killed in the middle"
    assert not out.exists()  # nothing a later stage would accept
    code, _, err = run_cli(*args, "--out", out)
    assert code == 0 and "resumed an interrupted build" in err, err
    assert run_cli(*args, "--out", ref)[0] == 0
    assert file_hashes(out) == file_hashes(ref)
    assert not list(tmp_path.glob(".DATA.*")) and not list(tmp_path.glob(".REF.*"))  # no leftovers


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("args,message", [
    (["--seq-len", "0"], "--seq-len must be an integer in [1, 1048576], got 0"),
    (["--seq-len", "2"], "--seq-len 2 is too short for --objective mlm: the minimum is 3"),
    (["--objective", "nsp", "--seq-len", "4"], "the minimum is 5"),
    (["--objective", "t5-span", "--seq-len", "9"], "the minimum is 10"),
    (["--objective", "glm", "--seq-len", "7"], "the minimum is 8"),
    (["--mask-prob", "nan"], "--mask-prob must be in (0, 1), got nan"),
    (["--mask-prob", "1.5"], "--mask-prob must be in (0, 1)"),
    (["--max-predictions", "0"], "--max-predictions must be an integer at least 1"),
    (["--mask-replace", "0.9", "--random-replace", "0.2"], "must not exceed 1"),
    (["--validation-fraction", "-0.1"], "--validation-fraction must be in [0, 1)"),
    (["--num-proc", "0"], "--num-proc must be an integer in [1, 1024]"),
    (["--seed", "-1"], "--seed must be an integer"),
    (["--objective", "t5-span", "--noise-density", "0"], "--noise-density must be in (0, 1)"),
    (["--objective", "glm", "--poisson-lambda", "-3"], "--poisson-lambda must be in (0, 100]"),
    (["--noise-density", "0.2"], "--noise-density does not apply to --objective mlm"),
    (["--objective", "bert"], "--objective must be one of mlm, nsp, sop, t5-span, glm, clm"),
    (["--num-shards", "2", "--shard-index", "2"], "--shard-index must be in [0, 1]"),
    (["--objective", "t5-span", "--seq-len", "4000"], "needs 222 T5 sentinels per example"),
])
def test_bad_flags_are_one_line_errors(run_cli, tok_dir, tmp_path, args, message):
    base = ["build-data", str(CORPUS), "--tokenizer", str(tok_dir), "--out", str(tmp_path / "D")]
    if "--objective" not in args:
        base += ["--objective", "mlm"]
    code, _, err = run_cli(*base, *args)
    assert code == 1 and message in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "D").exists()


def test_existing_output_needs_force(run_cli, builds, tok_dir):
    data = builds("clm")
    code, _, err = run_cli("build-data", str(CORPUS), "--tokenizer", str(tok_dir), "--objective", "clm",
                           "--seq-len", "64", "--out", str(data))
    assert code == 1 and "already exists" in err and "--force" in err


def test_an_empty_result_is_an_error(run_cli, tok_dir, tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("a\n\nb\n\nc\n")  # one-token documents cannot form sentence pairs
    code, _, err = run_cli("build-data", str(corpus), "--tokenizer", str(tok_dir), "--objective", "sop",
                           "--out", str(tmp_path / "D"))
    assert code == 1 and "gave no training examples for --objective sop" in err, err
    assert not (tmp_path / "D").exists()


def test_a_tokenizer_without_the_objective_roles_is_refused(tok):
    class Stripped:
        path, roles, sentinel_ids = tok.path, {k: v for k, v in tok.roles.items() if k != "mask"}, tok.sentinel_ids

    with pytest.raises(PlmkitError, match="has no mask token, which --objective mlm needs"):
        check_tokenizer(Stripped(), resolve_params("mlm", seq_len=64))


def test_a_truncated_shard_is_refused_by_its_manifest(builds, tmp_path):
    import shutil

    copy = tmp_path / "D"
    shutil.copytree(builds("clm"), copy)
    shard = copy / "train" / manifest(copy)["shards"]["train"][0]["file"]
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(PlmkitError, match="truncated or replaced"):
        open_data_split(copy)


def test_inspect_renders_examples_of_every_objective(builds, run_cli):
    for objective in COLUMNS:
        code, out, err = run_cli("inspect", str(builds(objective)))
        assert code == 0, err
        assert "examples" in out and "#2" in out
    code, out, _ = run_cli("inspect", str(builds("mlm")), "--split", "validation", "-n", "1")
    assert code == 0 and "validation: 1 of" in out and "#0" in out and "#1" not in out
    _, out, _ = run_cli("inspect", str(builds("t5-span")))
    assert "<extra_id_0>" in out
    _, out, _ = run_cli("inspect", str(builds("glm")))
    assert "Part A" in out and "Part B piece at position" in out


# --------------------------------------------------------------------------- the vectorised MLM path


def _specials() -> SpecialIds:
    return SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=200, special_ids=tuple(range(10)))


def test_batched_segments_equal_the_objective_one_document_at_a_time():
    from plmkit.data.batched import segment_documents, segment_stream
    from plmkit.data.objectives.mlm import MlmPacker, mlm_segments

    sp, rng = _specials(), np.random.default_rng(0)
    docs = [rng.integers(10, 200, size=n).astype(np.int32) for n in rng.integers(0, 40, size=60)]
    for seq_len in (3, 7, 16, 64):
        flat, lengths = segment_documents(docs, seq_len, sp)
        expected = [s for d in docs for s in mlm_segments(d, seq_len, sp)]
        assert lengths.tolist() == [s.size for s in expected]
        assert flat.tolist() == np.concatenate(expected).tolist()
        packer = MlmPacker(seq_len, sp)
        expected = [s for d in docs for s in packer.add(d)] + packer.finish()
        flat, lengths = segment_stream(docs, seq_len, sp)
        assert flat.tolist() == np.concatenate(expected).tolist() and lengths.tolist() == [s.size for s in expected]


def test_batched_masking_has_the_objectives_law():
    """≈ 150k predictions. Counts are exact per segment; every maskable position of a segment is
    equally likely (each of the 62 body positions of a full segment is chosen in 15% of them:
    tolerance 4σ of a binomial over the segments); the 80/10/10 split within 4σ of n."""
    from plmkit.data.batched import mask_flat, segment_documents
    from plmkit.data.objectives.mlm import masked_count

    sp, rng = _specials(), np.random.default_rng(1)
    docs = [rng.integers(10, 200, size=n).astype(np.int32) for n in rng.integers(1, 400, size=6000)]
    flat, lengths = segment_documents(docs, 64, sp)
    out = mask_flat(flat, lengths, np.random.default_rng(2), sp)
    starts = np.cumsum(lengths) - lengths
    pred = out["labels"] != IGNORE_INDEX
    per_seg = np.add.reduceat(pred, starts)
    assert per_seg.tolist() == [masked_count(int(n) - 2, 0.15) for n in lengths]
    assert not (pred & sp.is_special(flat)).any()
    assert (out["labels"][pred] == flat[pred]).all() and (out["input_ids"][~pred] == flat[~pred]).all()
    full = np.flatnonzero(lengths == 64)
    hits = pred[starts[full][:, None] + np.arange(1, 63)].mean(axis=0)  # per body position
    p = masked_count(62, 0.15) / 62
    assert np.abs(hits - p).max() < 4 * math.sqrt(p * (1 - p) / full.size)
    n = int(pred.sum())
    assert n > 100_000
    inp = out["input_ids"][pred]
    masked, kept = float(np.mean(inp == sp.mask)), float(np.mean(inp == flat[pred]))
    redraw = 0.1 / sp.nonspecial_array.size
    assert abs(masked - 0.8) < 4 * math.sqrt(0.16 / n)
    assert abs(kept - (0.1 + redraw)) < 4 * math.sqrt(0.09 / n)
    replaced = inp[(inp != sp.mask) & (inp != flat[pred])]
    assert replaced.min() >= 10  # never a special id
    assert np.array_equal(out["special_tokens_mask"], sp.is_special(flat).astype(np.uint8))


def test_max_predictions_caps_every_row(builds):
    for r in rows(builds("mlm", "--max-predictions", "3")):
        assert 1 <= sum(label != IGNORE_INDEX for label in r["labels"]) <= 3


def test_the_chunk_sampler_draws_what_the_objectives_sampler_draws():
    from plmkit.data.objectives.pairs import other_document_sampler
    from plmkit.data.work import _other_sampler

    docs = [[np.arange(3)], [], [np.arange(2)], [np.arange(1)], [], [np.arange(4)]]
    usable = [0, 2, 3, 5]
    for i in range(len(docs)):
        mine, theirs = _other_sampler(docs, usable, i), other_document_sampler(docs, i)
        a, b = np.random.default_rng(i), np.random.default_rng(i)
        assert [id(mine(a)) for _ in range(20)] == [id(theirs(b)) for _ in range(20)]
    assert _other_sampler([[np.arange(2)]], [0], 0) is None is other_document_sampler([[np.arange(2)]], 0)
