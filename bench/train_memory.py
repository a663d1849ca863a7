"""Peak memory and start-up of `plmkit train` on a small and a > 4 GB CLM shard set (issue #7).

    python bench/train_memory.py [--small-tokens 2.5e7] [--large-tokens 2.2e9] [--workers 0,2]
                                 [--cache hot,cold] [--batch-rows 1024] [--steps 50]
                                 [--root /work/bench_runs/train_memory] [--keep]

Claim under test: training reads the shards memory-mapped, so the training process's own memory
does not grow with the size of the shard set; only the pages it touches are mapped, and those
are file-backed page cache (RssFile, reclaimable), not the process's memory (RssAnon).

The shard sets are synthetic: uniform random ids below the vocabulary size (uint16; the
tokenizer is a 2000-token byte-level BPE trained on the repository's corpora/en), written
straight into the layout `plmkit build-data --objective clm` writes — plmkit's own `ShardWriter`,
split metadata and `write_manifest`, 8M-token shards of record batches of `CLM_BATCH_ROWS` rows
as build-data writes them (`--batch-rows` tries another size), rows of exactly `--seq` tokens — so `plmkit train` accepts them unchanged. Nothing is tokenized and nothing is
hashed. Both sets get the same 256-row validation split (the evaluation at the end then costs
the same for both). They are written under --root (never in the repository) and deleted at the
end unless --keep; an existing set with the same parameters is reused.

Each run is `python -m plmkit train --model gpt:tiny --batch-size 8 --max-steps N` in a child
process. The parent polls the child and its DataLoader workers every 50 ms (/proc/PID/status:
RssAnon, RssFile; /proc/PID/smaps_rollup: Pss_Anon, which splits pages shared after fork) and
takes the child's exact peak RSS (VmHWM, anon + file) from `os.wait4`; "disk read" is the main
process's read_bytes (/proc/PID/io: what it made the kernel fetch from storage, the shards'
pages included, imports too when they are not cached). "first step" is the
child's own time from the start of the trainer (after imports) to the end of its first
optimizer step, as `plmkit train` reports it; "wall" is the child's whole life (imports,
start-up, N steps, evaluation, final save). "hot": the shards are in the page cache (just
written or read); "cold": the parent evicts this set's shard files from the page cache first
(`posix_fadvise(DONTNEED)` on each file: only these files, nothing system-wide), so start-up
reads from disk what it touches.

The memory a run could need in proportion to the shard set is the epoch order (a permutation
of every row index): the script prints its size in bytes per row alongside.

`--scan-probe` measures, after the table, only the step that opens the large set (reading every
record batch's header), from a cold cache, two ways with `plmkit.data.shards.open_shard`:
`pa.memory_map` as `datasets.load_from_disk` does it (Arrow hints WILLNEED over each record batch
it reads, so the whole file is fetched), and `random_access=True` as training opens shards: a
Python `mmap` with `MADV_RANDOM` handed to Arrow as a buffer (only the header pages).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "corpora" / "en"
VOCAB = 2000
VALIDATION_ROWS = 256
SHARD_TOKENS = 1 << 23  # tokens per shard file, as build-data's clm re-packing writes them
POLL_S = 0.05
MB = 1 << 20


# ---- the shard sets ----------------------------------------------------------------------------

def make_tokenizer(root: Path) -> Path:
    from plmkit.tokenization import resolve_spec, train_from_corpus

    tok_dir = root / "tok"
    if not (tok_dir / "plmkit.json").is_file():
        train_from_corpus([str(CORPUS)], tok_dir, resolve_spec(preset="gpt", vocab_size=VOCAB,
                                                               allow_smaller_vocab=True), force=True)
    return tok_dir


def write_split(split_dir: Path, schema, rows: int, seq: int, vocab: int, rng, split: str, key: str,
                batch_rows: int) -> list[dict]:
    """`rows` rows of `seq` uniform ids in shards of SHARD_TOKENS tokens; returns the manifest's shard list."""
    import numpy as np

    from plmkit.data.shards import RowBlock, ShardWriter, shard_name, write_split_metadata

    split_dir.mkdir(parents=True)
    per_shard = max(1, SHARD_TOKENS // seq)
    count = -(-rows // per_shard)
    names, shards = [shard_name(i, count) for i in range(count)], []
    for i, name in enumerate(names):
        n = min(per_shard, rows - i * per_shard)
        ids = rng.integers(0, vocab, size=n * seq, dtype=np.uint16)
        writer = ShardWriter(split_dir / name, schema)
        for start in range(0, n, batch_rows):
            m = min(batch_rows, n - start)
            writer.write(RowBlock({"input_ids": ids[start * seq : (start + m) * seq]},
                                  {"input_ids": np.full(m, seq, dtype=np.int64)}, m))
        shards.append({"file": name, "bytes": writer.close()})
    write_split_metadata(split_dir, schema, names, f"{key}-{split}", split)
    return shards


def make_data(root: Path, tok_dir: Path, tokens: int, seq: int, batch_rows: int, seed: int = 0) -> Path:
    """DATA/ with `tokens // seq` training rows of random ids (reused when it already exists)."""
    import numpy as np

    from plmkit.data.params import resolve_params
    from plmkit.data.shards import objective_schema, token_dtype
    from plmkit.manifest import staging_dir, write_manifest
    from plmkit.tokenization import load_tokenizer

    rows = tokens // seq
    out = root / f"data-{rows}x{seq}-b{batch_rows}"
    if (out / "plmkit.json").is_file():
        return out
    tok = load_tokenizer(tok_dir)
    assert token_dtype(tok.vocab_size) == "uint16", tok.vocab_size
    params = resolve_params("clm", seq_len=seq, seed=seed, validation_fraction=0.0)
    schema = objective_schema("clm", tok.vocab_size, seq)
    rng = np.random.default_rng(seed)
    key = f"synthetic{rows}x{seq}"
    t0 = time.perf_counter()
    with staging_dir(out, force=True) as staging:
        split_rows = {"train": rows, "validation": VALIDATION_ROWS}
        shards = {s: write_split(staging / s, schema, n, seq, tok.vocab_size, rng, s, key, batch_rows)
                  for s, n in split_rows.items()}
        tok.save(staging / "tokenizer")
        counts = {s: {"examples": n, "tokens": n * seq, "dropped_tokens": 0} for s, n in split_rows.items()}
        inputs = [{"synthetic": f"uniform random ids below {tok.vocab_size}", "seed": seed, "rows": rows}]
        write_manifest(staging, "data", params, inputs=inputs, upstream=tok.manifest, columns=schema.to_dict(),
                       vocab_size=tok.vocab_size, counts=counts, shards=shards)
    size = sum(p.stat().st_size for p in (out / "train").glob("*.arrow"))
    print(f"wrote {out}: {rows:,} rows, {size / 1e9:.2f} GB of train shards in {time.perf_counter() - t0:.0f} s",
          flush=True)
    return out


# ---- measuring a run ---------------------------------------------------------------------------

def evict(data: Path) -> None:
    """Drop this set's shard files from the page cache (clean pages only; other files untouched)."""
    for path in sorted(data.glob("*/*.arrow")):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _status(pid: int) -> dict[str, int]:
    """kB fields of /proc/PID/status and smaps_rollup, and read_bytes of /proc/PID/io (bytes fetched
    from storage); empty once the process is gone."""
    out = {}
    try:
        for name in ("status", "smaps_rollup"):
            for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                key, _, value = line.partition(":")
                if value.strip().endswith("kB"):
                    out[key] = int(value.split()[0])
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("read_bytes:"):
                out["read_bytes"] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return out


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


class Poller(threading.Thread):
    """Peaks (kB) of the main process's RssAnon/RssFile, each worker's RssAnon, the tree's Pss_Anon."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak = {"main_anon": 0, "main_file": 0, "worker_anon": 0, "tree_pss_anon": 0, "workers": 0, "hwm": 0,
                     "read": 0}

    def run(self) -> None:
        while not self.stop.is_set():
            main = _status(self.pid)
            workers = [_status(c) for c in _children(self.pid)]
            workers = [w for w in workers if w]
            p = self.peak
            p["main_anon"] = max(p["main_anon"], main.get("RssAnon", 0))
            p["main_file"] = max(p["main_file"], main.get("RssFile", 0))
            p["hwm"] = max(p["hwm"], main.get("VmHWM", 0))
            p["read"] = max(p["read"], main.get("read_bytes", 0))
            p["worker_anon"] = max([p["worker_anon"]] + [w.get("RssAnon", 0) for w in workers])
            p["workers"] = max(p["workers"], len(workers))
            p["tree_pss_anon"] = max(p["tree_pss_anon"], sum(s.get("Pss_Anon", 0) for s in [main, *workers]))
            time.sleep(POLL_S)


def scan_probe(data: Path) -> None:
    """Open every train shard cold, two ways; print time, bytes fetched from storage and RssFile."""
    from plmkit.data.shards import open_shard, shard_files

    def read_bytes() -> int:
        return int(next(x for x in Path("/proc/self/io").read_text().splitlines() if x.startswith("read_bytes")).split()[1])

    for how, random_access in (("pa.memory_map", False), ("mmap+MADV_RANDOM (what training uses)", True)):
        evict(data)
        before, file_before, t0 = read_bytes(), _status(os.getpid())["RssFile"], time.perf_counter()
        tables = [open_shard(path, random_access) for path in shard_files(data / "train")]
        rows = sum(t.num_rows for t in tables)
        print(f"cold open of {rows:,} rows with {how}: {time.perf_counter() - t0:.2f} s, "
              f"{(read_bytes() - before) / MB:.0f} MB read from storage, "
              f"RssFile +{(_status(os.getpid())['RssFile'] - file_before) / 1024:.0f} MB")
        del tables


def run_train(data: Path, run: Path, *, workers: int, steps: int, batch: int) -> dict:
    cmd = [sys.executable, "-m", "plmkit", "train", "--data", str(data), "--model", "gpt:tiny", "--out", str(run),
           "--max-steps", str(steps), "--batch-size", str(batch), "--num-workers", str(workers), "--device", "cpu",
           "--eval-every", "0", "--save-every", "0", "--log-every", "10", "--force"]
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    poller = Poller(proc.pid)
    poller.start()
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    poller.stop.set()
    poller.join()
    if proc.returncode:
        sys.exit(f"plmkit train failed ({proc.returncode}):\n{output}")
    first = re.search(r"time to first step\D*([\d.]+) s", output)
    p = poller.peak
    return {"workers": workers, "first_step_s": float(first.group(1)) if first else float("nan"), "wall_s": wall,
            "hwm_mb": usage.ru_maxrss / 1024, "main_anon_mb": p["main_anon"] / 1024,
            "main_file_mb": p["main_file"] / 1024, "worker_anon_mb": p["worker_anon"] / 1024,
            "tree_pss_anon_mb": p["tree_pss_anon"] / 1024, "seen_workers": p["workers"], "read_mb": p["read"] / MB}


# ---- main --------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small-tokens", type=float, default=2.5e7, help="~50 MB of uint16 ids")
    ap.add_argument("--large-tokens", type=float, default=2.2e9, help="~4.4 GB of uint16 ids")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--workers", default="0,2", help="comma-separated --num-workers values")
    ap.add_argument("--cache", default="hot,cold", help="page-cache states to run: hot, cold or both")
    ap.add_argument("--batch-rows", type=int, default=None,
                    help="rows per Arrow record batch of the shards (default: what build-data writes for clm)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per (set, workers); medians are shown")
    ap.add_argument("--root", type=Path, default=Path("/work/bench_runs/train_memory"))
    ap.add_argument("--keep", action="store_true", help="keep the shard sets (reused by the next run)")
    ap.add_argument("--scan-probe", action="store_true", help="also time a cold open of the large set two ways")
    args = ap.parse_args()
    if args.batch_rows is None:
        from plmkit.data.build import CLM_BATCH_ROWS

        args.batch_rows = CLM_BATCH_ROWS
    root = args.root.resolve()
    assert REPO not in root.parents and root != REPO, "--root must be outside the repository"
    root.mkdir(parents=True, exist_ok=True)
    import statistics

    import numpy as np

    from plmkit.data.loader import ShardSplit, epoch_order

    tok_dir = make_tokenizer(root)
    sets = {"small": int(args.small_tokens), "large": int(args.large_tokens)}
    results = {}
    try:
        for name, tokens in sets.items():
            data = make_data(root, tok_dir, tokens, args.seq, args.batch_rows)
            split = ShardSplit(data / "train")
            rows, itemsize = len(split), epoch_order(2, 0, 0).dtype.itemsize
            token_bytes = sum(p.stat().st_size for p in (data / "train").glob("*.arrow"))
            del split
            for cache in args.cache.split(","):
                for w in (int(x) for x in args.workers.split(",")):
                    runs = []
                    for _ in range(args.repeats):
                        if cache == "cold":
                            evict(data)
                        runs.append(run_train(data, root / f"run-{name}-w{w}", workers=w, steps=args.steps,
                                              batch=args.batch))
                    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    results[name, cache, w] = {**med, "rows": rows, "bytes": token_bytes,
                                               "order_mb": rows * itemsize / MB}
                    print(f"{name} {cache} w{w}: {results[name, cache, w]}", flush=True)
        if args.scan_probe:
            report(results, args, np.dtype(f"int{8 * itemsize}"))
            scan_probe(data)
            return
    finally:
        if not args.keep:
            for path in root.glob("data-*"):
                shutil.rmtree(path, ignore_errors=True)
        for path in root.glob("run-*"):
            shutil.rmtree(path, ignore_errors=True)
    report(results, args, np.dtype(f"int{8 * itemsize}"))


def report(results: dict, args, order_dtype) -> None:
    cols = ["set", "rows", "shard GB", "cache", "workers", "first step s", "wall s", "VmHWM MB", "main RssAnon MB",
            "main RssFile MB", "worker RssAnon MB", "tree Pss_Anon MB", f"order ({order_dtype}) MB", "disk read MB"]
    print(f"\nplmkit train --model gpt:tiny, seq {args.seq}, batch {args.batch}, {args.steps} steps "
          f"(medians of {args.repeats}); shards in {args.batch_rows}-row record batches; memory peaks polled "
          f"every {POLL_S * 1000:.0f} ms, VmHWM exact")
    print(" | ".join(cols))
    for (name, cache, w), r in results.items():
        print(" | ".join([name, f"{r['rows']:,}", f"{r['bytes'] / 1e9:.2f}", cache, str(w), f"{r['first_step_s']:.2f}",
                          f"{r['wall_s']:.1f}", f"{r['hwm_mb']:.0f}", f"{r['main_anon_mb']:.0f}",
                          f"{r['main_file_mb']:.0f}", f"{r['worker_anon_mb']:.0f}", f"{r['tree_pss_anon_mb']:.0f}",
                          f"{r['order_mb']:.1f}", f"{r['read_mb']:.0f}"]))
    for cache, w in sorted({(c, w) for _, c, w in results}):
        if ("small", cache, w) in results and ("large", cache, w) in results:
            s, big = results["small", cache, w], results["large", cache, w]
            print(f"{cache}, workers {w}: large/small: shard bytes ×{big['bytes'] / s['bytes']:.1f}, "
                  f"main RssAnon ×{big['main_anon_mb'] / s['main_anon_mb']:.3f} "
                  f"({big['main_anon_mb'] - s['main_anon_mb']:+.0f} MB), "
                  f"tree Pss_Anon ×{big['tree_pss_anon_mb'] / s['tree_pss_anon_mb']:.3f} "
                  f"({big['tree_pss_anon_mb'] - s['tree_pss_anon_mb']:+.0f} MB), "
                  f"main RssFile {s['main_file_mb']:.0f} → {big['main_file_mb']:.0f} MB, "
                  f"first step ×{big['first_step_s'] / s['first_step_s']:.2f}")


if __name__ == "__main__":
    main()
