"""`plmkit finetune`: a pretrained RUN + labelled files → FT/; and how FT/ results are shown.

`show_evaluation` and `show_predictions` render `plmkit eval FT …` and `plmkit generate FT …`
(those commands hand FT/ directories here, see `plmkit.finetune.is_finetuned`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from plmkit.cli.app import app
from plmkit.finetune.config import FORMATS, METRICS, TASKS, FinetuneConfig

D = FinetuneConfig()
IO, OPT = "Input/Output", "Optimisation"

EPILOG = """Example: plmkit finetune RUN --task classify --train train.csv --validation dev.csv --out FT

Files: CSV/TSV with a header, JSONL, or (label-tokens) CoNLL columns `word<TAB>tag` with a blank line \
between sentences.

Then: plmkit eval FT --data test.csv · plmkit generate FT --prompt "a text" · \
plmkit export FT --format hf --out HF_DIR (BERT, RoBERTa, ALBERT, GPT, LLaMA)."""


@app.command("finetune", epilog=EPILOG)
def finetune_command(
    run: Annotated[Path, typer.Argument(help="A run directory written by `plmkit train`.", show_default=False)],
    train: Annotated[Path, typer.Option(help="Labelled training file (.csv, .tsv, .jsonl, .conll).",
                                        show_default=False, rich_help_panel=IO)],
    validation: Annotated[Path, typer.Option(help="Labelled file to pick the best weights by.",
                                             show_default=False, rich_help_panel=IO)],
    out: Annotated[Path, typer.Option(help="Directory to create.", show_default=False, rich_help_panel=IO)],
    task: Annotated[str, typer.Option(help=f"{' or '.join(TASKS)}: one label a text (or text pair), or one "
                                           "label a word (encoders only).", rich_help_panel=IO)] = D.task,
    text_field: Annotated[str | None, typer.Option(
        help="Field holding the text (classify, default: text) or the words (label-tokens, default: tokens).",
        show_default=False, rich_help_panel=IO)] = None,
    text_pair_field: Annotated[str | None, typer.Option(
        help="Field holding a second text (sentence pairs: [CLS] A [SEP] B [SEP]).", show_default=False,
        rich_help_panel=IO)] = None,
    label_field: Annotated[str | None, typer.Option(
        help="Field holding the label (default: label) or the per-word tags (default: tags); labels may be "
             "strings.", show_default=False, rich_help_panel=IO)] = None,
    fmt: Annotated[str, typer.Option("--format", help=f"{', '.join(FORMATS)} (auto: by file extension).",
                                     rich_help_panel=IO)] = D.format,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).", rich_help_panel=OPT)] = D.lr,
    epochs: Annotated[int, typer.Option(help="Passes over --train.", rich_help_panel=OPT)] = D.epochs,
    batch_size: Annotated[int, typer.Option(help="Examples per step.", rich_help_panel=OPT)] = D.batch_size,
    warmup: Annotated[int | None, typer.Option(help="Steps of linear warm-up, then linear decay to 0 "
                                                    "\\[default: 10% of the steps].", show_default=False,
                                               rich_help_panel=OPT)] = None,
    weight_decay: Annotated[float, typer.Option(help="AdamW decay on weight matrices.",
                                                rich_help_panel=OPT)] = D.weight_decay,
    clip: Annotated[float, typer.Option(help="Max gradient norm; 0 = no clipping.", rich_help_panel=OPT)] = D.clip,
    max_seq_len: Annotated[int, typer.Option(help="Tokens per example, special tokens included (cut beyond; "
                                                  "at most the model's context).", rich_help_panel=OPT)] = D.max_seq_len,
    metric: Annotated[str | None, typer.Option(
        help="Validation metric that picks the best weights: "
             + "; ".join(f"{t}: {', '.join(ms)}" for t, ms in METRICS.items())
             + " \\[default: accuracy; entity_f1 for BIO tags, else token_f1].", show_default=False,
        rich_help_panel=OPT)] = None,
    patience: Annotated[int, typer.Option(help="Stop after this many evaluations without improvement; "
                                               "0 = never stop early.", rich_help_panel=OPT)] = D.patience,
    eval_every: Annotated[int, typer.Option(help="Evaluate every N steps too (always at each epoch's end).",
                                            rich_help_panel=OPT)] = D.eval_every,
    seed: Annotated[int, typer.Option(help="Seed of the head's initialisation, data order and dropout.",
                                      rich_help_panel=OPT)] = D.seed,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = D.device,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Fine-tune a pretrained run to label texts (classify) or words (label-tokens); keeps the best weights.

    Encoders classify from [CLS], GPT/LLaMA from the last token, T5 by scoring each label's text,
    GLM from [CLS]. Writes FT/: plmkit.json (task, labels, the run it came from), config.json,
    model.safetensors, tokenizer/ and metrics.jsonl.
    """
    from plmkit import ui
    from plmkit.finetune import finetune

    cfg = FinetuneConfig(run=str(run), task=task, train=str(train), validation=str(validation), out=str(out),
                         text_field=text_field, text_pair_field=text_pair_field, label_field=label_field,
                         format=fmt, lr=lr, epochs=epochs, batch_size=batch_size, warmup=warmup,
                         weight_decay=weight_decay, clip=clip, max_seq_len=max_seq_len, metric=metric,
                         patience=patience, eval_every=eval_every, seed=seed, device=device)
    summary = finetune(cfg, ui.ConsoleProgress(), force=force)
    if as_json:
        _print_json(summary)
        return
    best = summary["best"]
    rows = [("task", f"{summary['task']} ({summary['family']})"), ("labels", ", ".join(summary["labels"])),
            ("steps", f"{summary['steps']} ({summary['epochs']} epoch{'s' * (summary['epochs'] != 1)}"
                      + (", stopped early)" if summary["stopped_early"] else ")")),
            ("best", f"{summary['metric']} {best['value']:.4f} at step {best['step']} (epoch {best['epoch']})")]
    ui.show(ui.table(f"fine-tuned {summary['out']}", rows))
    show_evaluation({**best["eval"], "labels": summary["labels"], "task": summary["task"]},
                    title="validation", as_json=False)


# ---- rendering shared with `plmkit eval FT` and `plmkit generate FT` ----------------------------

def _print_json(doc: Any) -> None:
    from plmkit import ui

    ui.out.print(json.dumps(doc, ensure_ascii=False, indent=2), markup=False, highlight=False, soft_wrap=True)


def show_evaluation(result: dict, title: str = "evaluation", as_json: bool = False) -> None:
    """Metrics as a table and the confusion matrix as a second one (rows gold, columns predicted); or JSON."""
    from rich.markup import escape

    from plmkit import ui

    if as_json:
        _print_json(result)
        return
    rows = [(k.replace("_", " "), f"{v:.4f}" if isinstance(v, float) else v)
            for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    ui.out.print(ui.table(f"{title} ({result['task']})", rows, columns=("metric", "value")))
    labels = [escape(name) for name in result["labels"]]
    matrix = [(name, *counts) for name, counts in zip(labels, result["confusion"], strict=True)]
    unit = "examples" if result["task"] == "classify" else "words"
    ui.out.print(ui.table(f"confusion matrix ({unit}; rows: gold, columns: predicted)", matrix,
                          columns=("gold \\ predicted", *labels)))


def show_predictions(results: list[dict], as_json: bool = False) -> None:
    """classify: text, label, probability and the runners-up; label-tokens: each word/TAG."""
    from rich.markup import escape

    from plmkit import ui

    if as_json:
        _print_json(results)
        return
    if results and "words" in results[0]:
        for r in results:
            ui.out.print(" ".join(f"{w}/{t}" for w, t in zip(r["words"], r["labels"], strict=True)),
                         markup=False, highlight=False, soft_wrap=True)
        return
    rows = [(escape(r["text"] if "pair" not in r else f"{r['text']} ‖ {r['pair']}"), escape(r["label"]),
             f"{r['prob']:.4f}", ", ".join(f"{escape(k)} {v:.3f}" for k, v in list(r["probs"].items())[1:4]))
            for r in results]
    ui.out.print(ui.table("predictions", rows, columns=("text", "label", "probability", "next labels")))


def eval_finetuned(ft: Path, data: Path, *, batch_size: int, device: str, as_json: bool) -> None:
    """`plmkit eval FT --data FILE`: accuracy/macro-F1 or token/entity F1 and a confusion matrix."""
    from plmkit.finetune import evaluate_ft

    result = evaluate_ft(ft, data, batch_size=batch_size, device=device)
    show_evaluation(result, title=f"{Path(ft).name} on {Path(data).name}", as_json=as_json)


def predict_finetuned(ft: Path, prompts: list[str], *, batch_size: int, device: str, as_json: bool) -> None:
    """`plmkit generate FT --prompt TEXT`: labels with probabilities (a tab separates the texts of a pair)."""
    from plmkit.errors import PlmkitError
    from plmkit.finetune import load_finetuned, predict

    loaded = load_finetuned(ft, device)
    pairs = None
    if loaded.fields[1] is not None:
        split = [p.split("\t", 1) for p in prompts]
        if any(len(s) != 2 for s in split):
            raise PlmkitError(f"FT {ft} classifies text pairs: separate the two texts of each prompt with a tab",
                              hint="e.g. --prompt $'first text\\tsecond text'")
        prompts, pairs = [s[0] for s in split], [s[1] for s in split]
    show_predictions(predict(loaded, prompts, pairs, batch_size=batch_size), as_json=as_json)
