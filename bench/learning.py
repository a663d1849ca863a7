"""Does `plmkit train` learn as well as transformers? Validation loss after N steps, side by side.

    python bench/learning.py [--families gpt,llama,bert] [--steps 150] [--batch 16] [--seq 128]

GPT and LLaMA (byte-level BPE) and BERT (WordPiece, MLM + NSP shards), `small` size, 4096-token
tokenizers trained on ../shared/corpora/tinyshakespeare.txt, 128-token shards. For each family
one initial model is built; plmkit trains it with `plmkit.train.train(--init-from)`, and the same
weights exported to Hugging Face format are trained with transformers' `AutoModelFor…` in a plain
loop that reproduces the recipe: the same batches in the same order (the shards' `labels` are
Hugging Face labels, so the batches feed both models as they are), AdamW with the same decay
groups, the same warm-up + cosine schedule, clipping at 1.0. Both are then evaluated on the
validation split with the same token-weighted loss. The target: plmkit within 2% of transformers.
BERT has dropout, so the two runs draw different dropout masks: the figures differ by noise too.
2 threads by default (`--threads`); other processes on the machine slow both sides alike but do not
change the losses.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "tinyshakespeare.txt"
THREADS = 2
SETUP = {"gpt": ("gpt", "clm", "AutoModelForCausalLM"), "llama": ("llama", "clm", "AutoModelForCausalLM"),
         "bert": ("bert", "nsp", "AutoModelForPreTraining")}  # family: (tokenizer preset, objective, HF class)
RECIPE = {"lr": 5e-4, "warmup": 20, "weight_decay": 0.01, "clip": 1.0, "schedule": "cosine", "min_lr": 0.0}


def prepare(root: Path, family: str, seq: int) -> tuple[Path, Path]:
    """(DATA, initial plmkit run) for a family, built once under `root`."""
    import shutil

    from plmkit.data.build import build_data
    from plmkit.data.params import resolve_params
    from plmkit.manifest import read_manifest, write_manifest
    from plmkit.models import build_model, get_config, save_model
    from plmkit.models.hf import export_hf
    from plmkit.tokenization import load_tokenizer, resolve_spec, train_from_corpus

    preset, objective, _ = SETUP[family]
    tok_dir, data = root / f"tok-{preset}", root / f"data-{preset}-{objective}"
    if not tok_dir.exists():
        train_from_corpus([str(CORPUS)], tok_dir, resolve_spec(preset=preset, vocab_size=4096))
    if not data.exists():
        build_data([str(CORPUS)], tok_dir, data, resolve_params(objective, seq_len=seq, validation_fraction=0.05))
    run = root / f"init-{family}"
    if not run.exists():
        tok = load_tokenizer(tok_dir)
        torch.manual_seed(0)
        cfg = get_config(family, "small", vocab_size=tok.vocab_size, pad_token_id=tok.id("pad"),
                         bos_token_id=tok.id("bos"), eos_token_id=tok.id("eos"))
        model = build_model(cfg)
        save_model(model, cfg, run)
        export_hf(model, cfg, run / "hf")
        shutil.copytree(tok_dir, run / "tokenizer")
        write_manifest(run, "run", params={"note": "initial weights for bench/learning.py"},
                       upstream=read_manifest(data, "data"))
    return data, run


def train_plmkit(data: Path, run: Path, out: Path, steps: int, batch: int) -> float:
    from plmkit.train import TrainConfig, train

    summary = train(TrainConfig(data=str(data), init_from=str(run), out=str(out), max_steps=steps, batch_size=batch,
                                eval_every=0, save_every=0, log_every=10, **RECIPE))
    return summary["eval"]["loss"]


class HFAdapter(torch.nn.Module):
    """A transformers model seen through plmkit's `ModelOutput` (full logits; NSP logits in `extra`)."""

    def __init__(self, hf):
        super().__init__()
        self.hf = hf

    def forward(self, **batch):
        from plmkit.models import ModelOutput

        out = self.hf(**batch)
        if hasattr(out, "prediction_logits"):
            return ModelOutput(loss=out.loss, logits=out.prediction_logits,
                               extra={"nsp_logits": out.seq_relationship_logits})
        return ModelOutput(loss=out.loss, logits=out.logits)


def train_transformers(data: Path, run: Path, family: str, steps: int, batch: int) -> float:
    """The same recipe, step for step, on the transformers model exported from the same weights."""
    import transformers

    from plmkit.data.collate import collator_for
    from plmkit.data.loader import Batches, DataPosition, eval_batches, open_data
    from plmkit.evaluate import evaluate
    from plmkit.train.optim import decays, lr_at, set_lr

    shards = open_data(data)
    collate = collator_for(shards, 0)
    hf = getattr(transformers, SETUP[family][2]).from_pretrained(run / "hf").train()
    named = list(hf.named_parameters())
    groups = [{"params": [p for n, p in named if decays(n, p)], "weight_decay": RECIPE["weight_decay"]},
              {"params": [p for n, p in named if not decays(n, p)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=RECIPE["lr"], betas=(0.9, 0.999), eps=1e-8)
    stream = Batches(shards.train, collate, batch_size=batch, seed=0)(DataPosition())
    for step in range(steps):
        set_lr(optimizer, lr_at(step, lr=RECIPE["lr"], min_lr=RECIPE["min_lr"], warmup=RECIPE["warmup"],
                                total=steps, schedule=RECIPE["schedule"]))
        (micro,) = next(stream)[1]
        hf(**micro).loss.backward()
        torch.nn.utils.clip_grad_norm_(hf.parameters(), RECIPE["clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    result = evaluate(HFAdapter(hf), eval_batches(shards.validation, collate, batch), shards.objective,
                      torch.device("cpu"))
    return result["loss"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--families", default="gpt,llama,bert")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=THREADS, help="torch threads (the losses do not depend on it)")
    ap.add_argument("--root", default=None, help="keep the prepared data here (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        root.mkdir(parents=True, exist_ok=True)
        print(f"{'family':8} {'steps':>5} {'plmkit val loss':>16} {'transformers val loss':>22} {'diff':>7} {'time':>14}")
        for family in args.families.split(","):
            data, run = prepare(root, family, args.seq)
            t = time.perf_counter()
            ours = train_plmkit(data, run, Path(tmp) / f"run-{family}", args.steps, args.batch)
            t_ours = time.perf_counter() - t
            t = time.perf_counter()
            theirs = train_transformers(data, run, family, args.steps, args.batch)
            t_theirs = time.perf_counter() - t
            diff = (ours - theirs) / theirs
            results[family] = {"plmkit": ours, "transformers": theirs, "relative_difference": diff}
            print(f"{family:8} {args.steps:5} {ours:16.4f} {theirs:22.4f} {diff:+6.2%} {t_ours:6.0f}s/{t_theirs:4.0f}s",
                  flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
