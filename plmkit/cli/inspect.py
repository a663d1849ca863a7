"""`plmkit inspect DIR`: show what a stage directory holds, by the stage its manifest names.

Each stage has a renderer in `RENDERERS` (stage → function). A renderer is called as
`render(manifest, **options)` with every option of the command, and ignores those it does
not use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from plmkit.cli.app import app
from plmkit.cli.inspect_data import render_data

SAMPLE = "Tokenizers split unbelievable words like naïve “café” into pieces. 分词器把句子切成小块。😀"


def render_tokenizer(manifest: dict[str, Any], text: str | None = None, **_: Any) -> None:
    """The manifest summary, the special tokens, and how a sample sentence is split."""
    from rich.text import Text

    from plmkit import ui
    from plmkit.cli.tokenize import summary_rows, table
    from plmkit.tokenization import load_tokenizer

    p = manifest["params"]
    rows = summary_rows(manifest)
    rows += [("reader", f"doc per line {p.get('doc_per_line')}, text field {p.get('text_field')!r}, "
                        f"encoding errors {p.get('encoding_errors')}"),
             ("trainer", f"min frequency {p['min_frequency']}, max sentences {p['max_sentences']}, seed {p['seed']}")]
    inputs = manifest["inputs"]
    rows += [("input", f"{i['path']} ({i['bytes']:,} bytes)" if i.get("bytes") is not None else i["path"])
             for i in inputs[:3]]
    if len(inputs) > 3:
        rows.append(("input", f"… and {len(inputs) - 3} more, {sum(i.get('bytes') or 0 for i in inputs):,} bytes in all"))
    rows += [("fingerprint", manifest["fingerprint"][:16]),
             ("created", f"{manifest.get('created')} by plmkit {manifest['plmkit_version']}")]
    ui.out.print(table(f"tokenizer {manifest['path']}", rows))

    tok = load_tokenizer(manifest["path"], flag="DIR")
    text = SAMPLE if text is None else text
    ids = tok.encode(text)
    starts = tok.word_start_mask(ids)
    split = Text()
    for k, (token, start) in enumerate(zip(tok.tokens(ids), starts, strict=True)):
        if k:
            split.append("  " if start else "·")
        split.append(token, style="black on cyan" if k % 2 == 0 else "black on yellow")
    ui.out.print(Text(f"\n{text!r} → {len(ids)} tokens ({len(text) / max(1, len(ids)):.2f} chars/token); "
                      "words are two spaces apart, pieces of a word joined by ·"))
    ui.out.print(split)
    ui.out.print(Text(f"ids: {ids.tolist()}"))


# stage (as in plmkit.json) → renderer; later stages add theirs here.
RENDERERS = {"tokenizer": render_tokenizer, "data": render_data}


@app.command("inspect", epilog="Example: plmkit inspect TOK --text 'Hello, 世界!'  ·  plmkit inspect DATA -n 2")
def inspect(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="A directory written by a plmkit command "
                                              "(TOK, DATA).", show_default=False)],
    text: Annotated[str | None, typer.Option(help="TOK: the sentence to split.",
                                             show_default="English, accents, Chinese and an emoji")] = None,
    split: Annotated[str, typer.Option(help="DATA: the split to show (train or validation).")] = "train",
    n: Annotated[int, typer.Option("-n", help="DATA: how many examples to show.")] = 3,
) -> None:
    """Show a plmkit stage directory: its manifest, and a rendered sample of what it holds."""
    from plmkit.manifest import read_manifest

    manifest = read_manifest(directory, tuple(RENDERERS), flag="DIR")
    RENDERERS[manifest["stage"]](manifest, text=text, split=split, n=n)
