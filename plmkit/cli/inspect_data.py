"""`plmkit inspect DATA`: the build summary and a few decoded examples, coloured by role.

Registered in `plmkit/cli/inspect.py`'s `RENDERERS` as the renderer of the "data" stage.

* mlm / nsp / sop: every predicted position shows its target, coloured by what the input holds
  there ([MASK] red, a random token magenta, the token kept green); segment B is underlined;
* t5-span: each sentinel of the inputs is followed by the span it hides, then the raw targets;
* glm: Part A with each [MASK] followed by its span, then Part B's pieces with their positions;
* clm: the decoded block, EOS/BOS markers visible.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MASKED, RANDOM, KEPT = "bold white on red", "bold white on magenta", "bold black on green"
SPECIAL, SEGMENT_B, SENTINEL = "dim", "underline", "bold black on cyan"


def render_data(manifest: dict[str, Any], split: str = "train", n: int = 3, **_: Any) -> None:
    """Summary table, then `n` examples of `split` decoded with their targets."""
    from rich.text import Text

    from plmkit import ui
    from plmkit.data.build import summary_rows
    from plmkit.data.shards import open_split
    from plmkit.errors import check
    from plmkit.tokenization import load_tokenizer

    check(split in ("train", "validation"), f"--split must be train or validation, got {split!r}")
    check(n >= 0, f"-n must be at least 0, got {n}")
    p = manifest["params"]
    ui.out.print(ui.table(f"data {manifest['path']} ({p['objective']}, seq-len {p['seq_len']}, seed {p['seed']})",
                          summary_rows(manifest), columns=("", "train", "validation")))
    tok = load_tokenizer(f"{manifest['path']}/tokenizer", flag="DIR")
    table = open_split(f"{manifest['path']}/{split}")
    shown = min(n, table.num_rows)
    ui.out.print(Text(f"\n{split}: {shown} of {table.num_rows:,} examples. " + _LEGEND.get(p["objective"], "")))
    for i in range(shown):
        row = {k: np.asarray(v) if isinstance(v, list) else v for k, v in table.slice(i, 1).to_pylist()[0].items()}
        ui.out.print(Text(f"\n#{i}  {len(row['input_ids'])} tokens", style="bold"))
        for line in _RENDER[p["objective"]](tok, row, p):
            ui.out.print(line)


_LEGEND = {
    "mlm": "Predicted tokens show their target: red = input [MASK], magenta = random token, green = kept.",
    "nsp": "Segment B underlined; targets: red = [MASK], magenta = random, green = kept.",
    "sop": "Segment B underlined; targets: red = [MASK], magenta = random, green = kept.",
    "t5-span": "Cyan: a sentinel, followed by the span it replaces.",
    "glm": "Cyan: a [MASK] of Part A, followed by its span; then Part B's pieces.",
    "clm": "The block, decoded; special tokens dimmed.",
}


class _Pieces:
    """Builds a rich Text from runs of ids, decoding each run as a whole (multi-byte characters
    split over byte-level tokens stay intact) and keeping the spaces between words."""

    def __init__(self, tok):
        from rich.text import Text

        self.tok, self.text = tok, Text()
        self.special = {int(i) for i in tok.special_ids}

    def add(self, ids, style: str = "", space: bool = True) -> None:
        ids = [int(i) for i in np.atleast_1d(ids)]
        if not ids:
            return
        if len(self.text) and space:
            self.text.append(" ")
        if ids[0] in self.special:
            self.text.append(" ".join(self.tok.tokens(ids)), style=style or SPECIAL)
        else:
            text = self.tok.decode(ids).strip()
            self.text.append(text[2:] if text.startswith("##") else text, style=style)  # glued: no "##"

    def runs(self, ids: np.ndarray, styles: list[str]) -> None:
        """Consecutive ids with one style and no special id are decoded together; a run that
        continues a word (a `##` piece, a byte-level piece without `Ġ`) is glued to the last."""
        ids = np.asarray(ids)
        starts = self.tok.word_start_mask(ids)
        cut = [k for k in range(1, len(ids)) if styles[k] != styles[k - 1]
               or int(ids[k]) in self.special or int(ids[k - 1]) in self.special]
        for s, e in zip([0, *cut], [*cut, len(ids)], strict=True):
            self.add(ids[s:e], styles[s], space=bool(starts[s]) or int(ids[s]) in self.special)


def _masked(tok, row: dict[str, Any], p: dict[str, Any]):
    ids, labels = row["input_ids"], row.get("labels")
    types = row.get("token_type_ids")
    mask_id = tok.id("mask")
    shown, styles = ids.astype(np.int64), []
    for k, i in enumerate(ids):
        base = SEGMENT_B if types is not None and types[k] == 1 else ""
        if labels is None or labels[k] == -100:
            styles.append(base)
            continue
        shown[k] = int(labels[k])
        styles.append(MASKED if i == mask_id else KEPT if i == labels[k] else RANDOM)
    pieces = _Pieces(tok)
    pieces.runs(shown, styles)
    lines = [pieces.text]
    for label in ("next_sentence_label", "sentence_order_label"):
        if label in row:
            meaning = {"next_sentence_label": ("B follows A", "B is random"),
                       "sentence_order_label": ("original order", "swapped")}[label][int(row[label])]
            lines.append(f"{label} = {row[label]} ({meaning})")
    return lines


def _t5(tok, row: dict[str, Any], p: dict[str, Any]):
    from rich.text import Text

    sentinels = {int(s): k for k, s in enumerate(tok.sentinel_ids)}
    labels = row["labels"]
    spans, current = {}, None
    for i in labels:
        if int(i) in sentinels:
            current = sentinels[int(i)]
            spans[current] = []
        elif current is not None and int(i) != tok.id("eos"):
            spans[current].append(int(i))
    shown, styles = [], []
    for i in row["input_ids"]:
        shown.append(int(i))
        styles.append(SENTINEL if int(i) in sentinels else "")
        if int(i) in sentinels:
            span = spans.get(sentinels[int(i)], [])
            shown += span
            styles += ["bold cyan"] * len(span)
    pieces, targets = _Pieces(tok), _Pieces(tok)
    pieces.runs(np.array(shown), styles)
    targets.runs(labels, [SENTINEL if int(i) in sentinels else "" for i in labels])
    return [pieces.text, Text("labels: ", style="bold") + targets.text]


def _glm(tok, row: dict[str, Any], p: dict[str, Any]):
    from rich.text import Text

    ids, labels, pos, sep = row["input_ids"], row["labels"], row["position_ids"], int(row["sep"])
    block = row["block_position_ids"]
    spans: dict[int, list[int]] = {}
    for k in range(sep, len(ids)):
        if block[k] == 1:
            spans[int(pos[k])] = []
        if labels[k] != tok.id("eop"):
            spans[int(pos[k])].append(int(labels[k]))
    shown, styles = [], []
    for k in range(sep):
        shown.append(int(ids[k]))
        styles.append(SENTINEL if int(ids[k]) == tok.id("mask") else "")
        if int(ids[k]) == tok.id("mask"):
            shown += spans.get(k, [])
            styles += ["bold cyan"] * len(spans.get(k, []))
    part_a = _Pieces(tok)
    part_a.runs(np.array(shown), styles)
    lines = [Text(f"Part A ({sep} tokens): ", style="bold") + part_a.text]
    starts = [k for k in range(sep, len(ids)) if block[k] == 1]
    for s, e in zip(starts, starts[1:] + [len(ids)], strict=True):
        piece = _Pieces(tok)
        piece.runs(ids[s:e], [""] * (e - s))
        lines.append(Text(f"  Part B piece at position {pos[s]}, block positions {block[s]}…{block[e - 1]}: ")
                     + piece.text)
    return lines


def _clm(tok, row: dict[str, Any], p: dict[str, Any]):
    pieces = _Pieces(tok)
    pieces.runs(row["input_ids"], [""] * len(row["input_ids"]))
    return [pieces.text]


_RENDER = {"mlm": _masked, "nsp": _masked, "sop": _masked, "t5-span": _t5, "glm": _glm, "clm": _clm}
