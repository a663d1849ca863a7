"""Progress reporting seen from library code, without importing rich.

Library functions take a `progress: Progress` argument and call `start`/`update`/`log`;
`plmkit.ui.ConsoleProgress` renders it (a rich bar on a terminal, plain periodic lines
elsewhere), and the default `Progress()` does nothing, for tests and library use.
"""

from __future__ import annotations

from typing import Any


class Progress:
    """A sink for progress events. This base class ignores them all."""

    def start(self, description: str, total: float | None = None, unit: str = "") -> None:
        """Begin a phase of work of `total` units (None when unknown)."""

    def update(self, advance: float = 0, **fields: Any) -> None:
        """Record `advance` more units done; `fields` are live figures (loss=…, tokens=…)."""

    def log(self, message: str) -> None:
        """A line for the human watching (a warning, a phase summary)."""

    def finish(self) -> None:
        """End the current phase."""


NULL = Progress()
