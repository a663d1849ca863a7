"""Shared fixtures. Tests use the project's own corpora/ and tests/assets/, never ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).resolve().parent / "assets"

# Keep torch on the 2 cores CI has, and make runs reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


@pytest.fixture
def assets() -> Path:
    return ASSETS


@pytest.fixture
def run_cli():
    """Run the plmkit CLI in-process; returns (exit_code, stdout, stderr)."""

    def _run(*args: str) -> tuple[int, str, str]:
        import contextlib
        import io

        from plmkit.cli import main

        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            from plmkit import ui

            ui.console.file, ui.out.file = err, out
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            finally:
                ui.console.file, ui.out.file = None, None
        return code, out.getvalue(), err.getvalue()

    return _run
