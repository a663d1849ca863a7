"""torchrun: two CPU processes (gloo) train exactly what one process trains on the same global batch.

One process with `--grad-accum 2` and two processes with one micro-batch each see the same rows
(plmkit.data.loader) and average the same two micro-batch gradients, so the losses and the
weights agree up to the order of floating-point sums: 1e-5 is far above that (float32 rounding
over a few hundred terms, ~1e-7 relative) and far below what one different row would change.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import SMALL, data_dir, one_thread, read_metrics

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def args(tmp_path, out):
    config = tmp_path / "model.toml"
    config.write_text("[model-overrides]\n" + "".join(f"{k} = {v}\n" for k, v in SMALL.items()))
    return ["train", "--data", str(data_dir("clm")), "--model", "gpt:tiny", "--config", str(config),
            "--out", str(out), "--max-steps", "6", "--batch-size", "8", "--lr", "3e-3", "--log-every", "1",
            "--eval-every", "3", "--save-every", "3"]


@pytest.mark.parametrize("sharding, accum", [("ddp", 1), ("fsdp", 2)])
def test_two_processes_match_one_process_with_the_same_global_batch(run_cli, tmp_path, sharding, accum):
    """Global batch 8: one process with 2×accum micro-batches, or two with `accum` each (no_sync in between)."""
    with one_thread():
        code, _, err = run_cli(*args(tmp_path, tmp_path / "one"), "--grad-accum", str(2 * accum))
    assert code == 0, err
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "plmkit",
           *args(tmp_path, tmp_path / "two"), "--grad-accum", str(accum), *(["--fsdp"] if sharding == "fsdp" else [])]
    two = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stderr.count("validation loss") == 2 + 1  # rank 0 only: two evaluations and the summary

    one_metrics, two_metrics = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [r["step"] for r in one_metrics] == [r["step"] for r in two_metrics]
    for a, b in zip(one_metrics, two_metrics, strict=True):
        for key in ("loss", "eval_loss", "grad_norm", "tokens", "lr"):
            if key in a:
                assert b[key] == pytest.approx(a[key], abs=1e-5), (a["step"], key)
    one_weights, two_weights = load_file(tmp_path / "one/model.safetensors"), load_file(tmp_path / "two/model.safetensors")
    assert one_weights.keys() == two_weights.keys()
    for name, value in one_weights.items():
        torch.testing.assert_close(two_weights[name], value, atol=1e-5, rtol=0)
