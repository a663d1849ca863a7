"""`plmkit build-data`: corpus → pretraining shards for one objective (and `--merge` of slices)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plmkit.cli.app import app

EXAMPLE = (
    "Example: plmkit build-data corpora/ --tokenizer TOK --objective mlm --seq-len 128 --num-proc 2 --out DATA\n\n"
    "Objectives: mlm (BERT/RoBERTa; --dynamic masks at load time), nsp (BERT), sop (ALBERT), t5-span (T5), "
    "glm (GLM), clm (GPT/LLaMA).\n\n"
    "Across machines: run `plmkit build-data … --num-shards K --shard-index I --out DATA-I` for I = 0…K-1, "
    "then `plmkit build-data --merge DATA-0 … DATA-{K-1} --out DATA`."
)

_OBJ = "Objective options"
_MASK = "Masking (mlm, nsp, sop; --mask-prob also glm)"
_CORPUS = "Corpus"
_SCALE = "Splitting the build"


def _opt(help: str, panel: str, *names: str) -> typer.Option:
    return typer.Option(*names, help=help, rich_help_panel=panel, show_default=False)


@app.command("build-data", epilog=EXAMPLE)
def build_data(
    corpus: Annotated[list[str], typer.Argument(help="Text/JSONL/Parquet files, globs, folders or saved HF datasets "
                                                "(with --merge: the slice directories).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Data directory to write (DATA).", show_default=False)],
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer directory from `plmkit tokenize` (TOK).",
                                                   show_default=False)] = None,
    objective: Annotated[str | None, typer.Option(help="mlm | nsp | sop | t5-span | glm | clm.",
                                                  show_default=False)] = None,
    seq_len: Annotated[int, typer.Option(help="Tokens per example, special tokens included (t5-span: the "
                                         "inputs).")] = 128,
    seed: Annotated[int, typer.Option(help="Seed of every random choice (masks, pairs, spans, the validation "
                                      "documents).")] = 0,
    num_proc: Annotated[int, typer.Option(help="Processes (cores) to build with: this one and N-1 forked workers; the output is the same for any value.")] = 1,
    validation_fraction: Annotated[float, typer.Option(help="Share of documents held out for validation (at "
                                                       "least one when the corpus has two or more).")] = 0.01,
    mask_prob: Annotated[float | None, _opt("Share of tokens to predict (default 0.15).", _MASK)] = None,
    max_predictions: Annotated[int | None, _opt("Cap on predicted tokens per example (default none).", _MASK)] = None,
    mask_replace: Annotated[float | None, _opt("Of the selected tokens, share replaced by [MASK] (default 0.8).",
                                               _MASK)] = None,
    random_replace: Annotated[float | None, _opt("… share replaced by a random token (default 0.1); the rest stay.",
                                                 _MASK)] = None,
    whole_word: Annotated[bool | None, _opt("Select whole words (default sop: on; else off).", _MASK,
                                            "--whole-word/--no-whole-word")] = None,
    ngram: Annotated[int | None, _opt("Select n-grams of up to N units, P(n) ∝ 1/n (default sop: 3; else 1).",
                                      _MASK)] = None,
    dynamic: Annotated[bool | None, _opt("mlm: store unmasked rows; the loader masks them each epoch.",
                                         _OBJ, "--dynamic")] = None,
    cross_documents: Annotated[bool | None, _opt("mlm: pack segments across documents (RoBERTa FULL-SENTENCES).",
                                                 _OBJ, "--cross-documents")] = None,
    short_seq_prob: Annotated[float | None, _opt("nsp/sop: chance of a shorter target length (default 0.1).",
                                                 _OBJ)] = None,
    noise_density: Annotated[float | None, _opt("t5-span: share of noise tokens (default 0.15).", _OBJ)] = None,
    mean_span: Annotated[float | None, _opt("t5-span: mean noise span length (default 3).", _OBJ)] = None,
    poisson_lambda: Annotated[float | None, _opt("glm: mean of the Poisson span lengths (default 3).", _OBJ)] = None,
    bos: Annotated[bool | None, _opt("clm: start every document with BOS too.", _OBJ, "--bos")] = None,
    drop_remainder: Annotated[bool | None, _opt("clm: drop the last, shorter block of each split.", _OBJ,
                                                "--drop-remainder")] = None,
    doc_per_line: Annotated[bool, typer.Option(help="Plain text: one document per line (default: blank-line "
                                               "separated).", rich_help_panel=_CORPUS)] = False,
    text_field: Annotated[str, typer.Option(help="JSONL/Parquet/datasets: the text field.",
                                            rich_help_panel=_CORPUS)] = "text",
    encoding_errors: Annotated[str, typer.Option(help="strict: invalid UTF-8 is an error; replace: U+FFFD.",
                                                 rich_help_panel=_CORPUS)] = "strict",
    num_shards: Annotated[int, typer.Option(help="Split the build into K slices of the documents …",
                                            rich_help_panel=_SCALE)] = 1,
    shard_index: Annotated[int, typer.Option(help="… and build slice I (0-based) of them.",
                                             rich_help_panel=_SCALE)] = 0,
    merge: Annotated[bool, typer.Option("--merge", help="Join the slice directories given as arguments into --out.",
                                        rich_help_panel=_SCALE)] = False,
    chunk_docs: Annotated[int | None, _opt("Documents per work chunk (default 256); cross-document packing restarts "
                                           "at chunk boundaries.", "Advanced")] = None,
    chunk_chars: Annotated[int | None, _opt("Characters per work chunk (default 131072).", "Advanced")] = None,
    shard_chunks: Annotated[int | None, _opt("Chunks per shard file (default 64).", "Advanced")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --out if it exists.")] = False,
) -> None:
    """Turn a corpus into Arrow shards of pretraining examples for one objective.

    Writes DATA/train and DATA/validation (each loads with datasets.load_from_disk), DATA/tokenizer
    and DATA/plmkit.json. Same corpus, tokenizer, options and seed give byte-identical shards
    whatever --num-proc is. An interrupted build resumes when run again.
    """
    from plmkit import ui
    from plmkit.data.build import build_data as build
    from plmkit.data.build import merge_data, summary_rows
    from plmkit.data.params import resolve_params
    from plmkit.errors import PlmkitError, writing_to

    progress = ui.ConsoleProgress()
    if merge:
        if tokenizer is not None or objective is not None:
            raise PlmkitError("--merge takes only the slice directories (their manifests carry the options)",
                              hint="drop --tokenizer and --objective")
        with writing_to("--out", out):
            manifest = merge_data(corpus, out, force=force, progress=progress)
    else:
        if tokenizer is None or objective is None:
            raise PlmkitError(f"{'--tokenizer' if tokenizer is None else '--objective'} is required",
                              hint="e.g. plmkit build-data corpora/ --tokenizer TOK --objective mlm --out DATA")
        params = resolve_params(
            objective, seq_len=seq_len, seed=seed, validation_fraction=validation_fraction, doc_per_line=doc_per_line,
            text_field=text_field, encoding_errors=encoding_errors, mask_prob=mask_prob,
            max_predictions=max_predictions, mask_replace=mask_replace, random_replace=random_replace,
            whole_word=whole_word, ngram=ngram, dynamic=dynamic, cross_documents=cross_documents,
            short_seq_prob=short_seq_prob, noise_density=noise_density, mean_span=mean_span,
            poisson_lambda=poisson_lambda, bos=bos, drop_remainder=drop_remainder, chunk_docs=chunk_docs,
            chunk_chars=chunk_chars, shard_chunks=shard_chunks,
        )
        with writing_to("--out", out):
            manifest = build(corpus, tokenizer, out, params, num_proc=num_proc, num_shards=num_shards,
                             shard_index=shard_index, force=force, progress=progress)
    what = f"slice {manifest['slice']['shard_index']} of {manifest['slice']['num_shards']}" if "slice" in manifest \
        else manifest["params"]["objective"]
    ui.out.print(ui.table(f"data written to {out} ({what})", summary_rows(manifest),
                          columns=("", "train", "validation")))
