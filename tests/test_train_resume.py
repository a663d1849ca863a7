"""Exact resume: a run interrupted by Ctrl-C, then killed with SIGKILL, then rerun, ends bit-identical
to a run that was never interrupted (CPU, fp32): same weights, same metrics.

RoBERTa with dropout on `--dynamic` MLM shards, so the resumed run must restore the random state
(dropout), the data position (order of rows) and the masking generator (seed, epoch, row) — and
--log-every 3 with checkpoints every 10 steps, so a metrics line straddles each checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from train_helpers import SMALL, data_dir, one_thread, read_metrics, without_timing

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def command(tmp_path: Path, out: Path) -> list[str]:
    config = tmp_path / "model.toml"
    config.write_text("[model-overrides]\n" + "".join(f"{k} = {v}\n" for k, v in SMALL.items()))
    return [sys.executable, "-m", "plmkit", "train", "--data", str(data_dir("mlm", dynamic=True)),
            "--model", "roberta:tiny", "--config", str(config), "--out", str(out), "--max-steps", "50",
            "--batch-size", "8", "--lr", "2e-3", "--warmup", "5", "--log-every", "3", "--save-every", "10",
            "--eval-every", "25", "--keep-last", "2", "--seed", "3"]


def start_and_wait_for(cmd: list[str], path: Path, timeout: float = 120) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)
    return proc


def newest_step(run: Path) -> int:
    return max(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("step-*"))


def test_interrupted_and_killed_runs_resume_to_the_same_weights_and_metrics(run_cli, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    with one_thread():  # the uninterrupted run, in this process (on one thread, as the subprocesses)
        code, _, err = run_cli(*command(tmp_path, straight)[3:])
    assert code == 0, err

    # Ctrl-C after the first checkpoint: a checkpoint of the current step, exit 130
    proc = start_and_wait_for(command(tmp_path, resumed), resumed / "checkpoints" / "step-00000010")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    interrupted = newest_step(resumed)
    assert f"interrupted at step {interrupted}" in err and interrupted >= 10

    # SIGKILL once a later checkpoint exists: nothing runs, the final files are missing
    later = (interrupted // 10 + 2) * 10
    proc = start_and_wait_for(command(tmp_path, resumed), resumed / "checkpoints" / f"step-{later:08d}")
    proc.kill()
    proc.wait()
    assert not (resumed / "plmkit.json").exists() and newest_step(resumed) < 50

    done = subprocess.run(command(tmp_path, resumed), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr
    assert (resumed / "model.safetensors").read_bytes() == (straight / "model.safetensors").read_bytes()
    assert without_timing(read_metrics(resumed)) == without_timing(read_metrics(straight))
    assert json.loads((resumed / "plmkit.json").read_text())["final_loss"] == read_metrics(straight)[-2]["loss"]
