"""Command-line interface: a thin shell over the library.

`main()` owns error rendering: a `PlmkitError` is one red line on stderr and exit 1, a usage
error exit 2, Ctrl-C exit 130; `--debug` (anywhere on the line) or PLMKIT_DEBUG=1 re-raises
so the full traceback shows.
"""

from __future__ import annotations

import os
import sys

import typer

# Command modules register themselves on import; one line each, in pipeline order.
# COMMANDS is the CLI's command surface (tests/test_cli.py asserts it).
from plmkit.cli import (
    build_data,  # noqa: F401
    eval,  # noqa: F401
    export,  # noqa: F401
    finetune,  # noqa: F401
    generate,  # noqa: F401
    inspect,  # noqa: F401
    quickstart,  # noqa: F401
    tokenize,  # noqa: F401
    train,  # noqa: F401
)
from plmkit.cli.app import app
from plmkit.errors import PlmkitError

COMMANDS: list[str] = ["tokenize", "build-data", "inspect", "train", "eval", "generate", "export", "finetune", "quickstart"]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("PLMKIT_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        rv = app(args=args, prog_name="plmkit", standalone_mode=False)
        # Outside standalone mode typer turns Ctrl-C into a returned exit code (130) instead of raising.
        if isinstance(rv, int) and rv:
            if rv == 130:
                _error("interrupted")
            sys.exit(rv)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _interrupted(debug)
    except PlmkitError as e:
        if debug:
            raise
        _error(str(e))
        sys.exit(1)
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # click usage errors: bad flags, missing arguments
            if debug:
                raise
            e.show()
            sys.exit(e.exit_code)
        # An internal failure: still one line unless --debug.
        if debug:
            raise
        _error(f"internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)")
        sys.exit(1)


def _error(message: str) -> None:
    from plmkit import ui

    ui.error(message)


def _interrupted(debug: bool) -> None:
    if debug:
        raise
    _error("interrupted")
    sys.exit(130)
