"""`plmkit quickstart`: tokenize → build-data → train → eval → generate on the bundled corpus, then a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plmkit.cli.app import app

EPILOG = ("Example: plmkit quickstart --family gpt --out runs/quickstart\n\n"
          "Families: gpt (default) llama bert roberta albert t5 glm, or all (each one briefly). The stage "
          "directories under --out are the ordinary ones; the summary prints the commands to continue from each.")


@app.command("quickstart", epilog=EPILOG)
def quickstart_command(
    family: Annotated[str, typer.Option(help="gpt | llama | bert | roberta | albert | t5 | glm | all.")] = "gpt",
    corpus: Annotated[list[str] | None, typer.Option(
        help="Text to train on instead of the bundled corpus (files, globs, folders; repeat the flag for more).",
        show_default="the bundled corpora/")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the stage directories.")] = Path("runs/quickstart"),
    max_steps: Annotated[int | None, typer.Option(help="Training steps of every family (default: each family's "
                                                  "laptop-sized schedule, 400; 120 each with --family all).",
                                                  show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Overwrite the stage directories of an earlier "
                                        "quickstart in --out.")] = False,
) -> None:
    """Run the whole pipeline on a small corpus in a few CPU minutes and show what came out.

    Trains a tokenizer, builds the shards, trains a small model, evaluates it and generates (or
    fills masks) with it; ends with validation loss and perplexity, samples, and the ordinary
    commands to continue from every directory it wrote.
    """
    from plmkit import ui
    from plmkit.quickstart import parse_families, run_quickstart

    families = parse_families(family)
    report = run_quickstart(families, corpus=corpus, out=out, force=force, max_steps=max_steps, device=device,
                            progress=ui.ConsoleProgress())
    show_summary(report)


ACCURACY = {"next_token_accuracy": "next token", "mlm_accuracy": "masked tokens", "nsp_accuracy": "next sentence",
            "sop_accuracy": "sentence order", "token_accuracy": "target tokens", "span_accuracy": "span tokens"}


def one_line(text: str) -> str:
    """Generated text in a table cell: line breaks shown as ↵."""
    return " ↵ ".join(line.strip() for line in text.strip().splitlines())


def show_summary(report) -> None:
    """What was written, the validation figures, the samples, and the commands to continue."""
    from rich.markup import escape

    from plmkit import ui
    from plmkit.quickstart import continue_commands

    def table(title, rows, columns):
        return ui.table(escape(title), [tuple(escape(str(c)) for c in row) for row in rows], columns=columns)

    secs = report.seconds
    written = [(stage, path, what) for stage, path, what in report.written]
    ui.out.print(table(f"written under {report.plan.out} in {secs['total']:.0f} s", written,
                       ("stage", "directory", "holds")))
    rows = []
    for f in report.families:
        m = f.metrics
        accuracies = ", ".join(f"{m[k]:.3f} {ACCURACY[k]}" for k in m if k in ACCURACY)
        rows.append((f.family, m["objective"], f"{m['loss']:.3f}", f"{m['perplexity']:.1f}", accuracies, f.steps,
                     f"{f.seconds['train']:.0f} s"))
    ui.out.print(table("validation", rows, ("family", "objective", "loss", "perplexity", "accuracy", "steps",
                                            "train time")))
    for f in report.families:
        if not f.samples:
            continue
        sample_rows = []
        for s in f.samples:
            extra = ""
            if s.candidates:
                extra = ", ".join(f"{tok} {p:.2f}" for tok, p in s.candidates)
            if s.original is not None:
                extra = f"was: {s.original}" + (f"; best: {extra}" if extra else "")
            sample_rows.append((s.prompt, one_line(s.output), extra))
        if not any(extra for *_, extra in sample_rows):
            sample_rows = [row[:2] for row in sample_rows]
        columns = ("prompt", "filled" if f.samples[0].original is not None else "output", "")
        ui.out.print(table(f"{f.family} samples ({f.run})", sample_rows, columns[:len(sample_rows[0])]))
    ui.out.print("\nContinue from any stage with the ordinary commands:", markup=False)
    for what, cmd in continue_commands(report.plan):
        ui.out.print(f"  # {what}\n  {cmd}", markup=False, highlight=False, soft_wrap=True)
