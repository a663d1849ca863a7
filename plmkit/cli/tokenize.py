"""`plmkit tokenize`: train a tokenizer on a corpus and write TOK/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from plmkit.cli.app import app

EXAMPLE = ("Example: plmkit tokenize corpora/en corpora/zh --preset bert --vocab-size 8000 --out TOK\n\n"
           "Kinds: wordpiece (BERT), bpe (byte-level, GPT-2/RoBERTa), unigram (SentencePiece, T5/ALBERT), "
           "sp-bpe (SentencePiece BPE with byte fallback, LLaMA). Presets: bert roberta albert t5 gpt llama glm.")


@app.command("tokenize", epilog=EXAMPLE, help=(
    "Train a WordPiece, byte-level BPE, or SentencePiece (unigram, BPE) tokenizer on CORPUS.\n\n"
    "Every tokenizer reserves the special tokens of every objective (pad, unk, cls/bos, sep/eos, mask, GLM's "
    "four, 100 T5 sentinels); TOK/ loads with transformers.AutoTokenizer.from_pretrained(TOK)."))
def tokenize(
    corpus: Annotated[list[str], typer.Argument(help="Text/JSONL/Parquet files, globs, folders or saved HF datasets.",
                                                show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Tokenizer directory to write (TOK).",
                                      show_default=False)],
    kind: Annotated[str | None, typer.Option(help="wordpiece | bpe | unigram | sp-bpe (default: the preset's).",
                                             show_default=False)] = None,
    preset: Annotated[str | None, typer.Option(help="bert | roberta | albert | t5 | gpt | llama | glm: kind, "
                                               "normalisation and special-token names (flags win).",
                                               show_default=False)] = None,
    vocab_size: Annotated[int, typer.Option(help="Vocabulary size, special tokens included.")] = 30000,
    min_frequency: Annotated[int | None, typer.Option(help="wordpiece/bpe: minimum count of a merged pair.",
                                                      show_default="2")] = None,
    lowercase: Annotated[bool | None, typer.Option("--lowercase/--no-lowercase", help="Lower-case the text.",
                                                   show_default="the preset's")] = None,
    strip_accents: Annotated[bool | None, typer.Option("--strip-accents/--no-strip-accents", help="Strip accents.",
                                                       show_default="as --lowercase")] = None,
    max_sentences: Annotated[int | None, typer.Option(help="unigram/sp-bpe: lines SentencePiece samples to train "
                                                      "on, 0 = all.", show_default="10000000")] = None,
    allow_smaller_vocab: Annotated[bool, typer.Option("--allow-smaller-vocab", help="Keep a smaller vocabulary "
                                                      "when the corpus cannot fill --vocab-size (else an error).")]
    = False,
    doc_per_line: Annotated[bool, typer.Option("--doc-per-line", help="Plain text: one document per line "
                                               "(default: documents are separated by blank lines).")] = False,
    text_field: Annotated[str, typer.Option(help="JSONL/Parquet/datasets: the field holding the text.")] = "text",
    encoding_errors: Annotated[str, typer.Option(help="strict: invalid UTF-8 is an error; replace: U+FFFD.")]
    = "strict",
    seed: Annotated[int, typer.Option(help="SentencePiece sampling and training seed.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    from plmkit import ui
    from plmkit.tokenization import resolve_spec, train_from_corpus

    spec = resolve_spec(kind=kind, preset=preset, vocab_size=vocab_size, min_frequency=min_frequency,
                        lowercase=lowercase, strip_accents=strip_accents, max_sentences=max_sentences, seed=seed,
                        allow_smaller_vocab=allow_smaller_vocab)
    sentencepiece = spec.kind in ("unigram", "sp-bpe")
    if max_sentences is not None and not sentencepiece:
        ui.warn(f"--max-sentences applies to SentencePiece kinds only; ignored for {spec.kind}")
    if min_frequency is not None and sentencepiece:
        ui.warn(f"--min-frequency applies to wordpiece/bpe only; ignored for {spec.kind}")
    manifest = train_from_corpus(corpus, out, spec, doc_per_line=doc_per_line, text_field=text_field,
                                 encoding_errors=encoding_errors, force=force, progress=ui.ConsoleProgress())
    if manifest["vocab_size"] < spec.vocab_size:
        ui.warn(f"the corpus filled only {manifest['vocab_size']} of --vocab-size {spec.vocab_size} tokens "
                "(--allow-smaller-vocab)")
    ui.out.print(table(f"tokenizer written to {out}", summary_rows(manifest)))


def table(title: str, rows: list[tuple[str, str]]):
    """`ui.table` with the cells escaped: tokens like [gMASK] would otherwise read as rich markup."""
    from rich.markup import escape

    from plmkit import ui

    return ui.table(escape(title), [(escape(a), escape(b)) for a, b in rows])


def summary_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows of the closing table (also used by `plmkit inspect`)."""
    p, c = m["params"], m["corpus"]
    rows = [("kind", f"{m['kind']} (preset {p['preset']})"),
            ("vocab size", f"{m['vocab_size']}" + (f" of {p['vocab_size']} asked" if m["vocab_size"] < p["vocab_size"]
                                                   else "")),
            ("normalisation", f"lowercase {p['lowercase']}, strip accents {p['strip_accents']}"),
            ("corpus", f"{c['documents']:,} documents, {c['characters']:,} characters, {len(m['inputs'])} source(s)"),
            ("chars / token", f"{c['chars_per_token']:.2f} on the {c['chars_per_token_on']} text"
             + (f" ({c['held_out_documents']} documents)" if c["held_out_documents"] else ""))]
    rows += special_rows(m)
    if "elapsed_s" in m:
        rows.append(("time", f"{m['elapsed_s']:.1f} s"))
    return rows


def special_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """One row per distinct special token (roles sharing a token on one row), then the sentinels."""
    by_token: dict[str, list[str]] = {}
    for role, v in m["special_tokens"].items():
        by_token.setdefault(f"{v['token']} = {v['id']}", []).append(role)
    rows = [("/".join(roles), token) for token, roles in by_token.items()]
    s = m["sentinels"]
    span = f"{s[0]}…{s[-1]}" if s == list(range(s[0], s[0] + len(s))) else f"{s[0]}, {s[1]}, …, {s[-1]}"
    rows.append(("sentinels", f"<extra_id_0>…<extra_id_{len(s) - 1}> = {span}"))
    return rows
