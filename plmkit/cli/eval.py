"""`plmkit eval`: held-out loss, perplexity and accuracies of a run, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from plmkit.cli.app import app

EPILOG = "Example: plmkit eval RUN --data DATA --split validation --json"


@app.command("eval", epilog=EPILOG)
def eval_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `plmkit train`.")],
    data: Annotated[Path, typer.Option(help="Shards built with the run's tokenizer (RUN/tokenizer).")],
    split: Annotated[str, typer.Option(help="train or validation.")] = "validation",
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 or bf16 (autocast).")] = "fp32",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON on stdout.")] = False,
) -> None:
    """Evaluate a trained run on shards: loss and perplexity for every objective, plus its accuracy.

    MLM accuracy at the masked positions, NSP/SOP accuracy, T5 target-token accuracy, GLM
    span-token accuracy, CLM next-token accuracy.
    """
    from plmkit.finetune import is_finetuned

    if is_finetuned(run):  # FT/ of `plmkit finetune`: --data is a labelled file, scored by plmkit.finetune
        from plmkit.cli.finetune import eval_finetuned

        return eval_finetuned(run, data, batch_size=batch_size, device=device, as_json=as_json)
    from plmkit import ui
    from plmkit.evaluate import evaluate_run

    result = evaluate_run(run, data, split, batch_size=batch_size, device=device, precision=precision)
    if as_json:
        ui.out.print_json(json.dumps(result))
        return
    rows = [(key.replace("_", " "), f"{value:.4f}" if isinstance(value, float) else f"{value:,}")
            for key, value in result.items() if key not in ("run", "data", "split", "objective", "family")]
    title = f"{result['family']} on the {split} split ({result['objective']})"
    ui.out.print(ui.table(title, rows, columns=("metric", "value")))
