"""One unit of build work: a chunk of consecutive documents of one split → rows and statistics.

`build.py` cuts each split into chunks whose boundaries depend only on the corpus and the
parameters (never on the worker count) and hands them to `ChunkWorker`, in the main process or
in worker processes. A chunk's rows are a pure function of its documents, their global indices
and the parameters, so the output is the same however chunks are spread over processes:

* objectives that decide per document (nsp, sop, glm) draw from `example_rng(seed, 0, d)`,
  document `d`'s own generator; NSP's "random next" document is another document of the same
  chunk (the draws of `pairs.other_document_sampler`);
* mlm and t5-span draw from one generator per chunk, `example_rng(seed, 1, first document of
  the chunk)`: mlm masks all the chunk's segments in one vectorised pass (`batched.py`), and
  packing across documents (mlm `--cross-documents`, t5-span) restarts at each chunk, whose
  last packed row may be shorter than `seq_len`;
* clm returns the chunk's EOS-joined token stream as a single row: the main process packs the
  stream of a whole split into blocks, so clm blocks cross chunk boundaries.
"""

from __future__ import annotations

import bisect
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plmkit.data.batched import mask_flat, segment_documents, segment_stream
from plmkit.data.objectives import IGNORE_INDEX, SpecialIds, example_rng
from plmkit.data.objectives.clm import BlockPacker, clm_document
from plmkit.data.objectives.glm import glm_examples
from plmkit.data.objectives.mlm import MaskSpec, mask_tokens
from plmkit.data.objectives.pairs import nsp_examples, sop_examples
from plmkit.data.objectives.spans import span_corrupt, t5_input_target_lengths
from plmkit.data.shards import RowBlock

PER_DOCUMENT, PER_CHUNK = 0, 1  # first key of example_rng after the seed


@dataclass
class Chunk:
    """Consecutive documents of one split: `index` counts the split's chunks from 0."""

    split: str
    index: int
    doc_ids: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    nbytes: int = 0


@dataclass
class ChunkResult:
    split: str
    index: int
    block: RowBlock
    stats: dict[str, int]


class ChunkWorker:
    """Turns chunks into rows for one build (tokenizer and parameters fixed)."""

    def __init__(self, tok, params: dict[str, Any]):
        self.tok, self.p = tok, params
        self.specials = SpecialIds.from_tokenizer(tok)
        self.objective = params["objective"]
        self.spec = None
        if "mask_replace" in params:
            self.spec = MaskSpec(params["mask_prob"], params["max_predictions"], params["mask_replace"],
                                 params["random_replace"], params["ngram"])
        self.word_starts = _word_start_table(tok) if params.get("whole_word") else None
        self.sentinels = np.asarray(tok.sentinel_ids, dtype=np.int32)

    def __call__(self, chunk: Chunk) -> ChunkResult:
        seed = self.p["seed"]
        if self.objective in ("nsp", "sop"):
            docs = self._encode_sentences(chunk.texts)
            rows = self._pair_rows(chunk, docs, seed)
            stats = {"doc_tokens": sum(int(s.size) for d in docs for s in d)}
        else:
            docs = self.tok.encode_batch(chunk.texts)
            stats = {"doc_tokens": sum(int(d.size) for d in docs)}
            rows = _ROWS[self.objective](self, chunk, docs, seed)
        block = rows if isinstance(rows, RowBlock) else RowBlock.from_rows(rows)
        stats.update(documents=len(chunk.texts), bytes=chunk.nbytes, **self.row_stats(block, stats["doc_tokens"]))
        return ChunkResult(chunk.split, chunk.index, block, stats)

    def _encode_sentences(self, texts: list[str]) -> list[list[np.ndarray]]:
        from plmkit.corpus import split_sentences

        per_doc = [split_sentences(t) for t in texts]
        flat = self.tok.encode_batch([s for doc in per_doc for s in doc])
        out, at = [], 0
        for doc in per_doc:
            out.append([ids for ids in flat[at : at + len(doc)] if ids.size])
            at += len(doc)
        return out

    # ---------------------------------------------------------------- objectives

    def _mlm_rows(self, chunk: Chunk, docs: list[np.ndarray], seed: int) -> RowBlock:
        sp, seq_len = self.specials, self.p["seq_len"]
        cut = segment_stream if self.p["cross_documents"] else segment_documents
        flat, lengths = cut(docs, seq_len, sp)
        if self.p["dynamic"]:
            cols = {"input_ids": flat, "special_tokens_mask": sp.is_special(flat).astype(np.uint8)}
            return RowBlock(cols, dict.fromkeys(cols, lengths), lengths.size)
        rng = example_rng(seed, PER_CHUNK, chunk.doc_ids[0])
        if self.word_starts is None and self.spec.ngram == 1:  # the vectorised path (plmkit.data.batched)
            cols = mask_flat(flat, lengths, rng, sp, mask_prob=self.spec.mask_prob,
                             max_predictions=self.spec.max_predictions, mask_replace=self.spec.mask_replace,
                             random_replace=self.spec.random_replace)
            return RowBlock(cols, dict.fromkeys(cols, lengths), lengths.size)
        segments = np.split(flat, np.cumsum(lengths)[:-1]) if lengths.size else []
        return RowBlock.from_rows([self._mask_segment(s, rng) for s in segments])

    def _mask_segment(self, ids: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Whole-word or n-gram masking of one segment (word starts read in context)."""
        special = self.specials.is_special(ids)
        starts = self.tok.word_start_mask(ids) if self.word_starts is not None else None
        s = self.spec
        input_ids, labels = mask_tokens(ids, special, rng, specials=self.specials, mask_prob=s.mask_prob,
                                        max_predictions=s.max_predictions, mask_replace=s.mask_replace,
                                        random_replace=s.random_replace, word_starts=starts, ngram=s.ngram)
        return {"input_ids": input_ids, "labels": labels, "special_tokens_mask": special.astype(np.uint8)}

    def _pair_rows(self, chunk: Chunk, docs: list[list[np.ndarray]], seed: int) -> list[dict]:
        common = {"seq_len": self.p["seq_len"], "specials": self.specials, "short_seq_prob": self.p["short_seq_prob"],
                  "spec": self.spec, "word_start_table": self.word_starts}
        rows = []
        usable = [j for j, doc in enumerate(docs) if any(len(s) for s in doc)]
        for i, (d, sentences) in enumerate(zip(chunk.doc_ids, docs, strict=True)):
            rng = example_rng(seed, PER_DOCUMENT, d)
            if self.objective == "nsp":
                rows += nsp_examples(sentences, rng, sample_other=_other_sampler(docs, usable, i), **common)
            else:
                rows += sop_examples(sentences, rng, **common)
        return rows

    def _t5_rows(self, chunk: Chunk, docs: list[np.ndarray], seed: int) -> list[dict]:
        # T5 concatenates documents without a separator before splitting (data-objectives.md §4.2).
        raw_len, _ = t5_input_target_lengths(self.p["seq_len"], self.p["noise_density"], self.p["mean_span"])
        packer = BlockPacker(raw_len)
        pieces = [b for d in docs for b in packer.add(d)] + packer.finish()
        rng = example_rng(seed, PER_CHUNK, chunk.doc_ids[0])
        return [span_corrupt(b, rng, sentinels=self.sentinels, eos=self.specials.eos,
                             noise_density=self.p["noise_density"], mean_span=self.p["mean_span"]) for b in pieces]

    def _glm_rows(self, chunk: Chunk, docs: list[np.ndarray], seed: int) -> list[dict]:
        rows = []
        for d, ids in zip(chunk.doc_ids, docs, strict=True):
            rows += glm_examples(ids, example_rng(seed, PER_DOCUMENT, d), seq_len=self.p["seq_len"],
                                 specials=self.specials, mask_prob=self.p["mask_prob"],
                                 poisson_lambda=self.p["poisson_lambda"])
        return rows

    def _clm_rows(self, chunk: Chunk, docs: list[np.ndarray], seed: int) -> RowBlock:
        stream = [clm_document(ids, self.specials, self.p["bos"]) for ids in docs]
        return RowBlock.from_lists("input_ids", [np.concatenate(stream)] if stream else [])

    # ---------------------------------------------------------------- statistics

    def row_stats(self, block: RowBlock, doc_tokens: int) -> dict[str, int]:
        """Additive counts for the summary (examples, tokens, and what the objective predicts)."""
        stats = {"examples": block.num_rows, "tokens": int(block.values["input_ids"].size) if block.num_rows else 0}
        if not block.num_rows:
            return stats
        v = block.values
        if self.objective in ("mlm", "nsp", "sop") and "labels" in v:
            stats.update(masking_counts(v["input_ids"], v["labels"], v["special_tokens_mask"], self.specials.mask))
        for label in ("next_sentence_label", "sentence_order_label"):
            if label in v:
                stats["label_1"] = int(np.count_nonzero(v[label]))
        if self.objective == "t5-span":
            # labels = S0 X0 S1 X1 … EOS: the noise tokens are everything but sentinels and the EOS
            noise = int(np.count_nonzero(~np.isin(v["labels"], self.sentinels))) - block.num_rows
            stats.update(noise=noise, raw_tokens=doc_tokens)
        if self.objective == "glm":
            targets = v["labels"][v["labels"] != IGNORE_INDEX]
            stats.update(noise=int(np.count_nonzero(targets != self.specials.eop)), raw_tokens=doc_tokens)
        return stats


def _word_start_table(tok) -> np.ndarray:
    """Per id: does the token begin a word, read without context (for `word_start_table`).

    `tok.word_start_mask(ids)` reads a sequence: a token also begins a word when the token
    before it ends in whitespace. Over `arange(V)` that would make each id's answer depend on
    the id before it; over the pairs `i, i` it depends on `i` only, and a token that ends in
    whitespace (`Ġ`, `▁`, a newline) also begins with it, so the answer is the token's own.
    """
    ids = np.repeat(np.arange(tok.vocab_size), 2)
    return np.asarray(tok.word_start_mask(ids), dtype=bool)[1::2]


def _other_sampler(docs: list, usable: list[int], index: int):
    """`pairs.other_document_sampler(docs, index)` (same draws) in O(1) per document instead of
    O(chunk): `usable` lists the documents with sentences, computed once per chunk."""
    pos = bisect.bisect_left(usable, index)
    skip = pos < len(usable) and usable[pos] == index  # the document itself is usable: skip it
    n_others = len(usable) - skip
    if n_others == 0:
        return None

    def sample(rng: np.random.Generator):
        k = int(rng.integers(n_others))
        return docs[usable[k + 1 if skip and k >= pos else k]]

    return sample


def masking_counts(input_ids: np.ndarray, labels: np.ndarray, special: np.ndarray, mask_id: int) -> dict[str, int]:
    """How many tokens are maskable and predicted, and how the predicted ones were replaced.

    A random replacement that happens to draw the original id counts as kept.

    >>> masking_counts(np.array([2, 4, 9, 7, 3]), np.array([-100, 5, 6, 7, -100]), np.array([1, 0, 0, 0, 1]), 4)
    {'maskable': 3, 'predicted': 3, 'masked': 1, 'random': 1, 'kept': 1}
    """
    predicted = labels != IGNORE_INDEX
    inp, lab = input_ids[predicted], labels[predicted]
    masked = int(np.count_nonzero(inp == mask_id))
    kept = int(np.count_nonzero((inp == lab) & (inp != mask_id)))
    n = int(inp.size)
    return {"maskable": int(np.count_nonzero(special == 0)), "predicted": n, "masked": masked,
            "random": n - masked - kept, "kept": kept}


_ROWS: dict[str, Callable] = {
    "mlm": ChunkWorker._mlm_rows, "t5-span": ChunkWorker._t5_rows, "glm": ChunkWorker._glm_rows,
    "clm": ChunkWorker._clm_rows,
}


# --------------------------------------------------------------------------- worker processes

_WORKER: ChunkWorker | None = None


def init_worker(tokenizer_dir: str, params: dict[str, Any]) -> None:
    """Pool initializer: one encoding thread per process (the processes are the parallelism).

    A forked worker inherits the parent's `ChunkWorker` (see `share_with_forks`); a spawned one
    loads the tokenizer itself.
    """
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["RAYON_NUM_THREADS"] = "1"
    if _WORKER is None or _WORKER.p != params:
        from plmkit.tokenization import load_tokenizer

        _WORKER = ChunkWorker(load_tokenizer(tokenizer_dir), params)


def share_with_forks(worker: ChunkWorker | None) -> None:
    """Let processes forked from now on start from `worker` instead of loading the tokenizer again."""
    global _WORKER
    _WORKER = worker


def run_chunk(chunk: Chunk) -> ChunkResult:
    assert _WORKER is not None, "init_worker was not called"
    return _WORKER(chunk)


def run_chunks(chunks: list[Chunk]) -> list[ChunkResult]:
    """One task of a worker process: consecutive chunks, results in the same order."""
    return [run_chunk(c) for c in chunks]
