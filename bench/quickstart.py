"""Wall and CPU time of `plmkit quickstart` per family, on the bundled corpus, as a user runs it.

    python bench/quickstart.py                      # the default family (gpt), its full schedule
    python bench/quickstart.py --family all         # every family briefly (one quickstart run)
    python bench/quickstart.py --family llama t5    # several separate runs

Each run is a fresh `python -m plmkit quickstart --family F --out TMP` subprocess on at most
`--cores` CPUs (pinned with sched_setaffinity where the OS has it, and torch limited to as many
threads), so a bigger machine can stand in for the 2-core laptop the defaults are sized for.

Figures: wall seconds (the promise: under 5 minutes for the default family on 2 cores), CPU
seconds of the whole process tree (user + system), the validation loss and perplexity from the
run's manifest, and for GPT and LLaMA the share of the English words in their samples (8 corpus
prompts, quickstart's sampling settings) that occur in the corpus: the "samples are corpus words,
not noise" promise as a number. CPU time is the honest figure on a shared
machine: wall time there measures the neighbours too. On a quiet machine the wall time is at
most the CPU time (two busy threads make it less).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/ must not be on the import path: bench/tokenize.py would shadow the standard library's tokenize.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]


def run(family: str, cores: int, max_steps: int | None, keep: Path | None) -> dict:
    out = (keep or Path(tempfile.mkdtemp(prefix="plmkit-qs-bench-"))) / f"qs-{family}"
    cmd = [sys.executable, "-m", "plmkit", "quickstart", "--family", family, "--out", str(out), "--force",
           "--device", "cpu"]
    if max_steps:
        cmd += ["--max-steps", str(max_steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(cores), "MKL_NUM_THREADS": str(cores),
           "RAYON_NUM_THREADS": str(cores), "PYTHONPATH": str(ROOT)}
    pin = (lambda: os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])) \
        if hasattr(os, "sched_setaffinity") else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, preexec_fn=pin, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    runs = sorted(r for r in out.glob("run-*") if r.is_dir())  # run-F/ (run-F.toml beside it is its config)
    evals = {r.name[4:]: json.loads((r / "plmkit.json").read_text())["eval"] for r in runs}
    rates = {r.name[4:]: corpus_word_rate(r, r.name[4:]) for r in runs if r.name[4:] in ("gpt", "llama")}
    return {"family": family, "wall_s": wall, "cpu_s": cpu, "eval": evals, "rates": rates, "stdout": done.stdout,
            "command": " ".join(cmd)}


def corpus_word_rate(run_dir: Path, family: str) -> float:
    """Share of the English words GPT/LLaMA sample (quickstart's settings) that the bundled corpus has."""
    import re

    from plmkit.quickstart import bundled_corpus, pick_sentences, samples_of

    corpus = [str(p) for p in bundled_corpus()]
    known = {w.lower() for p in Path(corpus[0]).glob("*.txt") for w in re.findall(r"[A-Za-z]+", p.read_text())}
    samples = samples_of(run_dir, family, pick_sentences(corpus, n=8))
    words = [w.lower() for s in samples for w in re.findall(r"[A-Za-z]+", s.output[len(s.prompt):])]
    return sum(w in known for w in words) / max(1, len(words))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", nargs="+", default=["gpt"])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="write the runs here instead of a temp folder")
    ap.add_argument("--show", action="store_true", help="print each run's summary")
    args = ap.parse_args()
    print(f"{'family':<8} {'wall s':>8} {'cpu s':>8}  validation loss / perplexity; corpus words in samples")
    for family in args.family:
        r = run(family, args.cores, args.max_steps, args.keep)
        figures = ", ".join(f"{f} {e['loss']:.3f} / {e['perplexity']:.1f}" for f, e in r["eval"].items())
        figures += "".join(f"; {f} {rate:.0%}" for f, rate in r["rates"].items())
        print(f"{family:<8} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f}  {figures}", flush=True)
        if args.show:
            print(r["command"])
            print(r["stdout"])


if __name__ == "__main__":
    main()
