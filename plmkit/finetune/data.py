"""Fine-tuning data: labelled rows from CSV, TSV, JSONL or CoNLL files → model inputs.

    examples = read_examples("train.csv", task="classify", fields=("text", None, "label"), flag="--train")
    labels = label_names(examples)                       # ["neg", "pos"]: id i is labels[i]
    enc = TextEncoder(tok, family="bert", task="classify", labels=labels, max_len=128, token_types=True)
    features = enc.encode(examples)
    batch = collate(features, rows=[0, 1, 2], pad_id=tok.id("pad"))

Shape legend: B rows in a batch, T longest row of the batch.

Framing (special tokens by role, as each family was pretrained or as its Hugging Face tokenizer frames it):

    bert, albert  [CLS] A [SEP] B [SEP]      token types 0 … 0 1 … 1 (B and its [SEP] are segment 1)
    roberta       <s> A </s> </s> B </s>
    gpt, llama    A <eos> B <eos>             (the classifier reads the last real token)
    t5            A </s> B </s>               (the target is the label's text + </s>)
    glm           [CLS] A [SEP] B <eos>       (the classifier reads [CLS])

label-tokens labels each word's first sub-token with the word's tag; the other sub-tokens and
the special tokens get -100 (ignored by the loss), as `tokenize_and_align_labels` does in the
Hugging Face token-classification examples.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from plmkit.errors import PlmkitError

IGNORE = -100

EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
              ".conll": "conll", ".iob": "conll", ".bio": "conll", ".txt": "conll"}
FIELD_FLAGS = ("--text-field", "--text-pair-field", "--label-field")


@dataclass
class Example:
    """One row: a text (classify) or its words (label-tokens), an optional second text, the label(s)."""

    text: str | list[str]
    pair: str | None = None
    label: str | list[str] | None = None
    line: int = 0


# ---- reading files ------------------------------------------------------------------------------

def file_format(path: Path, fmt: str, task: str, flag: str) -> str:
    """The format to read `path` in: `fmt` unless "auto", else by extension (.tsv with word labels: CoNLL)."""
    if fmt == "auto":
        ext = path.suffix.lower()
        if ext not in EXTENSIONS:
            raise PlmkitError(f"{flag} {path}: cannot tell its format from the extension {ext or '(none)'!r}",
                              hint="pass --format csv, tsv, jsonl or conll")
        fmt = "conll" if task == "label-tokens" and ext == ".tsv" else EXTENSIONS[ext]
    if fmt == "conll" and task == "classify":
        raise PlmkitError(f"{flag} {path} is read as CoNLL columns (one word and its tag a line), which label "
                          "words, not texts", hint="--task classify reads csv, tsv or jsonl (or pass --format)")
    return fmt


def _lines(path: Path, flag: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, a BOM dropped; a one-line error for anything else."""
    if not path.is_file():
        raise PlmkitError(f"{flag} {path} does not exist", hint="pass a CSV, TSV, JSONL or CoNLL file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            yield from enumerate(f, start=1)
    except UnicodeDecodeError as e:
        raise PlmkitError(f"{flag} {path} is not UTF-8 text ({e.reason} at byte {e.start})",
                          hint="convert it to UTF-8") from None


def _table_records(path: Path, delimiter: str, flag: str) -> Iterator[tuple[int, dict]]:
    """Rows of a CSV/TSV file with a header line, as {column: value}."""
    reader = csv.DictReader((line for _, line in _lines(path, flag)), delimiter=delimiter)
    try:
        for row in reader:
            yield reader.line_num, {k: v for k, v in row.items() if k is not None}
    except csv.Error as e:
        raise PlmkitError(f"{flag} {path} line {reader.line_num}: {e}") from None


def _jsonl_records(path: Path, flag: str) -> Iterator[tuple[int, dict]]:
    for n, line in _lines(path, flag):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise PlmkitError(f"{flag} {path} line {n} is not JSON ({e.msg})",
                              hint="write one JSON object a line (JSON Lines)") from None
        if not isinstance(record, dict):
            raise PlmkitError(f"{flag} {path} line {n} is a JSON {type(record).__name__}, not an object",
                              hint='write one object a line, e.g. {"text": "…", "label": "…"}')
        yield n, record


def _conll_records(path: Path, fields: tuple[str, str], flag: str) -> Iterator[tuple[int, dict]]:
    """Sentences of a CoNLL-style file: `word<TAB>…<TAB>tag` lines, a blank line between sentences.

    Columns are split on tabs (on whitespace when a line has none); the first is the word and the
    last the tag; -DOCSTART- lines are skipped. Each sentence is {words field: [...], tags field: [...]}.
    """
    words, tags, start = [], [], 0
    for n, line in _lines(path, flag):
        line = line.rstrip("\r\n")
        if not line.strip():
            if words:
                yield start, {fields[0]: words, fields[1]: tags}
            words, tags = [], []
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        if columns[0] == "-DOCSTART-":
            continue
        if len(columns) < 2:
            raise PlmkitError(f"{flag} {path} line {n} has one column: {line.strip()[:40]!r}",
                              hint="CoNLL lines are a word and its tag separated by a tab")
        start = start if words else n
        words.append(columns[0])
        tags.append(columns[-1].strip())
    if words:
        yield start, {fields[0]: words, fields[1]: tags}


def records(path: Path, fmt: str, fields: tuple[str, str], flag: str) -> Iterator[tuple[int, dict]]:
    if fmt == "jsonl":
        return _jsonl_records(path, flag)
    if fmt == "conll":
        return _conll_records(path, fields, flag)
    return _table_records(path, "\t" if fmt == "tsv" else ",", flag)


# ---- rows → examples ----------------------------------------------------------------------------

def read_examples(path: str | Path, *, task: str, fields: tuple[str, str | None, str], flag: str,
                  fmt: str = "auto", labelled: bool = True) -> list[Example]:
    """Every row of `path` as an Example; missing fields, empty labels and ragged rows are errors.

    `fields` = (text, pair or None, label) field names; `labelled=False` reads texts only.
    """
    path = Path(path)
    fmt = file_format(path, fmt, task, flag)
    text_f, pair_f, label_f = fields
    examples = []
    for n, record in records(path, fmt, (text_f, label_f), flag):
        where = f"{flag} {path} line {n}"
        text = _field(record, text_f, where, 0)
        pair = _text(_field(record, pair_f, where, 1), where, pair_f) if pair_f else None
        label = _field(record, label_f, where, 2) if labelled else None
        if task == "classify":
            examples.append(Example(_text(text, where, text_f), pair, _label(label, where) if labelled else None, n))
        else:
            examples.append(_word_example(text, label, where, n, labelled))
    if not examples:
        raise PlmkitError(f"{flag} {path} has no rows", hint="pass a file with a header and at least one row"
                          if fmt in ("csv", "tsv") else "pass a file with at least one row")
    return examples


def _field(record: dict, name: str, where: str, which: int):
    if name not in record:
        have = ", ".join(map(str, record)) or "none"
        raise PlmkitError(f"{where} has no field {name!r} (its fields: {have})",
                          hint=f"name the field with {FIELD_FLAGS[which]}")
    return record[name]


def _text(value, where: str, name: str) -> str:
    if value is None or isinstance(value, list | dict):
        raise PlmkitError(f"{where}: field {name!r} is not a text ({type(value).__name__})")
    return str(value)


def _label(value, where: str) -> str:
    """A label as text: JSON 1 and CSV "1" are the same label; empty is an error."""
    if isinstance(value, list | dict) or value is None or str(value).strip() == "":
        raise PlmkitError(f"{where}: the label is {'empty' if value in (None, '') else repr(value)}",
                          hint="every row needs one label (a string or an integer)")
    return str(value).strip()


def _word_example(words, tags, where: str, n: int, labelled: bool) -> Example:
    """label-tokens: words as a list (or a text split on whitespace) and one tag per word."""
    if isinstance(words, str):
        words = words.split()
    if not isinstance(words, list):
        raise PlmkitError(f"{where}: the words are a {type(words).__name__}, not a list or a text")
    words = [str(w) for w in words]
    if not labelled:
        return Example(words, None, None, n)
    if isinstance(tags, str):
        tags = tags.split()
    if not isinstance(tags, list):
        raise PlmkitError(f"{where}: the tags are a {type(tags).__name__}, not a list")
    if len(tags) != len(words):
        raise PlmkitError(f"{where} has {len(words)} words but {len(tags)} tags",
                          hint="give exactly one tag per word")
    return Example(words, None, [_label(t, where) for t in tags], n)


def label_names(examples: Sequence[Example]) -> list[str]:
    """The label set, in id order: numeric labels by value, else "O" first and the rest sorted.

    >>> label_names([Example("a", label="pos"), Example("b", label="neg")])
    ['neg', 'pos']
    >>> label_names([Example(["x", "y"], label=["B-X", "O"]), Example(["9"], label=["10"])])
    ['O', '10', 'B-X']
    """
    seen = set()
    for e in examples:
        seen.update(e.label if isinstance(e.label, list) else [e.label])
    if all(re.fullmatch(r"-?\d+", s) for s in seen):
        return sorted(seen, key=int)
    return sorted(seen, key=lambda s: (s != "O", s))


def check_known(examples: Sequence[Example], labels: Sequence[str], path, flag: str) -> None:
    """Every label of `examples` must be one the model learned (from --train)."""
    known = set(labels)
    for e in examples:
        for label in e.label if isinstance(e.label, list) else [e.label]:
            if label not in known:
                shown = ", ".join(labels[:10]) + (" …" if len(labels) > 10 else "")
                raise PlmkitError(f"{flag} {path} line {e.line}: label {label!r} does not occur in the training "
                                  f"data (labels: {shown})", hint="add examples of it to --train, or drop the row")


# ---- examples → ids -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Framing:
    """Special tokens (by role) before the first text, between the two texts, and at the end."""

    start: tuple[str, ...]
    middle: tuple[str, ...]
    end: tuple[str, ...]


FRAMING = {
    "bert": Framing(("cls",), ("sep",), ("sep",)),
    "albert": Framing(("cls",), ("sep",), ("sep",)),
    "roberta": Framing(("cls",), ("sep", "sep"), ("sep",)),
    "gpt": Framing((), ("eos",), ("eos",)),
    "llama": Framing((), ("eos",), ("eos",)),
    "t5": Framing((), ("eos",), ("eos",)),
    "glm": Framing(("cls",), ("sep",), ("eos",)),
}


@dataclass
class Features:
    """Encoded rows. `labels`: classify, one id a row; label-tokens, an array aligned with the ids.

    label-tokens also keeps where each word's first sub-token is (`word_positions`, words cut by
    `max_len` have none) and how many words each row has (`num_words`).
    """

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    labels: list | None
    word_positions: list[np.ndarray] | None = None
    num_words: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def pair_lengths(la: int, lb: int, budget: int) -> tuple[int, int]:
    """Tokens kept of two texts so that they fit `budget`: cut the longer first (longest-first).

    >>> pair_lengths(3, 10, 8), pair_lengths(10, 10, 8), pair_lengths(2, 3, 8)
    ((3, 5), (4, 4), (2, 3))
    """
    if la + lb <= budget:
        return la, lb
    if la <= budget // 2:
        return la, budget - la
    if lb <= budget // 2:
        return budget - lb, lb
    return (budget + 1) // 2, budget // 2


class TextEncoder:
    """Examples → `Features` for one tokenizer, family and task (see the module docstring)."""

    def __init__(self, tok, family: str, task: str, labels: Sequence[str], max_len: int, token_types: bool):
        self.tok, self.task, self.max_len, self.token_types = tok, task, max_len, token_types
        self.label_ids = {name: i for i, name in enumerate(labels)}
        framing = FRAMING[family]
        self.start, self.middle, self.end = ([tok.id(r) for r in part] for part in
                                             (framing.start, framing.middle, framing.end))

    def encode(self, examples: Sequence[Example]) -> Features:
        return self._classify(examples) if self.task == "classify" else self._words(examples)

    def _classify(self, examples: Sequence[Example]) -> Features:
        pairs = examples[0].pair is not None
        a_ids = self.tok.encode_batch([e.text for e in examples])
        b_ids = self.tok.encode_batch([e.pair for e in examples]) if pairs else [None] * len(examples)
        specials = len(self.start) + len(self.end) + (len(self.middle) if pairs else 0)
        budget = self.max_len - specials
        ids, types = [], []
        for a, b in zip(a_ids, b_ids, strict=True):
            if b is None:
                first, second = [*self.start, *a[:budget]], []
            else:
                la, lb = pair_lengths(len(a), len(b), budget)
                first, second = [*self.start, *a[:la], *self.middle], list(b[:lb])
            second += self.end
            ids.append(np.array(first + second, dtype=np.int64))
            types.append(np.array([0] * len(first) + [1] * len(second) if b is not None else
                                  [0] * len(first + second), dtype=np.int64))
        labels = [self.label_ids[e.label] for e in examples] if examples[0].label is not None else None
        return Features(ids, types if self.token_types else None, labels)

    def word_pieces(self, words: list[str]) -> list[np.ndarray]:
        """Sub-tokens of each word as it reads inside its sentence: byte-level BPE marks the space before
        a word in the token itself, so every word but the first is encoded with a leading space. A
        word that encodes to nothing becomes the unknown token, so every word has a first sub-token."""
        texts = [w if i == 0 or self.tok.kind != "bpe" else " " + w for i, w in enumerate(words)]
        unk = np.array([self.tok.id("unk")], dtype=np.int32)
        return [p if len(p) else unk for p in self.tok.encode_batch(texts)] if words else []

    def _words(self, examples: Sequence[Example]) -> Features:
        budget = self.max_len - len(self.start) - len(self.end)
        ids, positions, labels = [], [], []
        for e in examples:
            pieces = self.word_pieces(e.text)
            lengths = np.array([len(p) for p in pieces], dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(pieces) else lengths
            kept = starts[starts < budget]                         # words whose first sub-token fits
            flat = np.concatenate(pieces)[:budget] if pieces else np.zeros(0, np.int64)
            ids.append(np.concatenate([self.start, flat, self.end]).astype(np.int64))
            positions.append(kept + len(self.start))
            if e.label is not None:
                row = np.full(len(ids[-1]), IGNORE, dtype=np.int64)
                row[positions[-1]] = [self.label_ids[t] for t in e.label[:len(kept)]]
                labels.append(row)
        types = [np.zeros(len(i), dtype=np.int64) for i in ids] if self.token_types else None
        return Features(ids, types, labels if examples[0].label is not None else None, positions,
                        [len(e.text) for e in examples])


def collate(features: Features, rows: Sequence[int], pad_id: int) -> dict[str, torch.Tensor]:
    """A right-padded batch of `rows`: input_ids, attention_mask (, token_type_ids) (, labels)."""
    B, T = len(rows), max(len(features.input_ids[i]) for i in rows)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    for b, i in enumerate(rows):
        n = len(features.input_ids[i])
        input_ids[b, :n] = torch.from_numpy(features.input_ids[i])
        attention_mask[b, :n] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if features.token_type_ids is not None:
        batch["token_type_ids"] = _padded([features.token_type_ids[i] for i in rows], T, 0)
    if features.labels is not None:
        if features.word_positions is None:
            batch["labels"] = torch.tensor([features.labels[i] for i in rows], dtype=torch.long)
        else:
            batch["labels"] = _padded([features.labels[i] for i in rows], T, IGNORE)
    return batch


def _padded(rows: list[np.ndarray], T: int, value: int) -> torch.Tensor:
    out = torch.full((len(rows), T), value, dtype=torch.long)
    for b, row in enumerate(rows):
        out[b, :len(row)] = torch.from_numpy(row)
    return out
