"""Benchmark: `plmkit tokenize` training and plmkit's encoder against the libraries underneath.

    python bench/tokenize.py [--repeats 3] [--quick]

Corpora (read from ../shared/corpora, never by tests): a 20 MB slice of gutenberg_en_100mb.txt
(`head -c 20000000`, written to a temporary file) and zh_hongloumeng.txt (2.5 MB; its CRLF line
ends turned into LF in a temporary copy, so that both sides read the same text).

1. Training wall time, same text and vocabulary size, in the same run:
   plmkit (`train_from_corpus`: its corpus reader, held-out slice, WordPiece's character pass,
   conversion and files) against the library's own training from the file
   (`tokenizers.Tokenizer.train([file])`, `SentencePieceTrainer.train(input=file)`), with the
   same pipeline, special tokens and trainer settings. 30k wordpiece, 30k bpe, 8k unigram.
   Target: ratio plmkit / library <= 1.10.
2. Encode throughput (MB of UTF-8 text per second) of `Tokenizer.encode_batch` (ids as int32
   arrays) against the library's `encode_batch` (+ `.ids`), on the same documents in batches of
   1000. Target: plmkit / library >= 0.95. Shown twice: through the interface with its library
   encoder (`LibraryEncoder`, the interface's own overhead), and as `load_tokenizer` sets it up
   (with `plmkit/tokenization/fast.py` present, its `FastEncoder`). `encode_batch_fast` (no
   offsets) is shown for reference.

Medians of `--repeats` runs (the 20 MB English trainings run `--train-repeats` times).
Other processes share the CPU, so absolute figures are noisy; the ratios are measured in one run.
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
EN_FULL = SHARED / "gutenberg_en_100mb.txt"
ZH = SHARED / "zh_hongloumeng.txt"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = [timed(fn) for _ in range(repeats)]
    return statistics.median(times), times


# --------------------------------------------------------------------------- the library's own training


def library_training(kind: str, path: Path, spec, out: Path) -> None:
    """The same tokenizer trained the library's own way, from the file."""
    from plmkit.tokenization import pipelines, spm
    from plmkit.tokenization.roles import special_tokens

    specials = special_tokens(spec.names)
    if kind in ("unigram", "sp-bpe"):
        import sentencepiece as sp

        names = spec.names
        meta = {f"{r}_id": specials.index(names[r]) for r in ("pad", "unk", "bos", "eos")}
        meta.update({f"{r}_piece": names[r] for r in ("pad", "unk", "bos", "eos")})
        user = [t for t in specials if t not in {names[r] for r in ("pad", "unk", "bos", "eos")}]
        sp.set_random_generator_seed(spec.seed)
        sp.SentencePieceTrainer.train(
            input=str(path), model_prefix=str(out / "lib"), vocab_size=spec.vocab_size, user_defined_symbols=user,
            input_sentence_size=spec.max_sentences, shuffle_input_sentence=True, max_sentence_length=1 << 20,
            num_threads=os.cpu_count() or 1, minloglevel=2, **meta, **spm.TRAINER_OPTIONS[kind])
        return
    from tokenizers import trainers

    if kind == "wordpiece":
        tok = pipelines.wordpiece(spec.lowercase, spec.strip_accents, spec.names["unk"])
        trainer = trainers.WordPieceTrainer(vocab_size=spec.vocab_size, min_frequency=spec.min_frequency,
                                            special_tokens=specials, show_progress=False)
    else:
        tok = pipelines.byte_level_bpe(spec.lowercase, spec.strip_accents)
        trainer = pipelines.trainer("bpe", spec.vocab_size, spec.min_frequency, specials)
    tok.train([str(path)], trainer)
    tok.save(str(out / "lib.json"))


def bench_training(corpora: dict[str, Path], jobs: list[tuple[str, str, int, int]], work: Path) -> list[tuple]:
    from plmkit.tokenization import resolve_spec, train_from_corpus

    rows = []
    for name, kind, vocab, repeats in jobs:
        path = corpora[name]
        spec = resolve_spec(kind=kind, vocab_size=vocab, allow_smaller_vocab=True)
        out = work / f"tok-{name}-{kind}"
        ours, theirs = [], []
        for _ in range(repeats):  # interleaved, so that load changes hit both alike
            ours.append(timed(lambda: train_from_corpus([str(path)], out, spec, force=True)))  # noqa: B023
            theirs.append(timed(lambda: library_training(kind, path, spec, work)))  # noqa: B023
        o, t = statistics.median(ours), statistics.median(theirs)
        rows.append((name, kind, vocab, o, t, o / t))
        print(f"train {name:3s} {kind:9s} vocab {vocab:6d}: plmkit {o:7.2f}s  library {t:7.2f}s  "
              f"ratio {o / t:.3f}   (runs: plmkit {fmt(ours)}; library {fmt(theirs)})", flush=True)
    return rows


# --------------------------------------------------------------------------- encoding


def bench_encoding(corpora: dict[str, Path], kinds: list[str], work: Path, repeats: int, mb: float) -> list[tuple]:
    from plmkit.corpus import iter_documents
    from plmkit.tokenization import LibraryEncoder, load_tokenizer

    rows = []
    for name, path in corpora.items():
        docs, size = [], 0
        for doc in iter_documents([str(path)]):
            docs.append(doc)
            size += len(doc.encode("utf-8"))
            if size >= mb * 1e6:
                break
        batches = [docs[i:i + 1000] for i in range(0, len(docs), 1000)]
        for kind in kinds:
            tok = load_tokenizer(work / f"tok-{name}-{kind}")
            hf = tok.hf
            ours = lambda: [tok.encode_batch(b) for b in batches]  # noqa: E731,B023
            plain = LibraryEncoder(hf)  # the interface's own path, without the fast encoder
            ours_lib = lambda: [plain.encode_batch(b) for b in batches]  # noqa: E731,B023
            lib = lambda: [[e.ids for e in hf.encode_batch(b, add_special_tokens=False)] for b in batches]  # noqa: E731,B023
            fast = lambda: [[e.ids for e in hf.encode_batch_fast(b, add_special_tokens=False)] for b in batches]  # noqa: E731,B023
            assert all(a.tolist() == b for a, b in zip(tok.encode_batch(batches[0]), lib()[0], strict=True))
            times = {"plmkit": [], "plmkit-lib": [], "library": [], "fast": []}
            for _ in range(repeats):
                for key, fn in (("plmkit", ours), ("plmkit-lib", ours_lib), ("library", lib), ("fast", fast)):
                    times[key].append(timed(fn))
            speed = {k: size / 1e6 / statistics.median(v) for k, v in times.items()}
            rows.append((name, kind, speed))
            print(f"encode {name:3s} {kind:9s} {size / 1e6:4.1f} MB: library encode_batch {speed['library']:5.2f} MB/s | "
                  f"plmkit, library encoder {speed['plmkit-lib']:5.2f} MB/s (ratio {speed['plmkit-lib'] / speed['library']:.2f})"
                  f" | plmkit as loaded ({type(tok._encoder).__name__}) {speed['plmkit']:5.2f} MB/s "
                  f"(ratio {speed['plmkit'] / speed['library']:.2f}) | encode_batch_fast {speed['fast']:.2f} MB/s",
                  flush=True)
    return rows


def fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the quick measurements")
    ap.add_argument("--train-repeats", type=int, default=1, help="repeats of the 20 MB English trainings")
    ap.add_argument("--encode-mb", type=float, default=5.0, help="MB of each corpus to encode")
    ap.add_argument("--quick", action="store_true", help="a 2 MB English slice instead of 20 MB (smoke test)")
    ap.add_argument("--encode-only", action="store_true", help="train plmkit's tokenizers once, measure encoding")
    args = ap.parse_args()
    if not EN_FULL.exists() or not ZH.exists():
        sys.exit(f"needs {EN_FULL} and {ZH}")
    print(f"cpus {os.cpu_count()}, TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset)')}")
    with tempfile.TemporaryDirectory(prefix="plmkit-bench-tok-") as tmp:
        work = Path(tmp)
        en = work / "gutenberg_20mb.txt"
        with open(EN_FULL, "rb") as f:
            en.write_bytes(f.read(2_000_000 if args.quick else 20_000_000))
        zh = work / "hongloumeng_lf.txt"  # CRLF → LF, so that the library's file reader sees plmkit's text
        zh.write_bytes(ZH.read_bytes().replace(b"\r\n", b"\n"))
        corpora = {"en": en, "zh": zh}
        big = args.train_repeats
        jobs = [("en", "wordpiece", 30000, big), ("en", "bpe", 30000, big), ("en", "unigram", 8000, big),
                ("zh", "wordpiece", 30000, args.repeats), ("zh", "bpe", 30000, args.repeats),
                ("zh", "unigram", 8000, args.repeats)]
        t0 = time.perf_counter()
        if args.encode_only:
            from plmkit.tokenization import resolve_spec, train_from_corpus

            for name, kind, vocab, _ in jobs:
                train_from_corpus([str(corpora[name])], work / f"tok-{name}-{kind}",
                                  resolve_spec(kind=kind, vocab_size=vocab, allow_smaller_vocab=True))
        else:
            bench_training(corpora, jobs, work)
        bench_encoding(corpora, ["wordpiece", "bpe", "unigram"], work, args.repeats, args.encode_mb)
        print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
