"""The one place that owns the rich console, tables and progress bars.

Everything human-facing goes to stderr so that `--json` output on stdout stays clean. On a
terminal progress is a live rich bar; elsewhere (CI, cluster logs, pipes) rich would only
render once at the end, so we print a plain line every `plain_every_s` seconds instead.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table

from plmkit.progress import Progress

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)  # results on stdout


def error(message: str) -> None:
    """Render a user error as one red line on stderr."""
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)


def info(message: str) -> None:
    console.print(message, soft_wrap=True)


def table(title: str, rows: list[tuple[Any, ...]], columns: tuple[str, ...] = ("", "")) -> Table:
    t = Table(title=title, show_header=any(columns), title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(x) for x in r])
    return t


def show(renderable: Any) -> None:
    console.print(renderable)


def _fmt(fields: dict[str, Any]) -> str:
    parts = []
    for k, v in fields.items():
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return "  ".join(parts)


class ConsoleProgress(Progress):
    """Progress on the console: a rich bar on a terminal, plain lines otherwise.

    `enabled=False` (non-zero ranks under torchrun) silences everything.
    """

    def __init__(self, enabled: bool = True, plain_every_s: float = 10.0):
        self.enabled = enabled
        self.live = enabled and console.is_terminal and os.environ.get("TERM") != "dumb"
        self.plain_every_s = plain_every_s
        self._bar: RichProgress | None = None
        self._task = None
        self._desc = ""
        self._done = 0.0
        self._total: float | None = None
        self._fields: dict[str, Any] = {}
        self._last = 0.0
        self._t0 = 0.0

    def start(self, description: str, total: float | None = None, unit: str = "") -> None:
        self.finish()
        self._desc, self._total, self._done, self._fields = description, total, 0.0, {}
        self._t0 = self._last = time.monotonic()
        if not self.enabled:
            return
        if self.live:
            self._bar = RichProgress(
                SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[stats]}"), console=console, transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=total, stats="")
        else:
            console.print(f"{description} …", soft_wrap=True)

    def update(self, advance: float = 0, **fields: Any) -> None:
        self._done += advance
        self._fields.update(fields)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=advance, stats=_fmt(self._fields))
        elif time.monotonic() - self._last >= self.plain_every_s:
            self._last = time.monotonic()
            of = f"/{self._total:g}" if self._total else ""
            console.print(f"{self._desc}: {self._done:g}{of}  {_fmt(self._fields)}", soft_wrap=True)

    def log(self, message: str) -> None:
        if self.enabled:
            console.print(message, soft_wrap=True)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.enabled and self._desc and not self.live:
            console.print(f"{self._desc}: done in {time.monotonic() - self._t0:.1f}s  {_fmt(self._fields)}",
                          soft_wrap=True)
        self._desc = ""


def is_terminal() -> bool:
    return sys.stderr.isatty()
