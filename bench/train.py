"""Training throughput of `plmkit train` against a plain transformers training loop.

    python bench/train.py [--families gpt,llama,bert,t5] [--steps 30] [--batch 16] [--seq 128] [--repeats 2]

Both sides train the same architecture (`FAMILY:small`, exported with `export_hf` so the
transformers model starts from the same weights) on the same shards (built once from
../shared/corpora/tinyshakespeare.txt with an 8000-token WordPiece tokenizer), with the same
batch (16 sequences of up to 128 tokens), AdamW (lr 1e-4, weight decay 0.01), clipping at 1.0,
fp32, 2 threads. plmkit runs its real loop (`plmkit.train.train`); the reference is what a
transformers user writes: `AutoModelFor…`, a torch DataLoader over `load_from_disk` with the
matching transformers collator, `loss.backward()`, `clip_grad_norm_`, `AdamW.step()`.

Each side runs in its own process (so peak RSS, the child's own `ru_maxrss`, is its own), and the
sides alternate `--repeats` times (so load from other processes hits both alike); tokens/s are
medians over the repeats of the steady state (steps after the first 5), counting real input
tokens plus T5 decoder targets. Time to first step is from the child's start (imports
included) to the end of its first optimizer step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare.txt"
THREADS = 2
WARMUP = 5
OBJECTIVE = {"gpt": "clm", "llama": "clm", "bert": "nsp", "t5": "t5-span"}
AUTO = {"gpt": "AutoModelForCausalLM", "llama": "AutoModelForCausalLM", "bert": "AutoModelForPreTraining",
        "t5": "AutoModelForSeq2SeqLM"}


# ---- shared setup (parent) -------------------------------------------------------------------

def prepare(root: Path, families: list[str], seq: int) -> None:
    """Tokenizer, shards per objective, and the initial model of each family (plmkit and HF format)."""
    from plmkit.data.build import build_data
    from plmkit.data.params import resolve_params
    from plmkit.models import build_model, get_config, save_model
    from plmkit.models.hf import export_hf
    from plmkit.tokenization import load_tokenizer, resolve_spec, train_from_corpus

    tok_dir = root / "tok"
    if not tok_dir.exists():
        train_from_corpus([str(CORPUS)], tok_dir, resolve_spec(preset="bert", vocab_size=8000))
    tok = load_tokenizer(tok_dir)
    for family in families:
        objective = OBJECTIVE[family]
        data = root / f"data-{objective}"
        if not data.exists():
            build_data([str(CORPUS)], tok_dir, data, resolve_params(objective, seq_len=seq, validation_fraction=0.002))
        init = root / f"init-{family}"
        if not init.exists():
            import torch

            torch.manual_seed(0)
            cfg = get_config(family, "small", vocab_size=tok.vocab_size, pad_token_id=tok.id("pad"),
                             bos_token_id=tok.id("bos"), eos_token_id=tok.id("eos"),
                             max_position_embeddings=max(512, seq + 2))
            model = build_model(cfg)
            save_model(model, cfg, init / "plmkit")
            export_hf(model, cfg, init / "hf")
            for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
                (init / "hf" / name).write_bytes((tok_dir / name).read_bytes())


# ---- the two children ------------------------------------------------------------------------

def child_plmkit(root: Path, family: str, steps: int, batch: int) -> dict:
    """`plmkit train --init-from` the saved initial model; figures from its metrics.jsonl."""
    import torch

    torch.set_num_threads(THREADS)
    from plmkit.train import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        t_call = time.perf_counter()
        summary = train(TrainConfig(data=str(root / f"data-{OBJECTIVE[family]}"), init_from=str(root / f"init-{family}"
                                    / "plmkit_run"), out=f"{tmp}/run", max_steps=steps, batch_size=batch, lr=1e-4,
                                    weight_decay=0.01, clip=1.0, log_every=1, eval_every=0, save_every=0))
        records = [json.loads(line) for line in Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()]
    records = [r for r in records if "loss" in r]
    a, b = records[WARMUP - 1], records[-1]
    return {"tokens_per_s": (b["tokens"] - a["tokens"]) / (b["elapsed_s"] - a["elapsed_s"]),
            "first_step_s": (t_call - T0) + summary["first_step_s"], "loss": b["loss"]}


def child_transformers(root: Path, family: str, steps: int, batch: int) -> dict:
    """The plain loop a transformers user writes."""
    import datasets
    import torch
    import transformers

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    hf_dir = root / f"init-{family}" / "hf"
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    model = getattr(transformers, AUTO[family]).from_pretrained(hf_dir)
    model.train()
    train_set = datasets.load_from_disk(str(root / f"data-{OBJECTIVE[family]}" / "train"))
    if "special_tokens_mask" in train_set.column_names:
        train_set = train_set.remove_columns("special_tokens_mask")
    if family in ("gpt", "llama"):
        collator = transformers.DataCollatorForLanguageModeling(tok, mlm=False)
    else:
        collator = transformers.DataCollatorForSeq2Seq(tok, model=model if family == "t5" else None)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=True, collate_fn=collator,
                                         generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    tokens, t_first, t_warm = 0, None, None
    for step, batch_ in enumerate(loader, start=1):
        loss = model(**batch_).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 1:
            t_first = time.perf_counter() - T0
        if step == WARMUP:
            t_warm = time.perf_counter()
        elif step > WARMUP:
            tokens += int(batch_["attention_mask"].sum())
            if family == "t5":
                tokens += int((batch_["labels"] != -100).sum())
        if step == steps:
            break
    return {"tokens_per_s": tokens / (time.perf_counter() - t_warm), "first_step_s": t_first, "loss": float(loss)}


# ---- orchestration (parent) ------------------------------------------------------------------

def run_child(side: str, root: Path, family: str, steps: int, batch: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--child", side, "--family", family, "--root", str(root), "--steps", str(steps),
           "--batch", str(batch)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{side} {family} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = result.pop("maxrss_kb") / 1024
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default="gpt,llama,bert,t5")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--root", default=None, help="keep the prepared data here (default: a temporary folder)")
    ap.add_argument("--child", choices=("plmkit", "transformers"))
    ap.add_argument("--family")
    args = ap.parse_args()
    if args.child:
        fn = child_plmkit if args.child == "plmkit" else child_transformers
        result = fn(Path(args.root), args.family, args.steps, args.batch)
        import resource

        result["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(result))
        return
    families = args.families.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        prepare(root, families, args.seq)
        for family in families:  # a plmkit run directory for --init-from, made from the initial weights
            _make_run(root, family)
        print(f"prepared shards and initial models in {time.perf_counter() - t:.0f} s "
              f"({THREADS} threads; other processes on this machine add noise to every figure)")
        print(f"{'family':8} {'plmkit tok/s':>13} {'HF tok/s':>10} {'ratio':>6} {'plmkit RSS':>11} {'HF RSS':>8} "
              f"{'plmkit 1st':>11} {'HF 1st':>7}")
        for family in families:
            runs = {"plmkit": [], "transformers": []}
            for _ in range(args.repeats):
                for side in runs:
                    runs[side].append(run_child(side, root, family, args.steps, args.batch))
            med = {side: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for side, rs in runs.items()}
            p, h = med["plmkit"], med["transformers"]
            print(f"{family:8} {p['tokens_per_s']:13,.0f} {h['tokens_per_s']:10,.0f} "
                  f"{p['tokens_per_s'] / h['tokens_per_s']:5.2f}x {p['peak_rss_mb']:8.0f} MB {h['peak_rss_mb']:5.0f} MB "
                  f"{p['first_step_s']:9.1f} s {h['first_step_s']:5.1f} s", flush=True)


def _make_run(root: Path, family: str) -> None:
    """Wrap the initial weights as a finished plmkit run (what `--init-from RUN` reads)."""
    import shutil

    from plmkit.manifest import read_manifest, write_manifest

    run = root / f"init-{family}" / "plmkit_run"
    if run.exists():
        return
    shutil.copytree(root / f"init-{family}" / "plmkit", run)
    shutil.copytree(root / "tok", run / "tokenizer")
    data = read_manifest(root / f"data-{OBJECTIVE[family]}", "data")
    write_manifest(run, "run", params={"note": "initial weights for bench/train.py"}, upstream=data)


if __name__ == "__main__":
    main()
