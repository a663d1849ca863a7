"""`plmkit train`: parse flags, merge them over `--config`, call `plmkit.train.train`, report."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from plmkit.cli.app import app
from plmkit.train.config import FIELDS, PRECISIONS, SCHEDULES, TrainConfig

D = TrainConfig()
IO, OPT, LOOP, SYS = "Input/Output", "Optimisation", "Schedule of the run", "Devices"

EPILOG = """Example: plmkit train --data DATA --model bert:small --out RUN --max-steps 2000 --lr 5e-4

Rerunning the same command on an existing RUN resumes from its newest checkpoint; Ctrl-C saves
a checkpoint first. Several processes: torchrun --nproc-per-node 4 -m plmkit train … (the
--batch-size is the global batch, split over processes and --grad-accum micro-batches)."""


@app.command("train", epilog=EPILOG)
def train_command(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option(help="Shards from `plmkit build-data`.", rich_help_panel=IO)] = None,
    model: Annotated[str | None, typer.Option(
        help="FAMILY[:SIZE]: bert, roberta, albert, t5, gpt, llama, glm; sizes tiny, small (default), base; "
             "or a published shape (bert-base, gpt2, t5-small, …).", rich_help_panel=IO)] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to create (or resume).",
                                                rich_help_panel=IO)] = None,
    config: Annotated[Path | None, typer.Option(
        help="TOML or YAML file of these settings (flag names as keys); flags typed here win.",
        rich_help_panel=IO)] = None,
    init_from: Annotated[Path | None, typer.Option(
        help="Start from a plmkit RUN or a Hugging Face model directory (continued pretraining).",
        rich_help_panel=IO)] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps.",
                                                     rich_help_panel=LOOP)] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Stop after this many training tokens.",
                                                      rich_help_panel=LOOP)] = None,
    epochs: Annotated[float | None, typer.Option(help="Stop after this many passes over the shards "
                                                         "(default 1 when no limit is given).",
                                                    rich_help_panel=LOOP)] = None,
    batch_size: Annotated[int, typer.Option(help="Sequences per optimizer step (all processes together).",
                                            rich_help_panel=OPT)] = D.batch_size,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per step on each process.",
                                            rich_help_panel=OPT)] = D.grad_accum,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).", rich_help_panel=OPT)] = D.lr,
    warmup: Annotated[int, typer.Option(help="Steps of linear warm-up.", rich_help_panel=OPT)] = D.warmup,
    schedule: Annotated[str, typer.Option(help=f"Decay after warm-up: {', '.join(SCHEDULES)}.",
                                          rich_help_panel=OPT)] = D.schedule,
    min_lr: Annotated[float, typer.Option(help="Learning rate at the end of the decay.",
                                          rich_help_panel=OPT)] = D.min_lr,
    weight_decay: Annotated[float, typer.Option(help="AdamW decay on weight matrices (not on norms, biases, "
                                                     "position tables).", rich_help_panel=OPT)] = D.weight_decay,
    clip: Annotated[float, typer.Option(help="Max gradient norm; 0 = no clipping.", rich_help_panel=OPT)] = D.clip,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, data order and dynamic masking.",
                                      rich_help_panel=OPT)] = D.seed,
    eval_every: Annotated[int, typer.Option(help="Validate every N steps (and at the end); 0 = only at the end.",
                                            rich_help_panel=LOOP)] = D.eval_every,
    save_every: Annotated[int, typer.Option(help="Checkpoint every N steps (and at the end); 0 = only at the end.",
                                            rich_help_panel=LOOP)] = D.save_every,
    keep_last: Annotated[int, typer.Option(help="Checkpoints to keep; 0 = all.", rich_help_panel=LOOP)] = D.keep_last,
    log_every: Annotated[int, typer.Option(help="Steps between lines of metrics.jsonl.",
                                           rich_help_panel=LOOP)] = D.log_every,
    resume: Annotated[bool, typer.Option("--resume", help="Require a checkpoint to continue from (rerunning "
                                         "the same command resumes anyway).", rich_help_panel=LOOP)] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete an existing --out and start over.",
                                        rich_help_panel=LOOP)] = False,
    precision: Annotated[str, typer.Option(help=f"{' or '.join(PRECISIONS)} (bf16 = autocast).",
                                           rich_help_panel=SYS)] = D.precision,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.",
                                          rich_help_panel=SYS)] = D.compile,
    fsdp: Annotated[bool, typer.Option("--fsdp", help="Shard parameters over processes (FSDP2) instead of DDP.",
                                       rich_help_panel=SYS)] = D.fsdp,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.", rich_help_panel=SYS)] = D.device,
    num_workers: Annotated[int, typer.Option(help="Data-loading worker processes per training process.",
                                             rich_help_panel=SYS)] = D.num_workers,
) -> None:
    """Pretrain a model on shards: one loop for every family and objective, resumable, torchrun-ready.

    Writes RUN/: plmkit.json, config.json and model.safetensors (final weights), tokenizer/,
    train_config.json (the resolved settings), checkpoints/step-XXXXXXXX/, metrics.jsonl and loss.png.
    """
    from plmkit import ui
    from plmkit.train import train
    from plmkit.train.config import read_config_file, resolve

    typed = {name: ctx.params[name] for name in FIELDS
             if name in ctx.params and ctx.get_parameter_source(name).name in ("COMMANDLINE", "ENVIRONMENT")}
    typed = {k: str(v) if isinstance(v, Path) else v for k, v in typed.items()}
    cfg = resolve(read_config_file(config) if config else {}, typed)
    is_main = os.environ.get("RANK", "0") == "0"
    try:
        summary = train(cfg, ui.ConsoleProgress(enabled=is_main), resume=resume, force=force)
    except KeyboardInterrupt:
        # The checkpoint is saved and said so; exit 130 here, because typer turns a KeyboardInterrupt
        # into a *returned* 130 outside standalone mode, which main() would report as success.
        sys.exit(130)
    if is_main and not summary.get("already_complete"):
        _report(summary)


def _report(summary: dict) -> None:
    from plmkit import ui

    rows = [("steps", summary["steps"]), ("tokens", f"{summary['tokens']:,}"),
            ("time", f"{summary['elapsed_s']:.1f} s"), ("tokens/s", f"{summary['tokens_per_s']:,.0f}")]
    if summary.get("first_step_s") is not None:
        rows.append(("time to first step", f"{summary['first_step_s']:.1f} s"))
    if summary.get("loss") is not None:
        rows.append(("final training loss", f"{summary['loss']:.4f}"))
    for key, value in (summary.get("eval") or {}).items():
        if isinstance(value, float):
            rows.append((f"validation {key.replace('_', ' ')}", f"{value:.4f}"))
    ui.show(ui.table(f"trained {summary['run']}", rows))
