"""Exact fast encoding: each distinct piece of text goes through the library once, then is reused.

Why. On this 2-core machine `tokenizers.Tokenizer.encode_batch` turns 1–2.5 MB of text into ids
per second. The time goes to running the normaliser and the pre-tokeniser over every byte (the
BERT normaliser alone ~5.6 MB/s, SentencePiece's charsmap and regexes ~8 MB/s, the GPT-2 regex
~2 MB/s), to the model (greedy WordPiece, BPE merges, Unigram's lattice over the whole text),
and to one Python `Encoding` per text. Natural text repeats itself: 5 MB of English prose has
1.1M pre-tokenised words but only 31k distinct ones.

How. A text is cut at *hard boundaries*: places the library's pipeline provably never looks
across, so that the ids of the text are the ids of its pieces ("units") laid end to end. Each
distinct unit is encoded by the library itself (its normaliser, pre-tokeniser and model) and kept
in a table; a text then costs a `str.split`/`re.findall` in C, one dict lookup per unit and a
numpy gather. The cut needs no knowledge of what the library does *inside* a unit, only that
nothing crosses the cut:

    wordpiece  BertNormalizer + BertPreTokenizer + WordPiece. Cut at whitespace (dropped: it
               makes no token; not at the controls clean_text removes, which join their
               neighbours) and around each character the pipeline isolates as a word:
               punctuation and, with handle_chinese_chars, CJK ideographs, as the library itself
               says at construction. The normaliser works per character (NFD reorders only
               combining marks; every boundary is a starter), the pre-tokeniser splits on both
               sides of such a character, WordPiece sees one word at a time.
    bpe        ByteLevel with the GPT-2 regex + BPE. Units: ` ?[^\\s]+`, and whitespace runs cut
               as GPT-2 cuts them (`\\s+(?!\\S)`, then one `\\s`), with onig's \\s (asked of the
               library). No alternative of the regex runs across a unit's edge (only the two
               whitespace ones hold whitespace, and they stop where the units do), and a match
               depends only on what follows its start. In plain text every " " starts a unit:
               `str.split(" ")`, the pieces standing for " " + piece. With a normaliser
               (lower-casing, accent stripping) only ASCII text is cut: there those normalisers
               neither remove a character nor make whitespace.
    unigram,   normaliser ending in Prepend(" ") + Replace(" ", "▁"), no pre-tokeniser, the model
    sp-bpe     over the whole text. Model side: no piece has "▁" after another character
               (checked), so no piece, BPE merge or lattice node spans a "▁" that follows a
               character; the ids are those of the "▁word" segments in turn (with
               whitespace-only pieces, of the "▁▁…▁word" segments), and a character no piece
               contains ("\\n": SentencePiece trains on lines) is a segment of its own. Text side:
               with SentencePiece's remove_extra_whitespaces (strip + collapse spaces) a text is
               cut at spaces, and at the control characters the normaliser makes spaces, whose
               neighbours cannot form a grapheme across them (the charsmap maps graphemes):
               printable ASCII, Latin and general punctuation, checked against the
               pre-normalisers; without it (sp-bpe's identity charsmap) a unit is a run of spaces
               and the word after it.
               Unigram adds float64 scores along paths whose offset depends on where the text
               starts, so two segmentations of equal real score can round apart in context. On
               every unseen unit its lattice is re-run here for the smallest gap between the
               best and second-best path into any position; a text uses the table only if every
               unit's gap exceeds twice the rounding error a lattice of the text's length can
               accumulate. Otherwise the library encodes the text.

Unseen units are cheap too: a unit is first cut smaller where that is also exact ("world." →
"world" "."), and the unseen small ones are encoded a few hundred to a library text, joined by
a separator that is itself a hard boundary, their ids handed back by the tokens' offsets.

Everything else goes to the library untouched, so `encode_batch` always equals
`[tok.encode(t, add_special_tokens=False).ids for t in texts]`: a text containing the literal of
an added token (matched before normalisation), a pipeline not listed above (`supports` says
False; `FastEncoder(...).reason` says why), truncation or padding set in the tokenizer.json.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import numpy as np
from tokenizers import Regex, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

MAX_KEY_CHARS = 64  # longer units are encoded but not kept: they rarely come back
JOIN_CHARS = 2000  # characters per library text when unseen units are encoded together
CACHE_UNITS = 1 << 20  # the tables are emptied past this many units in all …
CACHE_IDS = 1 << 24  # … or ids (memory stays under ~250 MB; 800k units of English take ~150 MB)
ASCII_PUNCT = "".join(chr(c) for c in [*range(33, 48), *range(58, 65), *range(91, 97), *range(123, 127)])
CJK_BMP = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)]  # BERT's `is_chinese_char`, BMP part
# Characters that may stand beside a cut space in SentencePiece text: no Extend/SpacingMark/ZWJ
# (which would join a grapheme to the space) nor Prepend; checked against the pre-normalisers.
SP_NEIGHBOURS = [(0x21, 0x7E), (0xA1, 0xAC), (0xAE, 0x2FF), (0x2010, 0x2027), (0x2030, 0x205E)]
PER_CHAR = {"NFD", "NFKD", "NFC", "NFKC", "Lowercase", "StripAccents"}  # normalisers that work per character
CANONICAL = {"NFD", "NFC", "Lowercase"}  # … that also never remove a character nor make a space
BYTE_LEVEL_NORMALIZERS = {"NFD", "NFC", "StripAccents", "Lowercase"}
ASCII_CONTROL_SPACES = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"  # what str.split() cuts at, besides " "


@dataclass
class _Plan:
    """How one pipeline is cut into units, and how the library encodes a unit.

    `split(t)` returns (units, k): the first k units are literal text, the others stand for
    `prefix + unit` (bpe: " word" is stored as "word" after `str.split(" ")`); None sends the
    text to the library. `refine`, when set, cuts a unit the table has not seen into smaller
    hard-boundary units ("world." → "world", "."), which repeat more: the library then encodes
    only the unseen small ones.
    """

    kind: str
    split: Callable[[str], tuple[list[str], int] | None]
    encoder: HFTokenizer  # the library, configured to encode one unit
    prefix: str = ""
    refine: Callable[[str], list[str]] | None = None
    lattice: _Lattice | None = None  # Unigram's rounding check
    join: _Join | None = None  # how unseen units share one library text (else one text each)
    join_growth: int = 1  # at most how many times longer than the text its normalised form is


@dataclass
class _Join:
    """Unseen units are encoded many to a library text: `sep.join(units)`, ids handed back by offsets.

    Only units for which `joinable` holds, and only where `sep` is a hard boundary between any
    two of them, so each unit's ids come out as if encoded alone. A token belongs to the unit its
    start offset falls in; with `sep_to_next`, a separator belongs to the unit after it
    (SentencePiece's "▁" of the separator space), otherwise tokens on a separator are dropped.
    """

    sep: str
    joinable: Callable[[str], bool]
    sep_to_next: bool = False


class FastEncoder:
    """`encode_batch(texts)` → int32 ids per text, equal to the library's, without special tokens.

    >>> enc = FastEncoder(open("TOK/tokenizer.json").read())   # doctest: +SKIP
    >>> enc.encode_batch(["Hello world", ""])                  # doctest: +SKIP
    [array([7592, 2088], dtype=int32), array([], dtype=int32)]

    `plan` names the fast path in use; None means every text goes to the library (`reason`
    says why). Not thread-safe (the unit tables are shared): one encoder per worker.
    """

    def __init__(self, tokenizer: str | HFTokenizer, *, cache_units: int = CACHE_UNITS,
                 library: HFTokenizer | None = None):
        """`library`: the library's tokenizer built from this same json, if the caller has one
        (saves parsing it again); it encodes the texts the fast path cannot."""
        text = tokenizer if isinstance(tokenizer, str) else tokenizer.to_str()
        cfg = json.loads(text)
        self._tok = library if library is not None else HFTokenizer.from_str(text)
        self._cache_units = cache_units
        try:
            plan = _make_plan(cfg)
        except Exception as e:  # a pipeline nobody foresaw: the library is always right
            plan = f"could not analyse the pipeline ({type(e).__name__}: {e})"
        self._plan, self.reason = (plan, "") if isinstance(plan, _Plan) else (None, plan)
        self.plan = self._plan.kind if self._plan else None
        self.texts = self.library_texts = 0  # how many texts were encoded, and how many by the library
        self._added = _added_token_search(cfg)
        self._reset()

    @classmethod
    def supports(cls, tokenizer: str | HFTokenizer) -> bool:
        """Whether the fast path is proven for this tokenizer's pipeline (else the library encodes)."""
        return cls(tokenizer).plan is not None

    def encode(self, text: str) -> np.ndarray:
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        texts = list(texts)
        if self._plan is None or not texts:
            return self._library(texts)
        self._bound_tables()
        slow, literal, implied, n_lit, n_imp = self._cut(texts)
        out, unsafe = self._assemble(literal, implied, n_lit, n_imp)
        slow = sorted(set(slow) | set(unsafe))
        self.texts += len(texts)
        self.library_texts += len(slow)
        for i, ids in zip(slow, self._library([texts[i] for i in slow]), strict=True):
            out[i] = ids
        return out

    def warm(self, texts: list[str]) -> None:
        """Encode each distinct unit of `texts` once, ids discarded: cheaper than encoding the texts
        (no gather, each unit looked up once), and the tables then hold their units. (A process
        forking workers warms its tables first, so that each worker does not learn them again.)"""
        if self._plan is None or not texts:
            return
        self._bound_tables()
        _, literal, implied, _, _ = self._cut(list(texts))
        self._literal.rows(list(dict.fromkeys(literal)))
        self._implied.rows(list(dict.fromkeys(implied)))

    def _bound_tables(self) -> None:
        """Empty the tables once they hold more than `cache_units` units or CACHE_IDS ids."""
        if sum(t.size for t in self._tables) > self._cache_units or sum(t.used for t in self._tables) > CACHE_IDS:
            self._reset()

    def _reset(self) -> None:
        plan = self._plan
        if plan is None:
            self._tables = []
            return
        # the table that asks the library measures Unigram lattices; the tables above it add up
        bottom = self._literal = _Table(_library_encode(plan.encoder, plan.join), plan.lattice)
        self._tables = [bottom]
        if plan.refine is not None:
            self._literal = _Table(_refined_encode(plan.refine, bottom))
            self._tables.append(self._literal)
        # an implied unit is the literal unit `prefix + unit`: ask the literal table, not the library
        self._implied = _Table(_refined_encode(_itself, self._literal), prefix=plan.prefix)
        self._tables.append(self._implied)

    def _cut(self, texts: list[str]) -> tuple[list[int], list[str], list[str], list[int], list[int]]:
        """Every text's literal and implied units (flattened, each text's literal ones first);
        `slow`: the texts the library must encode itself."""
        split, added, lattice = self._plan.split, self._added, self._plan.lattice is not None
        refine = self._plan.refine is not None
        slow: list[int] = []
        literal: list[str] = []
        implied: list[str] = []
        n_lit: list[int] = []
        n_imp: list[int] = []
        for i, t in enumerate(texts):
            cut = None if added is not None and added(t) else split(t)
            if cut is None:
                slow.append(i)
                n_lit.append(0)
                n_imp.append(0)
                continue
            units, k = cut
            if units and (lattice or not refine or not t.isascii()) and max(map(len, units)) > MAX_KEY_CHARS:
                # a long unit that cannot be cut smaller will not be kept (Chinese has no spaces):
                # the library might as well encode the whole text (and Unigram's lattice need not
                # be re-run here)
                slow.append(i)
                n_lit.append(0)
                n_imp.append(0)
                continue
            if k == len(units):
                literal.extend(units)
            elif k == 0:
                implied.extend(units)
            else:
                literal.extend(units[:k])
                implied.extend(units[k:])
            n_lit.append(k)
            n_imp.append(len(units) - k)
        return slow, literal, implied, n_lit, n_imp

    def _assemble(self, literal: list[str], implied: list[str], n_lit: list[int],
                  n_imp: list[int]) -> tuple[list[np.ndarray], list[int]]:
        """Gather every text's ids from the tables: one numpy pass over all units of the batch.

        Example: rows [4, 9, 4] with ids 4 → [7, 8], 9 → [5] and 2 + 1 units per text give texts
        [7, 8, 5] and [7, 8].
        """
        lit, imp = np.asarray(n_lit, dtype=np.int64), np.asarray(n_imp, dtype=np.int64)
        counts = lit + imp
        first = np.cumsum(counts) - counts  # where each text's units start
        in_imp = np.zeros(int(counts.sum()), dtype=bool)
        where_imp = np.repeat(first + lit - (np.cumsum(imp) - imp), imp) + np.arange(len(implied))
        in_imp[where_imp] = True
        rows = np.empty(len(in_imp), dtype=np.int64)
        rows[~in_imp] = self._literal.rows(literal)
        rows[in_imp] = self._implied.rows(implied)
        ids, lens = _gather(self._literal, self._implied, rows, in_imp)
        ends = np.concatenate([[0], np.cumsum(lens)])[np.cumsum(counts)].tolist()
        out = [ids[a:b] for a, b in zip([0, *ends], ends, strict=False)]
        unsafe: list[int] = []
        if self._plan.lattice is not None:
            gaps = _pick(self._literal.gaps, self._implied.gaps, rows, in_imp)
            nchars = _pick(self._literal.nchars, self._implied.nchars, rows, in_imp)
            unsafe = self._plan.lattice.unsafe(gaps, nchars, counts)
        return out, unsafe

    def _library(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        encodings = self._tok.encode_batch_fast(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in encodings]


class _Table:
    """Distinct units and their ids, in flat arrays (row → ids `flat[starts[row]:starts[row]+lens[row]]`).

    `encode(inputs)` gives the ids per input (as lengths and one flat array), and for Unigram
    their gaps and normalised lengths (or None: `lattice` measures them); a unit's input is
    `prefix + unit`. Units longer than MAX_KEY_CHARS are encoded but forgotten at once (their
    ids stay in the arrays until the tables are reset).
    """

    def __init__(self, encode: Callable, lattice: _Lattice | None = None, prefix: str = ""):
        self.encode, self.lattice, self.prefix = encode, lattice, prefix
        # whether the rows carry Unigram gaps: measured here, or added up from a table below
        self.measured = lattice is not None or getattr(encode, "measured", False)
        self.index = _Index()
        self.starts = np.zeros(1024, dtype=np.int64)
        self.lens = np.zeros(1024, dtype=np.int64)
        self.gaps = np.zeros(1024, dtype=np.float64)  # Unigram: score gap (see _Lattice)
        self.nchars = np.zeros(1024, dtype=np.int64)  # Unigram: normalised length
        self.flat = np.zeros(1 << 16, dtype=np.int32)
        self.used = 0

    @property
    def size(self) -> int:
        return self.index.next  # rows handed out, forgotten long units included

    def rows(self, keys: list[str]) -> np.ndarray:
        """Rows of `keys`; unseen ones get the next free rows (via `_Index.__missing__`) and are encoded."""
        rows = np.fromiter(map(self.index.__getitem__, keys), dtype=np.int64, count=len(keys))
        if self.index.pending:
            self.add(self.index.pending)
            for k in self.index.pending:
                if len(k) > MAX_KEY_CHARS:
                    del self.index[k]
            self.index.pending = []
        return rows

    def add(self, keys: list[str]) -> None:
        inputs = [self.prefix + k for k in keys] if self.prefix else keys
        lens, flat, gaps, nchars = self.encode(inputs)
        n, total = len(keys), len(flat)
        b = self.index.next
        a = b - n
        self._grow(b, total)
        self.lens[a:b] = lens
        self.starts[a:b] = self.used + np.cumsum(lens) - lens
        self.flat[self.used:self.used + total] = flat
        if self.lattice is not None:
            gaps, nchars = self.lattice.check(inputs)
        if gaps is not None:
            self.gaps[a:b], self.nchars[a:b] = gaps, nchars
        self.used += total

    def _grow(self, rows: int, ids: int) -> None:
        if rows > len(self.lens):
            cap = max(2 * len(self.lens), rows)
            for name in ("starts", "lens", "gaps", "nchars"):
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros(cap - len(old), dtype=old.dtype)]))
        if self.used + ids > len(self.flat):
            cap = max(2 * len(self.flat), self.used + ids)
            self.flat = np.concatenate([self.flat, np.zeros(cap - len(self.flat), dtype=np.int32)])


class _Index(dict):
    """unit → row; an unseen unit gets the next row at once and waits in `pending` to be encoded."""

    def __init__(self):
        super().__init__()
        self.next = 0
        self.pending: list[str] = []

    def __missing__(self, key: str) -> int:
        row = self[key] = self.next
        self.next += 1
        self.pending.append(key)
        return row


def _gather(a: _Table, b: _Table, rows: np.ndarray, in_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ids of `rows` laid end to end (row i of table b where in_b[i], else of a), and their lengths."""
    lens = _pick(a.lens, b.lens, rows, in_b)
    ends = np.cumsum(lens)
    out = np.empty(int(ends[-1]) if len(ends) else 0, dtype=np.int32)
    for table, sel in ((a, ~in_b), (b, in_b)):
        if not sel.any():
            continue
        n, first = lens[sel], (ends - lens)[sel]
        within = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        out[np.repeat(first, n) + within] = table.flat[np.repeat(table.starts[rows[sel]], n) + within]
    return out, lens


def _pick(col_a: np.ndarray, col_b: np.ndarray, rows: np.ndarray, in_b: np.ndarray) -> np.ndarray:
    """One column of two tables, by row: col_b[rows[i]] where in_b[i], else col_a[rows[i]]."""
    out = np.empty(len(rows), dtype=col_a.dtype)
    out[~in_b] = col_a[rows[~in_b]]
    out[in_b] = col_b[rows[in_b]]
    return out


def _library_encode(encoder: HFTokenizer, join: _Join | None) -> Callable:
    """units → (number of ids of each, all ids end to end, None, None), from the library."""
    def encode(inputs: list[str]) -> tuple[np.ndarray, np.ndarray, None, None]:
        together = np.fromiter(map(join.joinable, inputs), dtype=bool, count=len(inputs)) if join \
            else np.zeros(len(inputs), dtype=bool)
        parts = []
        alone = np.flatnonzero(~together)
        if len(alone):
            found = encoder.encode_batch_fast([inputs[i] for i in alone.tolist()], add_special_tokens=False)
            ids = [e.ids for e in found]
            lens = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            parts.append((alone, lens, np.fromiter(chain.from_iterable(ids), dtype=np.int32, count=int(lens.sum()))))
        if together.any():
            idx = np.flatnonzero(together)
            parts.append((idx, *_encode_joined(encoder, join, [inputs[i] for i in idx.tolist()])))
        if len(parts) == 1:
            return parts[0][1], parts[0][2], None, None
        order = np.argsort(np.concatenate([p[0] for p in parts]), kind="stable")
        lens = np.concatenate([p[1] for p in parts])
        flat = np.concatenate([p[2] for p in parts])
        return lens[order], _segments(flat, (np.cumsum(lens) - lens)[order], lens[order]), None, None

    return encode


def _segments(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """flat[starts[0]:starts[0]+lens[0]], flat[starts[1]:…], … laid end to end, without a Python loop."""
    ends = np.cumsum(lens)
    within = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lens, lens)
    return flat[np.repeat(starts, lens) + within]



def _encode_joined(encoder: HFTokenizer, join: _Join, units: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(number of ids of each unit, all ids end to end), from library texts holding many units each.

    Units "ab", "c" joined by " " make the text "ab c" with unit starts [0, 3]: a token starting at
    offset 3 belongs to "c" (with `sep_to_next`, one starting at 2 too), see `_Join`.
    """
    texts, starts, sizes = [], [], []
    i = 0
    while i < len(units):
        group, pos, size = [], [], 0
        while i < len(units) and (not group or size + len(units[i]) <= JOIN_CHARS):
            pos.append(size)
            group.append(units[i])
            size += len(units[i]) + len(join.sep)
            i += 1
        texts.append(join.sep.join(group))
        starts.append(np.asarray(pos, dtype=np.int64))
        sizes.append(np.fromiter(map(len, group), dtype=np.int64, count=len(group)))
    lens, flat = [], []
    for e, pos, size in zip(encoder.encode_batch(texts, add_special_tokens=False), starts, sizes, strict=True):
        ids = np.asarray(e.ids, dtype=np.int32)
        first = np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
        owner = np.searchsorted(pos - len(join.sep) if join.sep_to_next else pos, first, side="right") - 1
        if join.sep and not join.sep_to_next:  # a token on a separator is the separator's own
            keep = first < pos[owner] + size[owner]
            ids, owner = ids[keep], owner[keep]
        lens.append(np.bincount(owner, minlength=len(pos)))
        flat.append(ids)
    return np.concatenate(lens).astype(np.int64), np.concatenate(flat)


def _refined_encode(refine: Callable[[str], list[str]], fine: _Table) -> Callable:
    """Encode units by cutting them into smaller ones, looked up in `fine` (which asks the library).

    A unit's Unigram gap is its parts' smallest, its normalised length their sum.
    """
    def encode(inputs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        parts = [refine(x) for x in inputs]
        counts = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
        rows = fine.rows(list(chain.from_iterable(parts)))
        ids, lens = _gather(fine, fine, rows, np.zeros(len(rows), dtype=bool))
        ends = np.cumsum(counts)
        starts = ends - counts
        per_part = np.concatenate([[0], np.cumsum(lens)])
        gaps = nchars = None
        if fine.measured:
            chars = np.concatenate([[0], np.cumsum(fine.nchars[rows])])
            nchars = chars[ends] - chars[starts]
            gaps = np.full(len(parts), np.inf)
            some = counts > 0
            if some.any():
                gaps[some] = np.minimum.reduceat(fine.gaps[rows], starts[some])
        return per_part[ends] - per_part[starts], ids, gaps, nchars

    encode.measured = fine.measured
    return encode


# -- plans ---------------------------------------------------------------------------------------


def _make_plan(cfg: dict) -> _Plan | str:
    """The fast path for this tokenizer.json, or the reason there is none."""
    if cfg.get("truncation") or cfg.get("padding"):
        return "truncation or padding is configured"
    if cfg.get("normalizer") and any(t.get("normalized") for t in cfg.get("added_tokens") or []):
        return "an added token is matched after normalisation"
    model, pre = cfg["model"], cfg.get("pre_tokenizer")
    if model.get("dropout"):
        return "BPE dropout makes encoding random"
    if model["type"] == "WordPiece" and pre == {"type": "BertPreTokenizer"}:
        return _wordpiece_plan(cfg)
    if model["type"] == "BPE" and _byte_level(pre) is not None:
        return _byte_level_plan(cfg)
    if model["type"] in ("Unigram", "BPE") and pre is None:
        return _sentencepiece_plan(cfg)
    return f"no fast path for a {model['type']} model with pre-tokenizer {json.dumps(pre)}"


def _unit_encoder(cfg: dict, **changes) -> HFTokenizer:
    """The same pipeline without added tokens, post-processing, truncation or padding (plus `changes`)."""
    c = dict(cfg, added_tokens=[], truncation=None, padding=None, post_processor=None, **changes)
    return HFTokenizer.from_str(json.dumps(c))


def _wordpiece_plan(cfg: dict) -> _Plan | str:
    norm = cfg.get("normalizer")
    if norm is not None and norm["type"] != "BertNormalizer":
        return f"WordPiece with a {norm['type']} normaliser"
    ascii_b, full_b, ideographs_b = _wordpiece_classes(json.dumps(norm, sort_keys=True))
    ascii_re = re.compile(f"[^ \\t\\n\\r{ascii_b}]+|[{ascii_b}]").findall
    full_re = re.compile(f"[^ \\t\\n\\r{full_b}]+|[{full_b}]").findall
    # str.split() cuts at Python's whitespace, which the BERT pipeline also cuts at, except for
    # these (control characters to clean_text, which removes them and so joins their neighbours)
    joined = re.compile("[\\x0b\\x0c\\x1c-\\x1f\\x85]").search
    cjk = re.compile(f"[{ideographs_b}]").search if ideographs_b else _never

    def split(t: str) -> tuple[list[str], int]:
        """Whitespace-separated chunks (fewer, faster) unless the text has CJK or odd controls.

        Chunks keep their punctuation ("world." is one unit, refined into "world" and "." when
        unseen); CJK text has no spaces, so it is cut around every ideograph and punctuation mark.
        """
        if t.isascii():
            units = ascii_re(t) if joined(t) else t.split()
        else:
            units = full_re(t) if cjk(t) or joined(t) else t.split()
        return units, len(units)

    def refine(unit: str) -> list[str]:
        return ascii_re(unit) if unit.isascii() else full_re(unit)

    # a space is a hard boundary between any two units: unseen ones share library texts
    return _Plan("wordpiece", split, _unit_encoder(cfg), refine=refine, join=_Join(" ", _always))


@lru_cache(maxsize=8)
def _wordpiece_classes(normalizer_json: str) -> tuple[str, str, str]:
    """Regex class bodies of the isolated characters: the ASCII ones, all, and the ideographs
    (non-punctuation) among them; built once a process for each normaliser."""
    isolated = _wordpiece_isolated(normalizer_json)
    ideographs = [c for c in isolated if not c.isascii() and unicodedata.category(c)[0] != "P"]
    return _char_class(c for c in isolated if c.isascii()), _char_class(isolated), _char_class(ideographs)


@lru_cache(maxsize=8)
def _wordpiece_isolated(normalizer_json: str) -> str:
    """Characters the BERT pipeline always makes a word of their own (ASCII, BMP punctuation, CJK).

    c qualifies when it and its NFD are starters (no canonical reordering across it) and the
    normaliser turns it into one character x, maybe padded with spaces, that the pre-tokeniser
    cuts out of "a" + x + "a". Checked in blocks; a block that fails is halved until the
    offending characters are found.
    """
    norm = _normalizer(json.loads(normalizer_json))
    pre = pre_tokenizers.BertPreTokenizer()
    punct = [chr(c) for c in range(0x80, 0x10000) if unicodedata.category(chr(c))[0] == "P"]
    cands = [c for c in [*ASCII_PUNCT, *punct, *(chr(c) for a, b in CJK_BMP for c in range(a, b + 1))]
             if not any(unicodedata.combining(x) for x in unicodedata.normalize("NFD", c))]

    def ok(block: list[str]) -> bool:
        normalized = norm("a" + "a".join(block) + "a")
        pieces = [p for p, _ in pre.pre_tokenize_str(normalized)]
        return len(pieces) == 2 * len(block) + 1 and all(p == "a" for p in pieces[::2]) and \
            all(len(p) == 1 for p in pieces[1::2])

    good: list[str] = []
    stack = [cands[i:i + 4096] for i in range(0, len(cands), 4096)]
    while stack:
        block = stack.pop()
        if ok(block):
            good += block
        elif len(block) > 1:
            stack += [block[: len(block) // 2], block[len(block) // 2:]]
    return "".join(sorted(good))


def _byte_level(pre: dict | None) -> dict | None:
    if pre and pre["type"] == "Sequence" and len(pre["pretokenizers"]) == 1:
        pre = pre["pretokenizers"][0]
    return pre if pre and pre["type"] == "ByteLevel" and pre.get("use_regex", True) else None


def _byte_level_plan(cfg: dict) -> _Plan | str:
    pre, norm = _byte_level(cfg["pre_tokenizer"]), cfg.get("normalizer")
    steps = [] if norm is None else norm["normalizers"] if norm["type"] == "Sequence" else [norm]
    if any(s["type"] not in BYTE_LEVEL_NORMALIZERS for s in steps):
        return f"byte-level BPE with normaliser {json.dumps(norm)}"
    prefix_space = pre.get("add_prefix_space", False)
    if steps and prefix_space:
        return "byte-level BPE with both a normaliser and add_prefix_space"
    ws = _char_class(_onig_whitespace())
    units = re.compile(f" ?[^{ws}]+|[{ws}]+(?![^{ws}])|[{ws}]").findall
    spaced = re.compile(f" [{_char_class(c for c in _onig_whitespace() if c.isascii())}]| $").search
    lower = any(s["type"] == "Lowercase" for s in steps)

    def split(t: str) -> tuple[list[str], int] | None:
        """`str.split(" ")` when every space starts a word (the common case), else the unit regex."""
        if not t:
            return [], 0  # the library adds no prefix space to an empty text
        if prefix_space and not t.startswith(" "):
            t = " " + t
        if t.isascii():
            if not spaced(t) and "\n" not in t:
                return t.split(" "), 1
        elif steps:
            return None  # a normaliser may remove a mark or make whitespace of a non-ASCII character
        found = units(t)
        return found, len(found)

    def refine(unit: str) -> list[str]:
        if not unit.isascii():
            return [unit]
        return _GPT2_ASCII(unit.lower() if lower else unit)

    encoder = _unit_encoder(cfg, pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False,
                                                "trim_offsets": False, "use_regex": True})
    # "\n" between two units that start with " x" or "x" and end with a non-space x is a pre-token
    # of its own (its tokens are dropped), and cuts nothing else: unseen units share library texts
    white = set(_onig_whitespace())

    def joinable(u: str) -> bool:
        return u[-1] not in white and (u[0] not in white or (u[0] == " " and len(u) > 1 and u[1] not in white))

    return _Plan("bpe", split, encoder, prefix=" ", refine=refine, join=_Join("\n", joinable))


# GPT-2's pre-tokenisation regex on ASCII text, where \p{L} is [A-Za-z], \p{N} is [0-9] and
# onig's \s is Python's ASCII \s.
_GPT2_ASCII = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+",
                         re.ASCII).findall


@lru_cache(maxsize=1)
def _onig_whitespace() -> str:
    """The characters the library's regex engine calls \\s (White_Space: all in the BMP, all Z* or C*)."""
    cands = "".join(chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000
                    and unicodedata.category(chr(c))[0] in "ZC")
    rest = pre_tokenizers.Split(Regex(r"\s"), behavior="removed").pre_tokenize_str(cands)
    kept = {i for _, (a, b) in rest for i in range(a, b)}
    return "".join(c for i, c in enumerate(cands) if i not in kept)


def _sentencepiece_plan(cfg: dict) -> _Plan | str:
    norm, model = cfg.get("normalizer"), cfg["model"]
    steps = norm["normalizers"] if norm and norm["type"] == "Sequence" else []
    tail = [{"type": "Prepend", "prepend": " "}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]
    if steps[-2:] != tail:
        return "SentencePiece pipeline without Prepend(' ') + Replace(' ', '▁') at the end of its normaliser"
    steps = steps[:-2]
    collapse = steps[-2:] == [
        {"type": "Replace", "pattern": {"Regex": r"\A +| +\z"}, "content": ""},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]
    if collapse:
        steps = steps[:-2]
    charsmap = steps[-1:] and steps[-1]["type"] == "Precompiled"
    pre = steps[:-1] if charsmap else steps
    if any(s["type"] not in PER_CHAR for s in pre):
        return f"SentencePiece normaliser steps {[s['type'] for s in pre]}"
    pieces = [p for p, _ in model["vocab"]] if model["type"] == "Unigram" else list(model["vocab"])
    if "▁" not in pieces:
        return "'▁' is not a piece"
    if model["type"] == "BPE" and (model.get("ignore_merges") or model.get("continuing_subword_prefix")
                                   or model.get("end_of_word_suffix")):
        return "BPE with ignore_merges or subword affixes"
    inner = [p for p in pieces if "▁" in p[1:]]
    if any(p[i] == "▁" and p[i - 1] != "▁" for p in inner for i in range(1, len(p))):
        return "a piece has '▁' after another character"
    lattice = _Lattice(model["vocab"], model.get("unk_id")) if model["type"] == "Unigram" else None
    if collapse:
        if inner:
            return "whitespace-only pieces with collapsed spaces"
        plan = _collapse_plan(cfg, steps)
        if isinstance(plan, _Plan) and lattice is not None:
            plan.lattice = lattice.bind(plan.encoder)
            lattice.floor = 2 * float(lattice.error(JOIN_CHARS * plan.join_growth))  # joined texts' rounding
        return plan
    if charsmap or any(s["type"] not in CANONICAL for s in pre):
        return "SentencePiece without space collapsing, with a charsmap or a normaliser that removes characters"
    keep_norm = {"type": "Sequence", "normalizers": [*pre, tail[1]]}
    encoder = _unit_encoder(cfg, normalizer=keep_norm)
    if lattice is not None:
        lattice = lattice.bind(encoder)
    # A control character no piece contains (SentencePiece trains on lines: "\n" is never in a
    # piece) is a cut on both sides, if byte fallback spells it (no unknown token to fuse with).
    alone = [c for c in ASCII_CONTROL_SPACES if all(c not in p or p == c for p in pieces)
             and (c in pieces or model.get("byte_fallback"))]
    split = _keep_spaces_split
    if alone:
        c = _char_class(alone)
        cut, has_alone = re.compile(f"[{c}]|[ ▁]+[^ ▁{c}]*|[^ ▁{c}]+").findall, re.compile(f"[{c}]").search

        def split(t: str) -> tuple[list[str], int]:
            if not t or (t.isascii() and not has_alone(t)):
                return _keep_spaces_split(t)
            units = cut(" " + t)  # units, and each such character alone
            return units, len(units)

    # units that start with "▁" (or are a lone control character) and end with another character
    # can simply be laid end to end: the model cuts there anyway
    standalone = set(alone)

    def joinable(u: str) -> bool:
        return u in standalone or (u[0] in " ▁" and u[-1] not in " ▁")

    if lattice is not None:
        lattice.floor = 2 * float(lattice.error(JOIN_CHARS * 19))  # NFD/lower-casing grow a text 18x at most
    return _Plan("sentencepiece", split, encoder, prefix=" ", lattice=lattice,
                 join=_Join("", joinable))


def _keep_spaces_split(t: str) -> tuple[list[str], int]:
    """Units "space-run + word" of " " + t: literal, or implied (their first space left out).

    >>> _keep_spaces_split("a b"), _keep_spaces_split("a  b▁c ")
    ((['a', 'b'], 0), ([' a', '  b', '▁c', ' '], 4))
    """
    if not t:
        return [], 0
    if t.isascii() and "  " not in t and not t.startswith(" "):
        return t.split(" "), 0
    units = _SPACE_RUNS(" " + t)
    return units, len(units)


_SPACE_RUNS = re.compile("[ ▁]+[^ ▁]*").findall


def _collapse_plan(cfg: dict, steps: list[dict]) -> _Plan | str:
    """SentencePiece with remove_extra_whitespaces: cut at spaces between safe neighbours."""
    pre = [s for s in steps if s["type"] != "Precompiled"]
    full = _normalizer(dict(type="Sequence", normalizers=steps))
    if full(" ") != " " or full("a b") != "a b":
        return "the charsmap changes spaces"
    # control characters the normaliser turns into a space are cuts too (graphemes always break
    # around a control character); str.split() cuts at all of ASCII's, if none is removed instead
    controls = [c for c in ASCII_CONTROL_SPACES if full(c) == " "]
    neighbours = _sp_neighbours(json.dumps(pre, sort_keys=True))
    safe = _char_class(neighbours + " " + "".join(controls))
    cut = re.compile(f"(?<=[{safe}]) (?=[{safe}])|[{_char_class(controls)}]").split
    removed = re.compile(f"[{_char_class(set(ASCII_CONTROL_SPACES) - set(controls))}]").search \
        if len(controls) < len(ASCII_CONTROL_SPACES) else None

    def split(t: str) -> tuple[list[str], int]:
        if not t.isascii():
            units = cut(t)
        elif removed is None or not removed(t):
            units = t.split()
        else:
            units = t.split(" ")
        return units, len(units)

    # units of printable ASCII that normalise to something without spaces can share a library
    # text, one space apart; the "▁" of that space goes with the unit after it
    plain = [c for c in map(chr, range(0x21, 0x7F)) if (n := full(c)) and " " not in n and "▁" not in n]
    growth = max((len(full(c)) for c in plain), default=1)
    joinable = re.compile(f"[{_char_class(plain)}]+").fullmatch if plain else _never
    plan = _Plan("sentencepiece", split, _unit_encoder(cfg), join=_Join(" ", joinable, sep_to_next=True))
    plan.join_growth = growth + 1
    return plan


@lru_cache(maxsize=8)
def _sp_neighbours(pre_json: str) -> str:
    """The SP_NEIGHBOURS characters y whose pre-normalised form starts and ends with one of them (or a space)."""
    cands = [chr(c) for a, b in SP_NEIGHBOURS for c in range(a, b + 1) if unicodedata.category(chr(c))[0] != "C"]
    norm = _normalizer(dict(type="Sequence", normalizers=json.loads(pre_json)))
    allowed = set(cands) | {" "}
    return "".join(c for c in cands if (n := norm(c)) and n[0] in allowed and n[-1] in allowed)


class _Lattice:
    """Unigram's Viterbi, re-run on a unit to measure how close its decisions were.

    At every position the library keeps the best of the candidate paths ending there. If the
    best beats the runner-up by more than the rounding error either computation can make, both
    the unit alone and the unit inside a text pick the same path (that of exact arithmetic).
    Scores are float64; a path of n nodes sums to at most n·M in magnitude (M: largest |score|),
    each addition errs by at most 2^-53 of that, so a lattice over L characters errs by at most
    E(L) = M·(L+1)²·2^-52 (including the one-ulp score differences between Python's and serde's
    float parsing); 2^-50 is used for margin.
    """

    def __init__(self, vocab: list, unk_id: int | None):
        self.scores = {p: s for p, s in vocab}
        self.trie: dict = {}  # char → child node; a node that ends a piece holds its score under ""
        for piece, score in self.scores.items():
            node = self.trie
            for ch in piece:
                node = node.setdefault(ch, {})
            node[""] = score
        self.unk_score = min(self.scores.values()) - 10.0  # the library's K_UNK_PENALTY
        self.has_unk = unk_id is not None
        self.m = max(max(abs(s) for s in self.scores.values()), abs(self.unk_score))
        self.normalize: Callable[[str], str] = str
        self.floor = 0.0  # rounding allowance of the library text a unit was encoded in, if joined

    def bind(self, encoder: HFTokenizer) -> _Lattice:
        self.normalize = encoder.normalizer.normalize_str
        return self

    def error(self, n: np.ndarray | int):
        return self.m * (np.asarray(n, dtype=np.float64) + 1) ** 2 * 2.0 ** -50

    def check(self, inputs: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per unit: its gap less its own error bound, and its normalised length."""
        normalized = [self.normalize(x) for x in inputs]
        nchars = np.fromiter(map(len, normalized), dtype=np.int64, count=len(normalized))
        gaps = np.fromiter(map(self.gap, normalized), dtype=np.float64, count=len(normalized))
        return gaps - 2 * self.error(nchars) - self.floor, nchars

    def gap(self, s: str) -> float:
        """Smallest lead of the best path over the runner-up into any position of `s` (inf: no contest).

        >>> lat = _Lattice([("<unk>", 0.0), ("a", -1.0), ("aa", -2.0)], 0)
        >>> lat.gap("aa")  # "a|a" and "aa" both score -2
        0.0
        """
        n, neg = len(s), -np.inf
        first = [0.0] + [neg] * n
        second = [neg] * (n + 1)
        root, unk, has_unk = self.trie, self.unk_score, self.has_unk
        for i in range(n):
            base, node, single = first[i], root, False
            for j in range(i, n):  # every piece that starts at i, walking the trie
                node = node.get(s[j])
                if node is None:
                    break
                score = node.get("")
                if score is not None:
                    single = single or j == i
                    v, k = base + score, j + 1
                    if v > first[k]:
                        first[k], second[k] = v, first[k]
                    elif v > second[k]:
                        second[k] = v
            if not single and has_unk:  # the library's unknown-character node
                v, k = base + unk, i + 1
                if v > first[k]:
                    first[k], second[k] = v, first[k]
                elif v > second[k]:
                    second[k] = v
        return min((f - t for f, t in zip(first, second, strict=True) if t > neg), default=np.inf)

    def unsafe(self, gaps: np.ndarray, nchars: np.ndarray, counts: np.ndarray) -> list[int]:
        """Texts (by position in the batch) whose smallest unit gap does not beat their own error."""
        ends = np.cumsum(counts)
        starts = ends - counts
        length = np.concatenate([[0], np.cumsum(nchars)])
        total = length[ends] - length[starts]
        lowest = np.full(len(counts), np.inf)
        some = counts > 0
        if some.any():
            lowest[some] = np.minimum.reduceat(gaps, starts[some])
        return np.flatnonzero(lowest <= 2 * self.error(total)).tolist()


# -- helpers -------------------------------------------------------------------------------------


def _normalizer(spec: dict | None) -> Callable[[str], str]:
    """A normaliser from its tokenizer.json form (identity for None), as a str → str function."""
    if spec is None:
        return str
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": spec,
           "pre_tokenizer": None, "post_processor": None, "decoder": None,
           "model": {"type": "WordLevel", "vocab": {"[UNK]": 0}, "unk_token": "[UNK]"}}
    return HFTokenizer.from_str(json.dumps(doc)).normalizer.normalize_str


def _never(_: str) -> None:
    return None


def _always(_: str) -> bool:
    return True


def _itself(unit: str) -> list[str]:
    return [unit]


def _char_class(chars) -> str:
    """A regex character class body (ranges) for a set of characters."""
    codes = np.unique(np.fromiter(map(ord, chars), dtype=np.int64))
    breaks = np.flatnonzero(np.diff(codes) != 1) + 1  # where a run of consecutive code points ends
    parts = []
    for run in np.split(codes, breaks) if len(codes) else []:
        a, b = re.escape(chr(run[0])), re.escape(chr(run[-1]))
        parts.append(a if len(run) == 1 else f"{a}-{b}")
    return "".join(parts)


def _added_token_search(cfg: dict) -> Callable[[str], bool] | None:
    """A test for 'this text contains the literal of an added token' (then the library encodes it)."""
    contents = sorted({t["content"] for t in cfg.get("added_tokens") or [] if t["content"]}, key=len, reverse=True)
    if not contents:
        return None
    search = re.compile("|".join(map(re.escape, contents))).search
    firsts = sorted({c[0] for c in contents})
    if len(firsts) == 1:
        a = firsts[0]
        return lambda t: a in t and search(t) is not None
    if len(firsts) == 2:
        a, b = firsts
        return lambda t: (a in t or b in t) and search(t) is not None
    return lambda t: search(t) is not None
