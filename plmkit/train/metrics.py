"""`RUN/metrics.jsonl` (one JSON object per line) and `RUN/loss.png`.

Training lines hold `step, tokens, loss, lr, grad_norm, tokens_per_s, elapsed_s`; evaluation
lines hold `step` and `eval_<metric>` (eval_loss, eval_perplexity, eval_mlm_accuracy, …).
On resume the file is cut back to the checkpoint's step, so a resumed run's file reads like an
uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from plmkit.manifest import atomic_write_bytes, atomic_write_text

# Fields that measure the machine, not the run: they differ between two identical runs.
TIMING_FIELDS = ("tokens_per_s", "elapsed_s")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics file; a line cut short by a kill is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


class MetricsLog:
    """Appends records to `metrics.jsonl` (rank 0 only)."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def rewind(self, step: int) -> None:
        """Drop everything after `step` (records of steps that a resumed run will redo)."""
        if not self.enabled:
            return
        keep = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in keep))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")


def plot_losses(metrics_path: Path, out: Path) -> None:
    """Draw training and validation loss against the step into `out` (PNG).

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch), imported here
    so that training without plots never pays for it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if r.get("loss") is not None]
    valid = [(r["step"], r["eval_loss"]) for r in records if r.get("eval_loss") is not None]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", linewidth=1)
    if valid:
        ax.plot(*zip(*valid, strict=True), "o-", label="validation loss", linewidth=1.5, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if train or valid:
        ax.legend()
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    import io

    buf = io.BytesIO()
    canvas.print_png(buf)
    atomic_write_bytes(out, buf.getvalue())
