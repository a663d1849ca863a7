"""Corpus → token ids → examples → Arrow shards: `plmkit build-data` and `--merge`.

The pipeline, and why each step is shaped the way it is:

1. **Route.** Documents stream from `plmkit.corpus.iter_documents` in a fixed order; document
   `d` goes to validation when `validation_draw(seed, d) < --validation-fraction` (a hash of
   (seed, d), so no pass over the corpus is needed). The last document is held back until the
   end so that a corpus of two or more documents always gets at least one validation and one
   training document.
2. **Chunk.** Each split's documents are cut into chunks of `chunk_docs` documents or
   `chunk_chars` characters, whichever comes first, and `shard_chunks` consecutive chunks form
   a *group*. These boundaries depend on the corpus and the parameters only.
3. **Work.** Chunks go to `work.ChunkWorker`, in this process or in forked worker processes
   (`--num-proc N`: this one and N − 1 workers, see `_Runner`), at most `2 × num_proc + 2` in
   flight (memory stays bounded by that, not by the corpus); results come back in order. Rows
   depend only on the chunk, never on the process.
4. **Group files.** Each group's rows go to one Arrow file in a work folder beside `--out`,
   `.OUT.work-KEY/` (KEY = fingerprint of corpus, tokenizer and parameters), written under a
   temporary name and renamed when the group is complete. A rerun of an interrupted build
   skips the groups already there, so it completes the build instead of starting over.
5. **Assemble.** The group files become the shards of `DATA/train` and `DATA/validation`
   (hard links, no copy), except for clm, whose stream is packed across groups into blocks of
   exactly `seq_len` here; then the tokenizer copy, the split metadata and `plmkit.json`.
   All of this happens in `manifest.staging_dir`, renamed to `--out` only when complete.

**Splitting across machines.** `--num-shards K --shard-index I` builds only the groups
`g ≡ I (mod K)` of each split (every machine still reads the whole corpus, which is cheap next
to encoding it); `merge_data` checks that K slice directories agree and joins their group files
in group order — the result is byte-identical to a single build (clm's blocks are re-packed
across the seams; slice directories keep each group's clm remainder for that).
"""

from __future__ import annotations

import bisect
import gc
import itertools
import json
import os
import shutil
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plmkit.data import params as P
from plmkit.data.objectives import SpecialIds
from plmkit.data.objectives.clm import BlockPacker
from plmkit.data.shards import (
    SPLITS,
    RowBlock,
    Schema,
    ShardWriter,
    block_from_batch,
    objective_schema,
    open_shard,
    shard_name,
    write_empty_shard,
    write_split_metadata,
)
from plmkit.data.work import Chunk, ChunkResult, ChunkWorker, init_worker, run_chunks, share_with_forks
from plmkit.errors import PlmkitError, check
from plmkit.manifest import fingerprint_of, read_manifest, staging_dir, write_manifest
from plmkit.progress import NULL, Progress

CLM_SHARD_TOKENS = 1 << 23  # clm shards after re-packing: about 8M tokens each
CLM_BATCH_ROWS = 8192  # rows per Arrow record batch of a clm shard: fewer batches, less to map when training opens a large set
TASK_BYTES = 1 << 18  # text per task sent to a worker process (see _Runner)
PIPE_BYTES = 1 << 20  # pipe buffer asked for between this process and its workers (see _widen_pipes)
ROUTE_BATCH = 1024  # documents routed and chunked per step of _stream_chunks


# --------------------------------------------------------------------------- routing and chunking

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def validation_draw(seed: int, doc_index: int) -> float:
    """A uniform number in [0, 1) that depends only on (seed, document index).

    >>> validation_draw(0, 5) == validation_draw(0, 5), validation_draw(0, 5) == validation_draw(1, 5)
    (True, False)
    """
    return _splitmix64(_splitmix64(seed) ^ doc_index) / 2.0**64


def _splitmix64_array(x: np.ndarray) -> np.ndarray:
    """`_splitmix64` of each element of a uint64 array (numpy's uint64 arithmetic wraps mod 2**64)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def validation_draws(seed: int, doc_ids: np.ndarray) -> np.ndarray:
    """`validation_draw(seed, d)` for every d of `doc_ids`, as float64.

    Equal bit for bit: uint64 → float64 rounds to nearest even, as Python's int → float does,
    and dividing by 2**64 is exact. (1024 documents: 15 µs instead of 440 µs.)

    >>> bool(validation_draws(3, np.arange(5))[4] == validation_draw(3, 4))
    True
    """
    x = np.uint64(_splitmix64(seed)) ^ np.asarray(doc_ids, dtype=np.uint64)
    return _splitmix64_array(x).astype(np.float64) / 2.0**64


class SplitRouter:
    """Sends each document to train or validation; see step 1 of the module docstring.

    A document's split is `validation_draw(seed, d) < fraction`, except the last one's: it is held
    back until `finish`, which sends it to whichever split would otherwise be empty (when the
    corpus has two documents or more and the fraction is not 0).

    >>> r = SplitRouter(seed=0, fraction=0.0001)  # so small that no document is drawn …
    >>> r.push_many(0, ["a", "b", "c"])[1].tolist(), r.finish()  # … but the last one goes to validation
    ([False, False], [('validation', 2, 'c')])
    """

    def __init__(self, seed: int, fraction: float):
        self.seed, self.fraction = seed, fraction
        self.count = dict.fromkeys(SPLITS, 0)
        self._held: tuple[int, str] | None = None

    def push_many(self, first: int, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Documents first, first + 1, … in: the (document ids, is-validation mask, texts) of the
        documents routed, in order (the one held before first; the last one of `texts` is held)."""
        if not texts:
            return np.zeros(0, np.int64), np.zeros(0, bool), []
        ids = np.arange(first, first + len(texts), dtype=np.int64)
        if self._held is not None:
            ids, texts = np.concatenate([[self._held[0]], ids]), [self._held[1], *texts]
        self._held = (int(ids[-1]), texts[-1])
        ids, texts = ids[:-1], texts[:-1]
        if self.fraction <= 0:
            validation = np.zeros(ids.size, bool)
        else:
            validation = validation_draws(self.seed, ids) < self.fraction
        n = int(np.count_nonzero(validation))
        self.count["validation"] += n
        self.count["train"] += ids.size - n
        return ids, validation, texts

    def finish(self) -> list[tuple[str, int, str]]:
        """The held last document as (split, id, text), if any."""
        if self._held is None:
            return []
        d, text = self._held
        self._held = None
        split = "validation" if self.fraction > 0 and validation_draw(self.seed, d) < self.fraction else "train"
        if self.fraction > 0 and sum(self.count.values()) >= 1:  # ≥ 2 documents in all
            if self.count["validation"] == 0:
                split = "validation"
            elif self.count["train"] == 0:
                split = "train"
        self.count[split] += 1
        return [(split, d, text)]


class Chunker:
    """Cuts one split's documents into `Chunk`s of at most `max_docs` documents / about `max_chars`."""

    def __init__(self, split: str, max_docs: int, max_chars: int):
        self.split, self.max_docs, self.max_chars = split, max_docs, max_chars
        self.count = 0
        self._chunk, self._chars = Chunk(split, 0), 0

    def add_many(self, doc_ids: list[int], texts: list[str]) -> list[tuple[int, Chunk]]:
        """Append documents; the chunks they complete, each with the id of the document that
        completed it (so that the chunks of both splits can be put in corpus order).

        A chunk ends at the first document that makes it `max_docs` long or `max_chars` chars:
        found with a search in the cumulative lengths, not one step per document.
        """
        done: list[tuple[int, Chunk]] = []
        ends = list(itertools.accumulate(map(len, texts)))  # chars of texts[:i + 1]
        i = 0
        while i < len(texts):
            base = ends[i - 1] if i else 0
            room = self.max_docs - len(self._chunk.texts)
            full = bisect.bisect_left(ends, self.max_chars - self._chars + base, i)  # chars reach max_chars
            last = min(full, i + room - 1)
            take = min(last, len(texts) - 1)
            self._chunk.doc_ids.extend(doc_ids[i : take + 1])
            self._chunk.texts.extend(texts[i : take + 1])
            self._chars += ends[take] - base
            if take == last:
                done.append((doc_ids[take], self.flush()))
            i = take + 1
        return done

    def flush(self) -> Chunk | None:
        if not self._chunk.texts:
            return None
        chunk = self._chunk
        chunk.nbytes = len("".join(chunk.texts).encode("utf-8"))
        self._chunk, self._chars = Chunk(self.split, chunk.index + 1), 0
        self.count += 1
        return chunk


# --------------------------------------------------------------------------- the plan of one build


@dataclass
class Plan:
    """Where a build writes, and which groups it owns."""

    params: dict[str, Any]
    work: Path
    schema: Schema
    num_shards: int = 1
    shard_index: int = 0

    @property
    def shard_chunks(self) -> int:
        return self.params["layout"]["shard_chunks"]

    def group_of(self, chunk_index: int) -> int:
        return chunk_index // self.shard_chunks

    def owns(self, group: int) -> bool:
        return group % self.num_shards == self.shard_index

    def group_path(self, split: str, group: int) -> Path:
        return self.work / split / f"g{group:06d}.arrow"

    def done(self, split: str, group: int) -> bool:
        return self.group_path(split, group).is_file()

    def stats(self, split: str, group: int) -> dict[str, int]:
        return json.loads(self.group_path(split, group).with_suffix(".json").read_text(encoding="utf-8"))

    def groups(self, split: str, chunks: int) -> list[int]:
        """This build's groups of a split that had `chunks` chunks, in order."""
        return [g for g in range(-(-chunks // self.shard_chunks)) if self.owns(g)]


class GroupSink:
    """Writes one split's chunk results into group files, one group at a time, in chunk order."""

    def __init__(self, plan: Plan, split: str):
        self.plan, self.split = plan, split
        self.group: int | None = None
        self._writer: ShardWriter | None = None
        self._stats: dict[str, int] = {}
        self._packer: BlockPacker | None = None
        (plan.work / split).mkdir(parents=True, exist_ok=True)

    def add(self, result: ChunkResult) -> None:
        group = self.plan.group_of(result.index)
        if group != self.group:
            self.close()
            self.group = group
            self._writer = ShardWriter(self.plan.group_path(self.split, group), self.plan.schema)
            self._stats = {}
            if self.plan.params["objective"] == "clm":  # groups keep their own remainder (see merge)
                self._packer = BlockPacker(self.plan.params["seq_len"])
        block = result.block
        if self._packer is not None and block.num_rows:
            block = RowBlock.from_lists("input_ids", self._packer.add(block.values["input_ids"]))
        self._writer.write(block)
        _add_stats(self._stats, result.stats)

    def close(self) -> None:
        if self._writer is None:
            return
        if self._packer is not None:
            self._writer.write(RowBlock.from_lists("input_ids", self._packer.finish()))
        self._stats["examples"] = self._writer.rows  # clm: blocks, not the chunks' streams
        stats_path = self.plan.group_path(self.split, self.group).with_suffix(".json")
        stats_path.write_text(json.dumps(self._stats, sort_keys=True), encoding="utf-8")
        self._writer.close()  # the .arrow file appearing marks the group complete
        self._writer = None

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def _add_stats(total: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


# --------------------------------------------------------------------------- running chunks


class _Runner:
    """Runs chunks in order on `num_proc` processes: this one and `num_proc - 1` forked workers.

    This process is one of the N: it reads, routes and writes, and whenever every worker already
    has a task running and one waiting, it runs the next task itself instead of waiting. (A pool
    of N workers beside a busy main process would put N + 1 processes on N cores.) Results are
    taken in task order whatever ran them, so the rows do not depend on N.

    Before the pool is forked, this process teaches its encoder the distinct words of the first
    chunk (`Tokenizer.warm`): every worker then starts with the corpus's common words in its
    cache of encoded words (`tokenization.fast`) instead of encoding them again each. That costs
    less than running the first chunk here, which kept the workers idle for 20 ms of a 0.3 s
    build of a Chinese novel; and it leaves the workers fewer words to learn than warming on the
    first 32K characters did (paired 1 → 2 speed-up on that novel 1.33 and 1.35× against 1.26
    and 1.25×, 44 and 33 pairs; on English no change).

    A task sent to a worker is a run of consecutive chunks of about `TASK_BYTES` of text
    (one message each way instead of one per chunk): fewer wake-ups of the main process and its
    pool threads, and a queue deep enough that a busy machine descheduling the main process for
    a while does not leave the workers idle. Chunk boundaries, hence the rows, do not change.

    A `ProcessPoolExecutor` (not `multiprocessing.Pool`): a worker that dies (killed, out of
    memory) fails the build with an error instead of leaving a result that never comes.
    """

    def __init__(self, tokenizer_dir: str, tok, params: dict[str, Any], num_proc: int):
        self._pending: deque = deque()
        self._task: list[Chunk] = []
        self._task_bytes = 0
        self.limit = 2 * num_proc + 2  # results held, done or not, before this process waits for the oldest
        self.depth = 2 * (num_proc - 1)  # tasks given to the workers at once: one running and one waiting each
        self.num_proc, self.tokenizer_dir, self.params = num_proc, tokenizer_dir, params
        self._pool = None
        # One encoding thread per process: --num-proc N means N cores. (Set before any encoding,
        # so that forked workers inherit a tokenizer that never started its thread pool.)
        self._env = os.environ.get("TOKENIZERS_PARALLELISM")
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        self._local = ChunkWorker(tok, params)

    def submit(self, chunk: Chunk) -> Iterator[ChunkResult]:
        """Queue `chunk`; yields the results that must be taken to stay within the limit."""
        if self.num_proc == 1:
            yield self._local(chunk)
            return
        if self._pool is None:
            self._warm(chunk)
            self._start_pool()
        self._task.append(chunk)
        self._task_bytes += chunk.nbytes
        if self._task_bytes >= TASK_BYTES:
            self._send()
        while self._pending and (len(self._pending) >= self.limit or self._pending[0].done()):
            yield from self._result(self._pending.popleft())

    def _send(self, last: bool = False) -> None:
        """Give the current task to a worker, or run it here when the workers are all busy."""
        if not self._task:
            return
        # the last task: this process would only wait, so it runs it unless a worker is idle
        if sum(not f.done() for f in self._pending) < (self.num_proc - 1 if last else self.depth):
            self._pending.append(self._pool.submit(run_chunks, self._task))
        else:
            done: Future = Future()
            done.set_result([self._local(c) for c in self._task])
            self._pending.append(done)
        self._task, self._task_bytes = [], 0

    def _warm(self, chunk: Chunk) -> None:
        """Teach the encoder the words of the first chunk, so that forked workers start with the
        corpus's common words in its cache instead of each encoding them again."""
        self._local.tok.warm(chunk.texts)

    def _start_pool(self) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        share_with_forks(self._local)  # forked workers start from this (warm) worker
        self._pool = ProcessPoolExecutor(self.num_proc - 1, mp_context=ctx, initializer=init_worker,
                                         initargs=(self.tokenizer_dir, self.params))
        _widen_pipes(self._pool)
        # Fork now (the executor forks at its first task) with this process's objects frozen: a
        # worker's garbage collector then never walks them, which would copy every page they lie on.
        gc.freeze()
        try:
            self._pool.submit(os.getpid)
        finally:
            gc.unfreeze()

    def drain(self) -> Iterator[ChunkResult]:
        if self._pool is not None:
            self._send(last=True)
        while self._pending:
            yield from self._result(self._pending.popleft())

    @staticmethod
    def _result(future) -> list[ChunkResult]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool as e:
            raise PlmkitError("a build-data worker process died (killed, or out of memory)",
                              hint="rerun the command: it resumes; lower --num-proc if memory is short") from e

    def close(self, ok: bool) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=not ok)
            share_with_forks(None)
        if self._env is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = self._env


def _widen_pipes(pool) -> None:
    """Let a task or a result (up to a few MB) cross the pool's pipes in one or two writes.

    With Linux's default 64 KB pipes, moving one takes ~16 reads or writes by a thread of this
    process, each of which must take the GIL back from the main thread while it encodes: the
    worker then waits ~20 ms per task for its next task. Best effort (the pipes are the
    executor's private attributes): left as they are where that fails.
    """
    try:
        import fcntl

        size = min(PIPE_BYTES, int(Path("/proc/sys/fs/pipe-max-size").read_text()))
        for queue in (pool._call_queue, pool._result_queue):  # one end sizes the whole pipe
            fcntl.fcntl(queue._writer.fileno(), fcntl.F_SETPIPE_SZ, size)
    except (ImportError, AttributeError, OSError, ValueError):
        pass


class _Meter:
    """Progress figures: documents, tokens and MB/s of corpus text."""

    def __init__(self, progress: Progress):
        self.progress, self.t0 = progress, time.monotonic()
        self.docs = self.tokens = self.bytes = 0

    def add(self, documents: int, nbytes: int, tokens: int) -> None:
        self.docs += documents
        self.tokens += tokens
        self.bytes += nbytes
        rate = self.bytes / 1e6 / max(time.monotonic() - self.t0, 1e-9)
        self.progress.update(nbytes / 1e6, docs=self.docs, tokens=self.tokens, **{"MB/s": round(rate, 2)})


def _stream_chunks(corpus: Sequence[str], p: dict[str, Any]) -> Iterator[Chunk | tuple[str, int]]:
    """Chunks of both splits in corpus order; at the end, ("split", chunk count) per split."""
    from plmkit.corpus import iter_documents

    c, lay = p["corpus"], p["layout"]
    router = SplitRouter(p["seed"], p["validation_fraction"])
    chunkers = {s: Chunker(s, lay["chunk_docs"], lay["chunk_chars"]) for s in SPLITS}
    docs = iter_documents(corpus, doc_per_line=c["doc_per_line"], text_field=c["text_field"],
                          encoding_errors=c["encoding_errors"])
    first = 0
    while batch := list(itertools.islice(docs, ROUTE_BATCH)):
        ids, validation, texts = router.push_many(first, batch)
        first += len(batch)
        done = []
        for split, mask in (("train", ~validation), ("validation", validation)):
            picked = np.flatnonzero(mask).tolist()
            if len(picked) == len(texts):
                done += chunkers[split].add_many(ids.tolist(), texts)
            elif picked:
                done += chunkers[split].add_many(ids[picked].tolist(), [texts[i] for i in picked])
        done.sort(key=lambda x: x[0])  # the order in which document-by-document chunking completes them
        yield from (chunk for _, chunk in done)
    for split, di, t in router.finish():
        yield from (chunk for _, chunk in chunkers[split].add_many([di], [t]))
    for split in SPLITS:
        if (chunk := chunkers[split].flush()) is not None:
            yield chunk
        yield split, chunkers[split].count


def _run_groups(corpus, tokenizer_dir, tok, plan: Plan, num_proc: int, progress: Progress) -> dict[str, int]:
    """Build every missing group file of this plan; returns the chunk count of each split."""
    sinks = {s: GroupSink(plan, s) for s in SPLITS}
    meter, counts = _Meter(progress), {}
    runner = _Runner(str(tokenizer_dir), tok, plan.params, num_proc)
    ok = False

    def take(results: Iterable[ChunkResult]) -> None:
        for r in results:
            sinks[r.split].add(r)
            meter.add(r.stats["documents"], r.stats["bytes"], r.stats["tokens"])

    resumed: set[tuple[str, int]] = set()
    done: dict[tuple[str, int], bool] = {}  # one stat per group, not per chunk
    try:
        for item in _stream_chunks(corpus, plan.params):
            if isinstance(item, tuple):
                counts[item[0]] = item[1]
                continue
            group, key = plan.group_of(item.index), (item.split, plan.group_of(item.index))
            if key not in done:
                done[key] = plan.owns(group) and plan.done(*key)
            if not plan.owns(group):
                meter.add(len(item.texts), item.nbytes, 0)
            elif done[key]:
                resumed.add((item.split, group))
                meter.add(len(item.texts), item.nbytes, 0)
            else:
                take(runner.submit(item))
        take(runner.drain())
        for sink in sinks.values():
            sink.close()
        ok = True
    finally:
        runner.close(ok)
        if not ok:
            for sink in sinks.values():
                sink.abort()
    if resumed:
        progress.log(f"resumed an interrupted build: {len(resumed)} shard group(s) were already complete in {plan.work}")
    return counts


# --------------------------------------------------------------------------- assembling DATA/


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_split(out: Path, split: str, sources: list[Path], schema: Schema, key: str) -> list[dict[str, Any]]:
    """Link the shard files into `out/split/` with datasets' names; metadata beside them."""
    d = out / split
    d.mkdir(parents=True)
    names = [shard_name(i, len(sources)) for i in range(len(sources))] or [shard_name(0, 1)]
    for src, name in zip(sources, names, strict=False):  # no source: an empty shard
        _link(src, d / name)
    if not sources:
        write_empty_shard(d / names[0], schema)
    write_split_metadata(d, schema, names, f"{key[:16]}-{split}", split)
    return [{"file": n, "bytes": (d / n).stat().st_size} for n in names]


def _clm_repack(sources: list[Path], out: Path, split: str, p: dict[str, Any], schema: Schema,
                drop_remainder: bool) -> tuple[list[Path], dict[str, int]]:
    """Pack the token stream of a split's clm groups into blocks of exactly `seq_len` across groups.

    Each group file holds its own stream cut into blocks with the remainder kept, so flattening
    it gives the group's stream back; shards hold `CLM_SHARD_TOKENS // seq_len` blocks each.
    """
    tmp = out / f".{split}-clm"
    tmp.mkdir()
    packer = BlockPacker(p["seq_len"])
    per_shard = max(1, CLM_SHARD_TOKENS // p["seq_len"])
    files: list[Path] = []
    pending: list[np.ndarray] = []
    totals = {"examples": 0, "tokens": 0}

    def flush(blocks: list[np.ndarray]) -> None:
        writer = ShardWriter(tmp / f"s{len(files):06d}.arrow", schema)
        for i in range(0, len(blocks), CLM_BATCH_ROWS):
            writer.write(RowBlock.from_lists("input_ids", blocks[i : i + CLM_BATCH_ROWS]))
        writer.close()
        files.append(writer.path)
        totals["examples"] += len(blocks)
        totals["tokens"] += sum(b.size for b in blocks)

    for path in sources:
        for batch in open_shard(path).to_batches():
            pending += packer.add(block_from_batch(batch, schema).values["input_ids"])
            while len(pending) >= per_shard:
                flush(pending[:per_shard])
                pending = pending[per_shard:]
    pending += packer.finish(drop_remainder)
    if pending:
        flush(pending)
    return files, {**totals, "dropped_tokens": packer.dropped}


def _assemble(out: Path, plan: Plan, groups: dict[str, list[int]], tok, key: str, repack: bool) -> dict[str, Any]:
    """Fill the staging dir `out` from the group files; returns per-split counts, shard lists and,
    for slices, the record of each group (its statistics and which shard holds it)."""
    counts, shards, records = {}, {}, {}
    p = plan.params
    for split in SPLITS:
        stats = {g: plan.stats(split, g) for g in groups[split]}
        counts[split] = {}
        for s in stats.values():
            _add_stats(counts[split], s)
        sources = [plan.group_path(split, g) for g in groups[split] if stats[g]["examples"]]
        repacked = p["objective"] == "clm" and repack
        if repacked:
            sources, packed = _clm_repack(sources, out, split, p, plan.schema, p["drop_remainder"])
            counts[split].update(packed)
        shards[split] = _write_split(out, split, sources, plan.schema, key)
        names = iter(s["file"] for s in shards[split])
        records[split] = [] if repacked else [
            {"group": g, "file": next(names) if stats[g]["examples"] else None, "stats": stats[g]}
            for g in groups[split]]
        shutil.rmtree(out / f".{split}-clm", ignore_errors=True)
    tok.save(out / "tokenizer")
    return {"counts": counts, "shards": shards, "groups": records}


# --------------------------------------------------------------------------- the build


def load_tokenizer_dir(path: str | os.PathLike, flag: str = "--tokenizer"):
    from plmkit.tokenization import load_tokenizer

    return load_tokenizer(path, flag=flag)


def check_tokenizer(tok, params: dict[str, Any]) -> None:
    """The tokenizer has every special token the objective writes (and enough T5 sentinels)."""
    objective = params["objective"]
    needed = P.ROLES_NEEDED[objective] + (("bos",) if params.get("bos") else ())
    for role in needed:
        check(role in tok.roles, f"--tokenizer {tok.path} has no {role} token, which --objective {objective} needs",
              "retrain it with `plmkit tokenize` (every plmkit tokenizer reserves all roles)")
    if objective == "t5-span":
        spans = P.t5_spans_per_example(params)
        check(len(tok.sentinel_ids) >= spans,
              f"--seq-len {params['seq_len']} needs {spans} T5 sentinels per example, but --tokenizer {tok.path} "
              f"has {len(tok.sentinel_ids)}", "lower --seq-len or --noise-density, or raise --mean-span")
    SpecialIds.from_tokenizer(tok)  # asserts the ids lie in the vocabulary


def build_key(params: dict[str, Any], inputs: list[dict[str, Any]], tokenizer_fingerprint: str) -> str:
    """What the group files depend on: parameters, corpus content and tokenizer (not paths, not slices)."""
    content = [(i.get("bytes"), i.get("sha256"), i.get("format")) for i in inputs]
    return fingerprint_of({"params": params, "inputs": content, "tokenizer": tokenizer_fingerprint})


def _clean_stale(out: Path) -> None:
    """Staging folders of build processes that were killed (their pid is gone)."""
    for path in out.resolve().parent.glob(f".{out.name}.partial-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_data(
    corpus: Sequence[str | os.PathLike],
    tokenizer: str | os.PathLike,
    out: str | os.PathLike,
    params: dict[str, Any],
    *,
    num_proc: int = 1,
    num_shards: int = 1,
    shard_index: int = 0,
    force: bool = False,
    progress: Progress = NULL,
) -> dict[str, Any]:
    """Build DATA/ at `out` from `corpus` with the tokenizer dir `tokenizer`; returns the manifest.

    `params` comes from `params.resolve_params`. See the module docstring for the pipeline.
    """
    from plmkit.corpus import describe_sources

    P._number("num_proc", num_proc, 1, 1024, integer=True)
    P._number("num_shards", num_shards, 1, 1 << 20, integer=True)
    check(0 <= shard_index < num_shards, f"--shard-index must be in [0, {num_shards - 1}] for --num-shards "
          f"{num_shards}, got {shard_index}")
    out = Path(out)
    tok = load_tokenizer_dir(tokenizer)
    check_tokenizer(tok, params)
    schema = objective_schema(params["objective"], tok.vocab_size, params["seq_len"], params.get("dynamic", False))
    inputs = describe_sources(list(corpus))
    key = build_key(params, inputs, tok.fingerprint)
    t0 = time.monotonic()
    _clean_stale(out)
    with staging_dir(out, force=force) as staging:
        work = out.resolve().parent / f".{out.name}.work-{key[:16]}"
        plan = Plan(params, work, schema, num_shards, shard_index)
        progress.start("build-data", total=_total_mb(corpus), unit="MB")
        counts = _run_groups(corpus, tokenizer, tok, plan, num_proc, progress)
        progress.finish()
        groups = {s: plan.groups(s, counts.get(s, 0)) for s in SPLITS}
        if num_shards > 1:
            check(bool(groups["train"]), f"--shard-index {shard_index} of --num-shards {num_shards} has no work: the "
                  f"training split has only {-(-counts['train'] // plan.shard_chunks)} groups",
                  "use fewer shards, or a smaller --shard-chunks")
        built = _assemble(staging, plan, groups, tok, key, repack=num_shards == 1)
        _check_not_empty(built["counts"], params, num_shards)
        extra = {"slice": {"num_shards": num_shards, "shard_index": shard_index, "groups": built["groups"]}} \
            if num_shards > 1 else {}
        manifest = write_manifest(staging, "data", params, inputs=inputs, upstream=tok.manifest,
                                  columns=schema.to_dict(), vocab_size=tok.vocab_size, counts=built["counts"],
                                  shards=built["shards"], elapsed_s=round(time.monotonic() - t0, 3), **extra)
    _remove_work_dirs(out)
    return manifest


def _total_mb(corpus: Sequence[str | os.PathLike]) -> float | None:
    from plmkit.corpus import resolve_sources

    sizes = [s.size for s in resolve_sources(list(corpus))]
    return None if any(s is None for s in sizes) else sum(sizes) / 1e6


def _check_not_empty(counts: dict[str, dict[str, int]], params: dict[str, Any], num_shards: int) -> None:
    if counts["train"].get("examples", 0) == 0 and num_shards == 1:
        raise PlmkitError(f"the corpus gave no training examples for --objective {params['objective']} "
                          f"({counts['train'].get('documents', 0)} documents, "
                          f"{counts['train'].get('doc_tokens', 0)} tokens)",
                          "pass a larger corpus, or check --doc-per-line / --text-field")


def _remove_work_dirs(out: Path) -> None:
    """After a successful build, no work folder of this output is needed any more."""
    for path in out.resolve().parent.glob(f".{out.name}.work-*"):
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- merging slices


_SLICE_ONLY = ("slice", "shards", "counts", "elapsed_s", "created", "fingerprint", "path", "inputs")


def _comparable(m: dict[str, Any]) -> dict[str, Any]:
    """What must agree between slices: everything but the slice's own position and results."""
    c = {k: v for k, v in m.items() if k not in _SLICE_ONLY}
    c["inputs"] = [(i.get("bytes"), i.get("sha256")) for i in m.get("inputs", [])]
    c["upstream"] = m.get("upstream", {}).get("fingerprint")
    return c


def _check_slices(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slices of one build, each exactly once; returned in shard-index order."""
    for m in manifests:
        check("slice" in m, f"--merge {m['path']} is a complete build, not a slice",
              "merge the outputs of `plmkit build-data … --num-shards K --shard-index I`")
    first = manifests[0]
    k = first["slice"]["num_shards"]
    for m in manifests[1:]:
        mine, theirs = _comparable(first), _comparable(m)
        for field in sorted(set(mine) | set(theirs)):
            check(mine.get(field) == theirs.get(field),
                  f"--merge {m['path']} does not match {first['path']}: their {field} differ"
                  + (" (built with another tokenizer)" if field == "upstream" else ""),
                  "merge only the slices of one build command")
        check(m["slice"]["num_shards"] == k, f"--merge {m['path']} is a slice of {m['slice']['num_shards']} shards, "
              f"{first['path']} of {k}", "merge only the slices of one build command")
    indices = sorted(m["slice"]["shard_index"] for m in manifests)
    missing = sorted(set(range(k)) - set(indices))
    check(not missing, f"--merge lacks shard index {', '.join(map(str, missing))} of {k}",
          "pass every slice directory of the build")
    check(len(indices) == len(set(indices)), "--merge got the same shard index twice", "pass each slice once")
    return sorted(manifests, key=lambda m: m["slice"]["shard_index"])


def merge_data(slices: Sequence[str | os.PathLike], out: str | os.PathLike, *, force: bool = False,
               progress: Progress = NULL) -> dict[str, Any]:
    """Join the K slice directories of one build into one DATA/ identical to a single build."""
    check(len(slices) >= 1, "--merge needs the slice directories", "e.g. --merge DATA-0 DATA-1")
    manifests = _check_slices([read_manifest(d, "data", flag="--merge") for d in slices])
    first, out, t0 = manifests[0], Path(out), time.monotonic()
    params = first["params"]
    tok_dir = Path(first["path"]) / "tokenizer"
    tok = load_tokenizer_dir(tok_dir, flag="--merge")
    check(tok.fingerprint == first["upstream"]["fingerprint"],
          f"--merge {first['path']}/tokenizer is not the tokenizer its shards were built with",
          "rebuild that slice")
    schema = objective_schema(params["objective"], tok.vocab_size, params["seq_len"], params.get("dynamic", False))
    key = build_key(params, first["inputs"], tok.fingerprint)
    progress.start("merge", total=len(manifests))
    with staging_dir(out, force=force) as staging:
        plan = Plan(params, staging / ".groups", schema)
        groups = {s: _gather_groups(manifests, s, plan) for s in SPLITS}
        built = _assemble(staging, plan, groups, tok, key, repack=True)
        shutil.rmtree(plan.work)
        _check_not_empty(built["counts"], params, 1)
        manifest = write_manifest(staging, "data", params, inputs=first["inputs"], upstream=first["upstream"],
                                  columns=schema.to_dict(), vocab_size=tok.vocab_size, counts=built["counts"],
                                  shards=built["shards"], elapsed_s=round(time.monotonic() - t0, 3))
        progress.update(len(manifests))
    progress.finish()
    return manifest


def _gather_groups(manifests: list[dict[str, Any]], split: str, plan: Plan) -> list[int]:
    """Link every slice's group files, and write their statistics, into `plan.work` by group index."""
    (plan.work / split).mkdir(parents=True, exist_ok=True)
    sizes = {}
    groups = []
    for m in manifests:
        d = Path(m["path"]) / split
        sizes = {s["file"]: s["bytes"] for s in m["shards"][split]}
        for rec in m["slice"]["groups"][split]:
            target = plan.group_path(split, rec["group"])
            if rec["file"] is not None:
                _check_shard(d / rec["file"], sizes[rec["file"]])
                _link(d / rec["file"], target)
            target.with_suffix(".json").write_text(json.dumps(rec["stats"]), encoding="utf-8")
            groups.append(rec["group"])
    return sorted(groups)


def _check_shard(path: Path, size: int) -> None:
    check(path.is_file(), f"--merge: shard {path} is missing", "rebuild that slice")
    check(path.stat().st_size == size, f"--merge: shard {path} has {path.stat().st_size} bytes, its manifest "
          f"says {size}", "the file is truncated or was replaced; rebuild that slice")


# --------------------------------------------------------------------------- the closing summary


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def summary_rows(manifest: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows (label, train, validation) of the closing table, from a data manifest."""
    counts = manifest["counts"]
    cols = [counts.get(s, {}) for s in SPLITS]

    def row(label: str, fn) -> tuple[str, ...]:
        return (label, *[fn(c) for c in cols])

    rows = [row("documents", lambda c: f"{c.get('documents', 0):,}"),
            row("examples", lambda c: f"{c.get('examples', 0):,}"),
            row("tokens", lambda c: f"{c.get('tokens', 0):,}"),
            ("shards", *[str(len(manifest["shards"][s])) for s in SPLITS])]
    p = manifest["params"]
    if "maskable" in cols[0]:
        rows += [row("mask rate", lambda c: _pct(c.get("predicted", 0), c.get("maskable", 0))
                     + f" of {c.get('maskable', 0):,}"),
                 row("mask / random / keep", lambda c: " / ".join(_pct(c.get(k, 0), c.get("predicted", 0))
                                                                 for k in ("masked", "random", "kept")))]
    if p["objective"] in ("nsp", "sop"):
        what = "B is random" if p["objective"] == "nsp" else "swapped"
        rows.append(row(f"label 1 ({what})", lambda c: _pct(c.get("label_1", 0), c.get("examples", 0))))
    if "noise" in cols[0]:
        rows.append(row("noise rate", lambda c: _pct(c.get("noise", 0), c.get("raw_tokens", 0))))
    if p["objective"] == "clm" and p["drop_remainder"]:
        rows.append(row("dropped tokens", lambda c: f"{c.get('dropped_tokens', 0):,}"))
    if p["objective"] == "mlm" and p["dynamic"]:
        rows.append(("masking", "at load time (--dynamic)", ""))
    if "elapsed_s" in manifest:
        mb = sum(c.get("bytes", 0) for c in cols) / 1e6
        rows.append(("time", f"{manifest['elapsed_s']:.1f} s, {mb / max(manifest['elapsed_s'], 1e-9):.2f} MB/s", ""))
    return rows
