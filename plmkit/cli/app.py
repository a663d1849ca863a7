"""The typer application; each command module under `plmkit/cli/` adds itself to `app`."""

from __future__ import annotations

from typing import Annotated

import typer

from plmkit import __version__

app = typer.Typer(
    name="plmkit",
    help="Pretrain BERT, RoBERTa, ALBERT, T5, GPT, LLaMA and GLM from raw text: "
    "tokenize → build-data → train → eval/generate/export.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"plmkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks (also PLMKIT_DEBUG=1); "
                                        "accepted anywhere on the command line.")] = False,
) -> None:
    """Exit codes: 0 success, 1 user error (one line on stderr), 2 usage error, 130 interrupted."""
