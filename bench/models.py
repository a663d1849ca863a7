"""Forward+backward throughput of every plmkit family against the same architecture in transformers.

    python bench/models.py [--size small] [--batch 16] [--seq 128] [--repeats 5] [--families gpt,llama]

For each family: a plmkit model of the given size is built, exported with `export_hf`, and both
implementations run forward+backward on the same batch (fp32, 2 threads, train mode), each in its
one process with their steps interleaved (so load from other processes hits both alike); peak
RSS is measured separately, each implementation alone in a spawned process (`ru_maxrss`, and its
growth over the RSS right before the first step; both children import transformers, so their
baselines are the same). GLM has no transformers class; it is compared with GPT2LMHeadModel
driven as the GLM-1 emulation (word + block-position embeddings as `inputs_embeds`, the
prefix mask as a 4D additive mask). Figures are medians of `--repeats` steps after one warm-up.
Achieved FLOP/s counts the plmkit step's FLOPs with torch's FlopCounterMode and compares them
with a 2048³ fp32 matmul on the same threads (the practical peak).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue as queue_module
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

# bench/ holds scripts named like stdlib modules (tokenize.py): keep it off the import path,
# also for the spawned children, which inherit sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

THREADS = 2


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def make_batch(family: str, B: int, T: int, V: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, T), generator=g)
    if family in ("bert", "roberta", "albert"):
        labels = ids.masked_fill(torch.rand(B, T, generator=g) > 0.15, -100)
        batch = dict(input_ids=ids, labels=labels, token_type_ids=(torch.arange(T) >= T // 2).long().expand(B, T))
        if family == "bert":
            batch["next_sentence_label"] = torch.randint(0, 2, (B,), generator=g)
        if family == "albert":
            batch["sentence_order_label"] = torch.randint(0, 2, (B,), generator=g)
        if family == "roberta":
            del batch["token_type_ids"]
        return batch
    if family == "t5":
        return dict(input_ids=ids, labels=torch.randint(5, V, (B, T // 4), generator=g))
    if family == "glm":
        sep = T - T // 5
        pos = torch.arange(T).clamp(max=sep - 1).expand(B, T)
        block = (torch.arange(T) - sep + 1).clamp(min=0).expand(B, T)
        labels = ids.masked_fill(torch.arange(T).expand(B, T) < sep, -100)
        return dict(input_ids=ids, labels=labels, position_ids=pos, block_position_ids=block,
                    sep=torch.full((B,), sep))
    return dict(input_ids=ids)


def hf_step_inputs(family: str, model, batch: dict, block_table) -> dict:
    """The HF call for the same batch (labels = input_ids for CLM; the GLM emulation for glm)."""
    if family in ("gpt", "llama"):
        return dict(input_ids=batch["input_ids"], labels=batch["input_ids"])
    if family != "glm":
        return batch
    ids, sep = batch["input_ids"], int(batch["sep"][0])
    T = ids.shape[1]
    allowed = (torch.arange(T)[None, :] <= torch.arange(T)[:, None]) | (torch.arange(T)[None, :] < sep)
    mask = torch.zeros(T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)[None, None]
    embeds = model.transformer.wte(ids) + block_table(batch["block_position_ids"])
    return dict(inputs_embeds=embeds, position_ids=batch["position_ids"], attention_mask=mask.expand(len(ids), 1, T, T),
                labels=batch["labels"])


def load_step(impl: str, family: str, model_dir: str, B: int, T: int):
    """(model, step) where step() runs one forward+backward of `impl` on the family's batch."""
    import transformers

    from plmkit.models import load_config, load_model

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    cfg = load_config(Path(model_dir) / "plmkit")
    batch = make_batch(family, B, T, cfg.vocab_size)
    if impl == "plmkit":
        model, _ = load_model(Path(model_dir) / "plmkit")
        inputs = lambda: batch  # noqa: E731
    else:
        auto = ("GPT2LMHeadModel" if family == "glm" else "AutoModelForPreTraining" if family in ("bert", "albert", "roberta")
                else "AutoModelForSeq2SeqLM" if family == "t5" else "AutoModelForCausalLM")
        model = getattr(transformers, auto).from_pretrained(Path(model_dir) / "hf")
        block_table = torch.nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size) if family == "glm" else None
        inputs = lambda: hf_step_inputs(family, model, batch, block_table)  # noqa: E731
    model.train()

    def step():
        model(**inputs()).loss.backward()
        model.zero_grad(set_to_none=True)

    return model, step


def time_child(family: str, model_dir: str, B: int, T: int, repeats: int, queue) -> None:
    """Both implementations in one process, steps interleaved, so load from other processes hits both alike."""
    torch.set_num_threads(THREADS)
    steps = {impl: load_step(impl, family, model_dir, B, T)[1] for impl in ("plmkit", "hf")}
    times = {impl: [] for impl in steps}
    for i in range(repeats + 1):
        for impl, step in steps.items():
            start = time.perf_counter()
            step()
            if i:
                times[impl].append(time.perf_counter() - start)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        steps["plmkit"]()
    queue.put(dict(plmkit=statistics.median(times["plmkit"]), hf=statistics.median(times["hf"]),
                   flops=counter.get_total_flops()))


def memory_child(impl: str, family: str, model_dir: str, B: int, T: int, queue) -> None:
    """Peak RSS of one implementation alone (after loading, two steps), and its growth during the steps."""
    torch.set_num_threads(THREADS)
    _, step = load_step(impl, family, model_dir, B, T)
    base = rss_mb()
    step()
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(dict(peak_mb=peak, step_mb=peak - base))


def run_child(target, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=target, args=(*args, queue))
    p.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:
            if not p.is_alive():
                raise RuntimeError(f"{target.__name__}{args[:2]} died (exit code {p.exitcode})") from None
    p.join()
    return result


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    torch.set_num_threads(THREADS)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--families", default="bert,roberta,albert,t5,gpt,llama,glm")
    args = parser.parse_args()
    from plmkit.models import build_model, get_config, save_model
    from plmkit.models.hf import export_hf

    torch.set_num_threads(THREADS)
    peak = matmul_peak()
    print(f"fp32 matmul 2048³ on {THREADS} threads: {peak / 1e9:.1f} GFLOP/s (practical peak)")
    print(f"{'family':8} {'plmkit tok/s':>12} {'HF tok/s':>9} {'ratio':>6} {'plmkit MB':>10} {'HF MB':>8} "
          f"{'plmkit Δstep':>12} {'HF Δstep':>9} {'GFLOP/s':>8} {'of peak':>7}")
    for family in args.families.split(","):
        torch.manual_seed(0)
        cfg = get_config(family, args.size)
        if family == "glm":   # the GPT-2 emulation needs a GPT-2-shaped export of the same weights
            cfg_hf = get_config("gpt", args.size, activation="gelu", max_position_embeddings=cfg.max_position_embeddings,
                                hidden_dropout_prob=cfg.hidden_dropout_prob)
        with tempfile.TemporaryDirectory() as tmp:
            model = build_model(cfg)
            save_model(model, cfg, Path(tmp) / "plmkit")
            if family == "glm":
                export_hf(build_model(cfg_hf), cfg_hf, Path(tmp) / "hf")
            else:
                export_hf(model, cfg, Path(tmp) / "hf")
            del model
            t = run_child(time_child, family, tmp, args.batch, args.seq, args.repeats)
            ours = run_child(memory_child, "plmkit", family, tmp, args.batch, args.seq)
            theirs = run_child(memory_child, "hf", family, tmp, args.batch, args.seq)
        tokens = args.batch * args.seq
        achieved = t["flops"] / t["plmkit"]
        print(f"{family:8} {tokens / t['plmkit']:12.0f} {tokens / t['hf']:9.0f} "
              f"{t['hf'] / t['plmkit']:6.2f} {ours['peak_mb']:10.0f} {theirs['peak_mb']:8.0f} "
              f"{ours['step_mb']:12.0f} {theirs['step_mb']:9.0f} {achieved / 1e9:8.1f} {achieved / peak:7.0%}",
              flush=True)


if __name__ == "__main__":
    main()
