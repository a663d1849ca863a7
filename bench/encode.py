"""Benchmark: `FastEncoder` against the `tokenizers` library's own `encode_batch`, exactness first.

    python bench/encode.py [--repeats 3] [--threads 2] [--train-mb 5] [--work DIR] [--kinds wordpiece,bpe]

Corpora (read from ../shared/corpora, never by tests): the first 20 MB of
gutenberg_en_100mb.txt and zh_hongloumeng.txt, read into documents by plmkit's corpus reader
(blank-line separated, as `plmkit build-data` sees them). On each corpus plmkit trains a 30k
wordpiece, a 30k bpe, an 8k unigram and an 8k sp-bpe tokenizer on its first `--train-mb` MB
(kept in `--work` for the next run).

For each tokenizer, in one process:
  library   `Tokenizer.encode_batch(docs, add_special_tokens=False)` + `.ids`, batches of 1000
            documents, RAYON_NUM_THREADS=`--threads` (the library's parallel encoder);
  fast      a fresh `FastEncoder` encoding the same batches once (its unit table starts empty:
            what one `build-data` worker sees), single-threaded;
  warm      the same encoder a second time over the corpus (every unit already in its table).
Then it checks that both fast passes gave exactly the library's ids for every document of the
corpus (the run fails otherwise), and prints MB/s (UTF-8 bytes of the documents), medians of
`--repeats`, with the share of documents the encoder handed to the library.
Other processes share the CPU, so absolute figures are noisy; ratios are measured in one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/ must not be on the import path: this folder's tokenize.py would shadow the standard library's.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
SHARED = ROOT.parent / "shared" / "corpora"
CORPORA = {"en": (SHARED / "gutenberg_en_100mb.txt", 20_000_000), "zh": (SHARED / "zh_hongloumeng.txt", None)}
VOCAB = {"wordpiece": 30000, "bpe": 30000, "unigram": 8000, "sp-bpe": 8000}
BATCH = 1000


def read_documents(path: Path, limit: int | None, work: Path) -> list[str]:
    """The corpus (its first `limit` bytes, cut at a character boundary) as plmkit reads it."""
    from plmkit.corpus import iter_documents

    data = path.read_bytes()[:limit] if limit else path.read_bytes()
    copy = work / f"{path.stem}.txt"
    copy.write_text(data.decode("utf-8", errors="ignore"), encoding="utf-8")
    return list(iter_documents([copy]))


def tokenizer_json(kind: str, corpus: str, docs: list[str], train_mb: float, work: Path) -> str:
    from plmkit.tokenization import resolve_spec, train_tokenizer

    out = work / f"tok-{corpus}-{kind}"
    if not (out / "tokenizer.json").exists():
        sample, size = [], 0
        for d in docs:
            if size > train_mb * 1e6:
                break
            sample.append(d)
            size += len(d.encode("utf-8"))
        t0 = time.perf_counter()
        train_tokenizer(sample, out, resolve_spec(kind=kind, vocab_size=VOCAB[kind], allow_smaller_vocab=True),
                        force=True)
        print(f"  trained {corpus} {kind} in {time.perf_counter() - t0:.1f}s", flush=True)
    return (out / "tokenizer.json").read_text(encoding="utf-8")


def batches(docs: list[str]) -> list[list[str]]:
    return [docs[i:i + BATCH] for i in range(0, len(docs), BATCH)]


def run_library(tok, parts: list[list[str]]) -> tuple[float, list[list[int]]]:
    t0 = time.perf_counter()
    ids = [e.ids for part in parts for e in tok.encode_batch(part, add_special_tokens=False)]
    return time.perf_counter() - t0, ids


def run_fast(enc, parts: list[list[str]]) -> tuple[float, list]:
    t0 = time.perf_counter()
    ids = [a for part in parts for a in enc.encode_batch(part)]
    return time.perf_counter() - t0, ids


def check_same(name: str, want: list[list[int]], got: list) -> None:
    bad = [i for i, (w, g) in enumerate(zip(want, got, strict=True)) if g.tolist() != w]
    if bad:
        raise SystemExit(f"{name}: {len(bad)} documents differ from the library, first #{bad[0]}")


def bench_one(corpus: str, kind: str, docs: list[str], js: str, repeats: int) -> dict:
    from tokenizers import Tokenizer

    from plmkit.tokenization.fast import FastEncoder

    mb = sum(len(d.encode("utf-8")) for d in docs) / 1e6
    tok = Tokenizer.from_str(js)
    parts = batches(docs)
    lib_times, cold_times, warm_times, init_times = [], [], [], []
    want = None
    for _ in range(repeats):
        t, ids = run_library(tok, parts)
        lib_times.append(t)
        want = want or ids
        t0 = time.perf_counter()
        enc = FastEncoder(js)
        init_times.append(time.perf_counter() - t0)
        t, cold = run_fast(enc, parts)
        cold_times.append(t)
        check_same(f"{corpus}/{kind} (cold)", want, cold)
        t, warm = run_fast(enc, parts)
        warm_times.append(t)
        check_same(f"{corpus}/{kind} (warm)", want, warm)
    lib, fast, warm = (statistics.median(x) for x in (lib_times, cold_times, warm_times))
    return dict(corpus=corpus, kind=kind, mb=mb, docs=len(docs), plan=enc.plan or f"library ({enc.reason})",
                lib=mb / lib, fast=mb / fast, warm=mb / warm, init=statistics.median(init_times),
                library_share=enc.library_texts / max(1, enc.texts), units=sum(t.size for t in enc._tables))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="RAYON_NUM_THREADS for the library")
    ap.add_argument("--train-mb", type=float, default=5.0, help="train each tokenizer on this much of its corpus")
    ap.add_argument("--work", type=Path, default=None, help="keep corpora copies and trained tokenizers here")
    ap.add_argument("--kinds", default=",".join(VOCAB))
    ap.add_argument("--corpora", default=",".join(CORPORA))
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before tokenizers starts its thread pool
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    work = args.work or Path(tempfile.mkdtemp(prefix="plmkit-bench-encode-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for corpus in args.corpora.split(","):
        path, limit = CORPORA[corpus]
        docs = read_documents(path, limit, work)
        print(f"{corpus}: {len(docs)} documents, {sum(len(d.encode()) for d in docs) / 1e6:.1f} MB", flush=True)
        for kind in args.kinds.split(","):
            js = tokenizer_json(kind, corpus, docs, args.train_mb, work)
            r = bench_one(corpus, kind, docs, js, args.repeats)
            rows.append(r)
            print(f"  {kind:9s} library {r['lib']:5.2f} MB/s | fast {r['fast']:5.2f} MB/s ({r['fast'] / r['lib']:4.1f}x)"
                  f" warm {r['warm']:5.2f} MB/s ({r['warm'] / r['lib']:4.1f}x) | init {r['init']:.2f}s,"
                  f" {100 * r['library_share']:.2f}% of documents via the library, {r['units']} units,"
                  f" plan {r['plan']}; ids identical", flush=True)
    print(f"\nmedians of {args.repeats}; library on {args.threads} threads, FastEncoder on 1; "
          f"every document's ids checked equal to the library's")


if __name__ == "__main__":
    main()
