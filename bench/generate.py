"""Decoding speed of plmkit's generation loop against transformers `generate` on the same weights.

    python bench/generate.py [--size small] [--prompt-len 16] [--new 128] [--batches 1,8] [--repeats 5]

For GPT and LLaMA: a random plmkit model of the given size is exported with `export_hf` and
loaded with `AutoModelForCausalLM`; both decode the same random prompts greedily for exactly
`--new` tokens (no EOS), fp32, 2 threads, in one process. Reported per batch size: tokens/s
(new tokens of all rows / wall time) and time to first token (prefill + the first pick, i.e. a
1-token generation), each the median of `--repeats` after a warm-up, plmkit and transformers
alternating so both see the same load; and plmkit ÷ transformers. The greedy tokens of both
are checked equal, so the two do the same work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

THREADS = 2


class IdsOnly:
    """The loop's pieces decode text only at the end; ids are all the benchmark needs."""

    def decode(self, ids, skip_special_tokens=False):
        return ""


def ours(model, prompts: torch.Tensor, new: int) -> list[list[int]]:
    from plmkit.generate import Piece, Sampler, Sampling, decode_continuations

    rows = prompts.tolist()
    settings = Sampling(max_new_tokens=new, temperature=0)
    pieces = [Piece(IdsOnly()) for _ in rows]
    sampler = Sampler(settings, len(rows), model.cfg.vocab_size, "cpu", torch.Generator())
    decode_continuations(model, rows, pieces, sampler, [(new, "length")] * len(rows), {-1}, 0)
    return [p.ids for p in pieces]


def theirs(model, prompts: torch.Tensor, new: int) -> list[list[int]]:
    out = model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new, min_new_tokens=new,
                         do_sample=False, pad_token_id=0)
    return out[:, prompts.shape[1]:].tolist()


def compare(repeats: int, first, second) -> tuple[float, float]:
    """Median seconds of `first` and of `second`, run alternately (after one warm-up each) so
    that both see the same load on a shared machine."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, spent in zip((first, second), times, strict=True):
            t0 = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t0)
    return statistics.median(times[0]), statistics.median(times[1])


def bench_family(family: str, size: str, prompt_len: int, new: int, batches: list[int], repeats: int) -> list[dict]:
    from transformers import AutoModelForCausalLM

    from plmkit.models import build_model, get_config
    from plmkit.models.hf import export_hf

    torch.manual_seed(0)
    cfg = get_config(family, size, initializer_range=0.3)   # wider init: greedy output varies, as a trained model's
    model = build_model(cfg).eval()
    with tempfile.TemporaryDirectory() as d:
        export_hf(model, cfg, d)
        hf = AutoModelForCausalLM.from_pretrained(d).eval()
    hf.generation_config.eos_token_id = None
    rows = []
    for B in batches:
        prompts = torch.randint(10, cfg.vocab_size, (B, prompt_len), generator=torch.Generator().manual_seed(B))
        with torch.inference_mode():
            t_ours, t_hf = compare(repeats, partial(ours, model, prompts, new), partial(theirs, hf, prompts, new))
            ttft_ours, ttft_hf = compare(repeats, partial(ours, model, prompts, 1), partial(theirs, hf, prompts, 1))
            same = sum(a == b for a, b in zip(ours(model, prompts, new), theirs(hf, prompts, new), strict=True))
        rows.append(dict(family=family, batch=B, ours=B * new / t_ours, hf=B * new / t_hf, ttft_ours=ttft_ours * 1e3,
                         ttft_hf=ttft_hf * 1e3, same=f"{same}/{B}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="small")
    ap.add_argument("--families", default="gpt,llama")
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=THREADS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    print(f"greedy decoding, {args.size} models, prompt {args.prompt_len} tokens, {args.new} new tokens, fp32, "
          f"{args.threads} threads, median of {args.repeats}")
    print(f"{'family':7} {'batch':>5} {'plmkit tok/s':>13} {'HF tok/s':>9} {'ratio':>6} "
          f"{'plmkit TTFT ms':>15} {'HF TTFT ms':>11} {'same tokens':>12}")
    for family in args.families.split(","):
        for r in bench_family(family, args.size, args.prompt_len, args.new, batches, args.repeats):
            print(f"{r['family']:7} {r['batch']:5d} {r['ours']:13.1f} {r['hf']:9.1f} {r['ours'] / r['hf']:5.2f}x "
                  f"{r['ttft_ours']:15.1f} {r['ttft_hf']:11.1f} {r['same']:>12}")


if __name__ == "__main__":
    main()
