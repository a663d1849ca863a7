"""`plmkit export`: a run as a Hugging Face model directory (weights, config and tokenizer files)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from plmkit.cli.app import app

EPILOG = "Example: plmkit export RUN --format hf --out HF_DIR   (or plmkit export FT --out HF_DIR)"

# What transformers' AutoTokenizer reads; the tokenizer's plmkit.json stays behind (HF_DIR is no plmkit stage).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "spm.model")


@app.command("export", epilog=EPILOG)
def export_command(
    run: Annotated[Path, typer.Argument(help="Run directory written by `plmkit train` (or FT/ by `plmkit finetune`).")],
    out: Annotated[Path, typer.Option(help="Directory to create.")],
    format: Annotated[str, typer.Option("--format", help="hf: for transformers' AutoModelFor….from_pretrained.")] = "hf",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out.")] = False,
) -> None:
    """Write a run's final model as a Hugging Face directory (config.json, model.safetensors, tokenizer).

    BERT → BertForPreTraining, RoBERTa → RobertaForMaskedLM, ALBERT → AlbertForPreTraining,
    T5 → T5ForConditionalGeneration, GPT → GPT2LMHeadModel, LLaMA → LlamaForCausalLM.
    A fine-tuned FT/ → …ForSequenceClassification (classify: BERT, RoBERTa, ALBERT, GPT, LLaMA) or
    …ForTokenClassification (label-tokens: BERT, RoBERTa, ALBERT).
    """
    from plmkit import ui

    path = export_run(run, out, format, force)
    ui.info(f"wrote {path} (load it with transformers' AutoModel….from_pretrained and AutoTokenizer)")


def export_run(run: Path, out: Path, format: str = "hf", force: bool = False) -> Path:
    from plmkit.errors import PlmkitError
    from plmkit.manifest import read_manifest, staging_dir
    from plmkit.models import load_config, load_model
    from plmkit.models.hf import export_hf

    if format != "hf":
        raise PlmkitError(f"--format {format!r} is not supported", hint="use --format hf")
    from plmkit.finetune import is_finetuned

    if is_finetuned(run):  # FT/ → AutoModelFor{Sequence,Token}Classification
        from plmkit.finetune import export_hf as export_finetuned

        return export_finetuned(run, out, force=force)
    manifest = read_manifest(run, "run", flag="RUN")
    if load_config(run, flag="RUN").family == "glm":
        raise PlmkitError("GLM cannot be exported to Hugging Face format: transformers has no GLM-1 class "
                          "(its 'glm' model type is GLM-4, a different architecture)",
                          hint="use the run directory itself with plmkit generate / plmkit eval")
    model, cfg = load_model(manifest["path"], flag="RUN")
    with staging_dir(out, force=force) as tmp:
        export_hf(model, cfg, tmp)
        for name in TOKENIZER_FILES:
            if (Path(run) / "tokenizer" / name).is_file():
                shutil.copy2(Path(run) / "tokenizer" / name, tmp / name)
    return out
