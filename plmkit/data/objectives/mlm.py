"""Masked language modelling (BERT, RoBERTa, ALBERT): segments, packing and token masking.

Selection follows google-research/bert `create_masked_lm_predictions` (ALBERT's n-gram variant
when `ngram > 1`), with the fixes of data-objectives.md §10.2:

* the count is `round(mask_prob × maskable)` over the *maskable* (non-special) tokens only,
  at least 1 when anything is maskable (as the reference's `max(1, …)`), capped by
  `max_predictions`; Python's round (half to even) as in the reference;
* special tokens are never selected, and random replacements are drawn uniformly from the
  non-special ids only (the references draw from the whole vocabulary);
* every draw comes from the explicit generator (ALBERT's n-gram lengths used the unseeded
  global NumPy state).

Units: tokens, or whole words when `word_starts` is given (a token continues the previous word
unless it is a word start or follows a special token). Units are visited in random order and
accepted while they fit in the remaining budget; a unit (or n-gram) that would overflow is
skipped — so with whole words the count can end slightly below the target, as in the reference.
With `ngram = N`, each visited start unit proposes an n-gram of n ~ P(n) ∝ 1/n units (n ≤ N),
backing off to shorter n-grams on overflow, skipped if it overlaps a chosen one. As in ALBERT,
n-grams run over the list of non-special units, so one can straddle a `[SEP]` (never masking it).
Each selected token independently becomes `[MASK]` (p = `mask_replace`), a random non-special
id (p = `random_replace`) or stays (the rest) — per token even under whole-word masking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plmkit.data.objectives import IGNORE_INDEX, SpecialIds, as_ids
from plmkit.data.objectives.clm import BlockPacker
from plmkit.errors import check


def masked_count(maskable: int, mask_prob: float, max_predictions: int | None = None) -> int:
    """How many tokens to predict: `min(max_predictions, max(1, round(mask_prob × maskable)))`.

    >>> masked_count(10, 0.15), masked_count(30, 0.15), masked_count(3, 0.15), masked_count(0, 0.15)
    (2, 4, 1, 0)
    """
    if maskable <= 0 or mask_prob <= 0:
        return 0
    count = max(1, round(mask_prob * maskable))
    if max_predictions is not None:
        count = min(count, max_predictions)
    return min(count, maskable)


def _unit_bounds(special_mask: np.ndarray, word_starts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Maskable positions and, into them, the index where each unit begins."""
    cand = np.flatnonzero(~special_mask)
    if word_starts is None:
        return cand, np.arange(cand.size)
    after_special = np.concatenate(([True], special_mask[:-1]))
    begins = np.asarray(word_starts, dtype=bool)[cand] | after_special[cand]
    return cand, np.flatnonzero(begins)


def _select_prefix(lengths: np.ndarray, order: np.ndarray, budget: int) -> np.ndarray:
    """Greedy single-unit selection in `order`, skipping units that overflow (vectorised prefix)."""
    ordered = lengths[order]
    total = np.cumsum(ordered)
    n_fit = int(np.searchsorted(total, budget, side="right"))  # whole prefix that fits
    chosen = list(order[:n_fit])
    left = budget - (int(total[n_fit - 1]) if n_fit else 0)
    pos = n_fit + 1  # unit n_fit overflowed: skipped
    while left > 0 and pos < ordered.size:  # at most `left` more units (the budget is small by now)
        fits = np.flatnonzero(ordered[pos:] <= left)
        if fits.size == 0:
            break
        pos += int(fits[0])
        chosen.append(order[pos])
        left -= int(ordered[pos])
        pos += 1
    return np.asarray(chosen, dtype=np.int64)


def _select_ngrams(lengths: np.ndarray, order: np.ndarray, ns: np.ndarray, budget: int) -> np.ndarray:
    """ALBERT's n-gram selection over units; returns a boolean mask of chosen units."""
    n_units = lengths.size
    cum = np.concatenate(([0], np.cumsum(lengths))).tolist()
    covered = bytearray(n_units)
    for i, n in zip(order.tolist(), ns[order].tolist(), strict=True):
        if budget <= 0:
            break
        while n >= 1 and cum[min(i + n, n_units)] - cum[i] > budget:
            n -= 1  # back off to a shorter n-gram
        end = min(i + n, n_units)
        if n == 0 or any(covered[i:end]):
            continue
        covered[i:end] = b"\x01" * (end - i)
        budget -= cum[end] - cum[i]
    return np.frombuffer(bytes(covered), dtype=bool)


def select_positions(
    special_mask: np.ndarray,
    rng: np.random.Generator,
    *,
    mask_prob: float = 0.15,
    max_predictions: int | None = None,
    word_starts: np.ndarray | None = None,
    ngram: int = 1,
) -> np.ndarray:
    """Sorted positions to predict (never a special position)."""
    special_mask = np.asarray(special_mask, dtype=bool)
    cand, begins = _unit_bounds(special_mask, word_starts)
    budget = masked_count(cand.size, mask_prob, max_predictions)
    if budget == 0:
        return np.zeros(0, dtype=np.int64)
    if word_starts is None and ngram == 1:
        # a uniformly random subset of `budget` candidates: the smallest of i.i.d. uniform keys
        return cand[np.sort(np.argpartition(rng.random(cand.size), budget - 1)[:budget])]
    lengths = np.diff(np.append(begins, cand.size))
    order = rng.permutation(lengths.size)
    if ngram == 1:
        chosen = np.zeros(lengths.size, dtype=bool)
        chosen[_select_prefix(lengths, order, budget)] = True
    else:
        cdf = np.cumsum(1.0 / np.arange(1, ngram + 1))  # P(n) ∝ 1/n (ALBERT's favor_shorter_ngram)
        cdf /= cdf[-1]
        ns = np.searchsorted(cdf, rng.random(lengths.size), side="right") + 1
        chosen = _select_ngrams(lengths, order, ns, budget)
    return cand[np.repeat(chosen, lengths)]


def mask_tokens(
    ids,
    special_mask,
    rng: np.random.Generator,
    *,
    specials: SpecialIds,
    mask_prob: float = 0.15,
    max_predictions: int | None = None,
    mask_replace: float = 0.8,
    random_replace: float = 0.1,
    word_starts: np.ndarray | None = None,
    ngram: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask `ids`; returns `(input_ids, labels)` with labels = original id where predicted, else -100.

    `special_mask` is True at positions that must never be selected (`specials.is_special(ids)`).
    Serves both static masking at build time and the dynamic collator (rng from (seed, epoch, index)).

    >>> sp = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=50)
    >>> ids = np.array([1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 2])
    >>> inp, lab = mask_tokens(ids, sp.is_special(ids), np.random.default_rng(0), specials=sp)
    >>> int((lab != -100).sum()), bool((inp[lab == -100] == ids[lab == -100]).all())
    (2, True)
    """
    ids = as_ids(ids)
    assert mask_replace >= 0 and random_replace >= 0 and mask_replace + random_replace <= 1 + 1e-9
    pos = select_positions(
        special_mask, rng, mask_prob=mask_prob, max_predictions=max_predictions,
        word_starts=word_starts, ngram=ngram,
    )
    labels = np.full(ids.shape, IGNORE_INDEX, dtype=np.int32)
    labels[pos] = ids[pos]
    out = ids.copy()
    u = rng.random(pos.size)
    out[pos[u < mask_replace]] = specials.mask
    rand_pos = pos[(u >= mask_replace) & (u < mask_replace + random_replace)]
    pool = specials.nonspecial_array
    out[rand_pos] = pool[rng.integers(pool.size, size=rand_pos.size)]
    return out, labels


@dataclass(frozen=True)
class MaskSpec:
    """The masking parameters (`--mask-prob`, `--max-predictions`, `--mask-replace`, …) as one value."""

    mask_prob: float = 0.15
    max_predictions: int | None = None
    mask_replace: float = 0.8
    random_replace: float = 0.1
    ngram: int = 1

    def __post_init__(self):
        check(0 < self.mask_prob < 1, f"--mask-prob must be in (0, 1), got {self.mask_prob}")
        check(
            self.max_predictions is None or self.max_predictions >= 1,
            f"--max-predictions must be at least 1, got {self.max_predictions}",
        )
        check(
            self.mask_replace >= 0 and self.random_replace >= 0 and self.mask_replace + self.random_replace <= 1,
            f"--mask-replace {self.mask_replace} + --random-replace {self.random_replace} must lie in [0, 1]",
            "the rest of the selected tokens are kept unchanged",
        )
        check(1 <= self.ngram <= 10, f"--ngram must be between 1 and 10, got {self.ngram}")

    def apply(
        self, ids, special_mask, rng: np.random.Generator, specials: SpecialIds,
        word_start_table: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`mask_tokens` with these parameters; `word_start_table[id]` = id begins a word (whole-word)."""
        ids = as_ids(ids)
        starts = None if word_start_table is None else word_start_table[ids]
        return mask_tokens(
            ids, special_mask, rng, specials=specials, mask_prob=self.mask_prob,
            max_predictions=self.max_predictions, mask_replace=self.mask_replace,
            random_replace=self.random_replace, word_starts=starts, ngram=self.ngram,
        )


def wrap_segment(content, specials: SpecialIds) -> np.ndarray:
    """`[CLS] content [SEP]`."""
    return np.concatenate(([specials.cls], as_ids(content), [specials.sep])).astype(np.int32)


def mlm_segments(doc, seq_len: int, specials: SpecialIds) -> list[np.ndarray]:
    """One document cut, in order, into `[CLS] … [SEP]` segments of at most `seq_len` tokens.

    >>> sp = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=50)
    >>> [s.tolist() for s in mlm_segments([10, 11, 12, 13, 14], 5, sp)]
    [[1, 10, 11, 12, 2], [1, 13, 14, 2]]
    """
    check(seq_len >= 3, f"--seq-len must be at least 3 for mlm, got {seq_len}")
    ids, width = as_ids(doc), seq_len - 2
    return [wrap_segment(ids[s : s + width], specials) for s in range(0, ids.size, width)]


class MlmPacker:
    """`--cross-documents` packing (RoBERTa FULL-SENTENCES): documents streamed with a `[SEP]` after
    each, cut into windows of `seq_len - 2` tokens, each wrapped as `[CLS] window [SEP]`.

    A document that ends exactly at a window's end gives `… [SEP] [SEP]`, RoBERTa's double
    separator. The windows, unwrapped and concatenated, are exactly the separated stream.

    >>> sp = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=50)
    >>> p = MlmPacker(6, sp)
    >>> [s.tolist() for s in p.add([10, 11, 12]) + p.add([13, 14]) + p.finish()]
    [[1, 10, 11, 12, 2, 2], [1, 13, 14, 2, 2]]
    """

    def __init__(self, seq_len: int, specials: SpecialIds):
        check(seq_len >= 3, f"--seq-len must be at least 3 for mlm, got {seq_len}")
        self.specials = specials
        self.packer = BlockPacker(seq_len - 2)

    def add(self, doc) -> list[np.ndarray]:
        stream = np.append(as_ids(doc), np.int32(self.specials.sep))
        return [wrap_segment(w, self.specials) for w in self.packer.add(stream)]

    def finish(self, drop_remainder: bool = False) -> list[np.ndarray]:
        return [wrap_segment(w, self.specials) for w in self.packer.finish(drop_remainder)]


def mlm_example(
    segment, rng: np.random.Generator, specials: SpecialIds, spec: MaskSpec = MaskSpec(),
    word_start_table: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Static-masking row: `input_ids`, `labels`, `special_tokens_mask` (int8, 1 = special)."""
    ids = as_ids(segment)
    special = specials.is_special(ids)
    input_ids, labels = spec.apply(ids, special, rng, specials, word_start_table)
    return {"input_ids": input_ids, "labels": labels, "special_tokens_mask": special.astype(np.int8)}


def mlm_dynamic_example(segment, specials: SpecialIds) -> dict[str, np.ndarray]:
    """`--dynamic` row: the unmasked `input_ids` and `special_tokens_mask`; the collator masks them."""
    ids = as_ids(segment)
    return {"input_ids": ids, "special_tokens_mask": specials.is_special(ids).astype(np.int8)}
