"""GLM autoregressive blank infilling (THUDM/GLM `ConstructBlockStrategy`, data-objectives.md §5).

One row holds `[CLS] text [EOS]` (EOS only where the document ends) with spans blanked out:

* span lengths ~ Poisson(λ) truncated to 1..`max_span` (reference: λ = 3, 1..39, mean ≈ 3.16),
  drawn until they cover at least `ceil(mask_prob × text length)` tokens (the last may overshoot);
* spans are placed with at least one unmasked token between consecutive spans, never on `[CLS]`
  or `[EOS]`; the gap vector is drawn uniformly with the shared `random_composition` sampler;
* Part A = the text with each span replaced by one `[MASK]`; Part B = the spans in random
  order, each as input `<|startofpiece|> x1 … xn` with targets `x1 … xn <|endofpiece|>`.

Columns: `input_ids` (A then B), `labels` (-100 over A), `position_ids` (A: 0, 1, …; B: the
position of its span's `[MASK]` in A), `block_position_ids` (A: 0; B: 1 … n+1 within the span)
and `sep` (an int: the length of A; A attends bidirectionally within A, B to A and causally).

Worked example (the reference's, 0-based): text `[CLS] x1 x2 x3 x4 x5 x6`, spans {x3}, {x5 x6}
in the order (x5 x6, x3):

    input_ids          [CLS] x1 x2 [M] x4 [M] | [sop] x5 x6 | [sop] x3
    labels             -100 ×6                 | x5 x6 [eop] | x3 [eop]
    position_ids       0  1  2  3  4  5        | 5  5  5     | 3  3
    block_position_ids 0 ×6                    | 1  2  3     | 1  2          sep = 6

Deviations from the reference, both so that nothing is dropped and rows stay ≤ `seq_len`:
* the reference drops a sample whose spans cannot be placed; here a span that would not fit is
  shortened to the room left (only possible in windows of a few tokens), and every token of a
  document lands in some row;
* the reference's rows grow to `len(text) + 2 × spans` beyond `seq_length`; here each row's
  text window is chosen so that the whole row (A and B) has at most `seq_len` tokens.
* the reference draws one offset per span with replacement and sorts them; the gaps here are
  uniform over all valid gap vectors (same support, simpler law).
"""

from __future__ import annotations

import math

import numpy as np

from plmkit.data.objectives import IGNORE_INDEX, SpecialIds, as_ids
from plmkit.data.objectives.spans import random_composition, spans_to_mask
from plmkit.errors import check


def truncated_poisson_pmf(lam: float = 3.0, max_span: int = 39) -> np.ndarray:
    """P(length = k) for k = 1..max_span: Poisson(λ) restricted to that range and renormalised."""
    k = np.arange(1, max_span + 1)
    log_pmf = k * math.log(lam) - lam - np.array([math.lgamma(i + 1) for i in k])
    pmf = np.exp(log_pmf - log_pmf.max())
    return pmf / pmf.sum()


def _coverage_target(n_tokens: int, mask_prob: float) -> int:
    """ceil(mask_prob × n), immune to float noise (0.15 × 100 is 15.000000000000002)."""
    return max(1, math.ceil(round(mask_prob * n_tokens, 9)))


def _window(remaining: int, n_spans: int, seq_len: int) -> tuple[int, bool]:
    """Text tokens the row can hold with `n_spans` spans, and whether that ends the document.

    A row costs 1 ([CLS]) + window + 1 ([EOS], only at the document's end) + 2 per span.
    """
    if remaining + 2 + 2 * n_spans <= seq_len:
        return remaining, True
    # Leave at least one token for the next row, which carries the document's EOS: a window that
    # took all the remaining text here would end the document without it.
    return min(seq_len - 1 - 2 * n_spans, remaining - 1), False


class _LengthSource:
    """Truncated-Poisson span lengths, drawn from `rng` in vectorised batches."""

    def __init__(self, rng: np.random.Generator, cdf: np.ndarray, batch: int):
        self.rng, self.cdf, self.batch, self.buf = rng, cdf, batch, []

    def next(self) -> int:
        if not self.buf:
            draws = np.searchsorted(self.cdf, self.rng.random(self.batch), side="right") + 1
            self.buf = draws.tolist()[::-1]
        return self.buf.pop()


def _plan_row(remaining, seq_len, lengths: _LengthSource, mask_prob) -> tuple[int, bool, list[int]]:
    """(window, ends_document, span lengths) for the next row of a document."""
    spans, covered = [], 0
    while True:
        window, ends = _window(remaining, len(spans), seq_len)
        if spans and covered >= _coverage_target(window, mask_prob):
            return window, ends, spans
        room = _window(remaining, len(spans) + 1, seq_len)[0] - covered - len(spans)  # keep the gaps
        if room <= 0:  # nothing more fits (tiny windows only); keep what is covered
            return window, ends, spans
        spans.append(min(lengths.next(), room))
        covered += spans[-1]


def place_spans(lengths: np.ndarray, region: int, rng: np.random.Generator) -> np.ndarray:
    """Starts (0-based within a region of `region` tokens) of spans of `lengths`, in order, with at
    least one free token between consecutive spans and any number at either end.

    The K+1 gaps (ends ≥ 0, inner ≥ 1) are a uniform composition of `region − Σlengths + 2` into
    K+1 positive parts, minus one at each end.
    """
    k = lengths.size
    free = region - int(lengths.sum())
    assert free >= k - 1, "spans do not fit"
    gaps = random_composition(free + 2, k + 1, rng)
    gaps[0] -= 1
    return np.cumsum(gaps[:k] + np.concatenate(([0], lengths[:-1])))


def glm_blank_infill(text, starts, lengths, order, specials: SpecialIds) -> dict[str, np.ndarray]:
    """Assemble one row from explicit spans (`starts`, `lengths` in text order; `order` = the
    Part B order as indices into them). Deterministic; see the module docstring's example."""
    text, starts, lengths = as_ids(text), np.asarray(starts), np.asarray(lengths)
    k = starts.size
    noise = spans_to_mask(starts, starts + lengths, text.size)
    part_a = text.copy()
    part_a[starts] = specials.mask
    keep = ~noise
    keep[starts] = True
    part_a = part_a[keep]
    removed_before = np.cumsum(lengths) - lengths - np.arange(k)  # tokens collapsed before span k
    mask_pos = starts - removed_before
    span_len, span_start, span_pos = lengths[order], starts[order], mask_pos[order]
    block = span_len + 1  # [sop] + span as input, span + [eop] as target
    within = np.arange(int(block.sum())) - np.repeat(np.cumsum(block) - block, block)  # 0 … n per span
    src = np.repeat(span_start, block) + within
    b_inputs = np.where(within == 0, specials.sop, text[np.clip(src - 1, 0, text.size - 1)])
    b_labels = np.where(within == np.repeat(span_len, block), specials.eop, text[np.clip(src, 0, text.size - 1)])
    sep = part_a.size
    return {
        "input_ids": np.concatenate((part_a, b_inputs)).astype(np.int32),
        "labels": np.concatenate((np.full(sep, IGNORE_INDEX), b_labels)).astype(np.int32),
        "position_ids": np.concatenate((np.arange(sep), np.repeat(span_pos, block))).astype(np.int32),
        "block_position_ids": np.concatenate((np.zeros(sep), within + 1)).astype(np.int32),
        "sep": sep,
    }


def glm_examples(
    doc,
    rng: np.random.Generator,
    *,
    seq_len: int,
    specials: SpecialIds,
    mask_prob: float = 0.15,
    poisson_lambda: float = 3.0,
    max_span: int = 39,
) -> list[dict]:
    """All rows of one document, in order; every token of `doc` is in exactly one row's text.

    A document with no tokens gives no row.
    """
    check(seq_len >= 8, f"--seq-len must be at least 8 for glm, got {seq_len}")
    check(0 < mask_prob < 1, f"--mask-prob must be in (0, 1), got {mask_prob}")
    check(poisson_lambda > 0, f"--poisson-lambda must be positive, got {poisson_lambda}")
    ids = as_ids(doc)
    cdf = np.cumsum(truncated_poisson_pmf(poisson_lambda, max_span))
    cdf[-1] = 1.0
    lengths = _LengthSource(rng, cdf, batch=max(8, int(2 * mask_prob * seq_len / poisson_lambda) + 4))
    rows, pos = [], 0
    while pos < ids.size:
        window, ends, spans = _plan_row(ids.size - pos, seq_len, lengths, mask_prob)
        span_len = np.asarray(spans, dtype=np.int64)
        starts = 1 + place_spans(span_len, window, rng)  # after [CLS]
        tail = [specials.eos] if ends else []
        text = np.concatenate(([specials.cls], ids[pos : pos + window], tail)).astype(np.int32)
        rows.append(glm_blank_infill(text, starts, span_len, rng.permutation(span_len.size), specials))
        pos += window
    return rows
