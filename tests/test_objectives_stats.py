"""Statistical properties of the objectives, over samples large enough to see a real defect.

Tolerance rule used throughout: a proportion p̂ estimated from N independent trials has standard
error SE = sqrt(p(1 − p) / N); we accept |p̂ − p| ≤ 5 SE (a false alarm about once in 1.7
million runs), and every seed is fixed, so a pass is reproducible. A chi-square statistic with
d degrees of freedom has mean d and standard deviation sqrt(2d); we accept χ² ≤ d + 5 sqrt(2d).
Each test states its N and any correction to p.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from plmkit.data.objectives import IGNORE_INDEX, SpecialIds, example_rng
from plmkit.data.objectives.glm import glm_examples, truncated_poisson_pmf
from plmkit.data.objectives.mlm import mask_tokens, masked_count
from plmkit.data.objectives.pairs import sentence_pairs
from plmkit.data.objectives.spans import random_composition

# vocabulary of 200: specials 0…8 and 190…199 (19 ids) → 181 ids random replacement may use
SP = SpecialIds(
    pad=0, cls=1, sep=2, mask=3, eos=4, bos=5, vocab_size=200, sop=6, eop=7, gmask=8,
    sentinels=tuple(range(199, 189, -1)),
)
POOL = SP.nonspecial_array.size
SPECIAL = SP.special_array


def within(observed: float, expected: float, n: int, sigmas: float = 5.0) -> bool:
    return abs(observed - expected) <= sigmas * math.sqrt(expected * (1 - expected) / n)


def chi2_ok(counts: np.ndarray, expected: np.ndarray) -> bool:
    dof = counts.size - 1
    return float(((counts - expected) ** 2 / expected).sum()) <= dof + 5 * math.sqrt(2 * dof)


def _segments(n: int, seed: int = 0) -> list[np.ndarray]:
    """[CLS] … [SEP] segments of 64–256 tokens, 5% of them special ids sprinkled in the text."""
    gen = np.random.default_rng(seed)
    out = []
    for length in gen.integers(64, 257, size=n):
        body = gen.integers(9, 190, size=length)
        sprinkle = gen.random(length) < 0.05
        body[sprinkle] = gen.choice(SPECIAL, size=int(sprinkle.sum()))
        out.append(np.concatenate(([1], body, [2])))
    return out


def _mask_all(segments, **kw):
    masked = [mask_tokens(s, SP.is_special(s), example_rng(5, i), specials=SP, **kw) for i, s in enumerate(segments)]
    return [m[0] for m in masked], [m[1] for m in masked]


@pytest.mark.parametrize("mask_replace, random_replace", [(0.8, 0.1), (0.6, 0.3)])
def test_mlm_mask_rate_split_and_replacements(mask_replace, random_replace):
    """5,000 segments (~160 maskable tokens each) → N ≈ 120k selected tokens.

    * count per segment is exactly `masked_count(maskable)`; over all segments the rate differs
      from 0.15 only by rounding: |rate − 0.15| ≤ 0.5 × segments / Σ maskable;
    * each selected token is [MASK] with p = mask_replace; a random replacement equals the original
      with probability 1/181, so "changed to another id" has p = random_replace × (1 − 1/181)
      and "unchanged" p = 1 − mask_replace − random_replace + random_replace/181; 5 SE each;
    * random ids are never special and uniform over the 181 others (χ², 180 dof, ~12k–36k draws).
    """
    segments = _segments(5000)
    inputs, labels = _mask_all(segments, mask_replace=mask_replace, random_replace=random_replace)
    ids, inp, lab = (np.concatenate(x) for x in (segments, inputs, labels))
    special = SP.is_special(ids)
    selected = lab != IGNORE_INDEX
    assert not (selected & special).any()  # never a special position
    maskable = [int((~SP.is_special(s)).sum()) for s in segments]
    assert [int((lab_i != IGNORE_INDEX).sum()) for lab_i in labels] == [masked_count(m, 0.15) for m in maskable]
    n = int(selected.sum())
    assert n >= 100_000
    assert abs(n / sum(maskable) - 0.15) <= 0.5 * len(segments) / sum(maskable)
    assert np.array_equal(lab[selected], ids[selected])
    is_mask = inp[selected] == SP.mask
    changed = ~is_mask & (inp[selected] != ids[selected])
    kept = inp[selected] == ids[selected]
    assert within(is_mask.mean(), mask_replace, n)
    assert within(changed.mean(), random_replace * (1 - 1 / POOL), n)
    assert within(kept.mean(), 1 - mask_replace - random_replace + random_replace / POOL, n)
    replacements = inp[selected][changed]
    assert not SP.is_special(replacements).any()
    counts = np.bincount(replacements, minlength=SP.vocab_size)[SP.nonspecial_array]
    assert chi2_ok(counts, np.full(POOL, replacements.size / POOL))
    assert np.array_equal(inp[~selected], ids[~selected])  # nothing else changes


@pytest.mark.parametrize("ngram", [1, 3])
def test_whole_word_and_ngram_masking_never_touch_specials(ngram):
    """Whole words (~40% of tokens continue a word) and ALBERT n-grams over 5,000 segments (N > 100k):
    no special token selected or used as replacement, never more than the target, and the target
    is reached almost always (a miss needs every unvisited unit to overflow the leftover budget)."""
    segments = _segments(5000, seed=1)
    table = np.random.default_rng(2).random(SP.vocab_size) < 0.6
    masked = [
        mask_tokens(s, SP.is_special(s), example_rng(6, i), specials=SP, word_starts=table[s], ngram=ngram)
        for i, s in enumerate(segments)
    ]
    ids = np.concatenate(segments)
    inp, lab = (np.concatenate([m[k] for m in masked]) for k in (0, 1))
    selected = lab != IGNORE_INDEX
    assert selected.sum() >= 100_000
    assert not (selected & SP.is_special(ids)).any()
    assert not SP.is_special(inp[selected & (inp != SP.mask)]).any()
    targets = np.array([masked_count(int((~SP.is_special(s)).sum()), 0.15) for s in segments])
    got = np.array([(m[1] != IGNORE_INDEX).sum() for m in masked])
    assert (got <= targets).all() and (got == targets).mean() > 0.95


def test_nsp_label_rate_with_put_back():
    """Documents of 3 sentences of 6 tokens, max_num_tokens 10 (short_seq_prob 0): the reference
    loop gives, per document, with the random-next coin c ~ Bernoulli(½):
      c1 = 0: (A=s0, B=s1, 0) then [s2] alone → forced random: labels (0, 1)          p = ½
      c1 = 1: (s0, random, 1), s1 put back; [s1 s2]: c2 = 0 → (1, 0)                   p = ¼
                                               c2 = 1 → (1, 1) then [s2] forced → (1, 1, 1)  p = ¼
    so E[label-1 count X] = 1.5, E[instances Y] = 2.25, and the pooled rate → 2/3. By the delta
    method Var(X − ⅔Y) = ⅓ per document, so SE = sqrt(⅓ / n) / 2.25 over n = 20,000 documents.
    Var(Y) = 0.1875 gives the instances-per-document check."""
    n = 20_000
    other = [np.arange(100, 110)]
    doc = [np.arange(10, 16), np.arange(20, 26), np.arange(30, 36)]
    labels = [
        [y for _, _, y in sentence_pairs(doc, example_rng(7, i), max_num_tokens=10, task="nsp",
                                         short_seq_prob=0.0, sample_other=lambda rng: other)]
        for i in range(n)
    ]
    x = np.array([sum(ls) for ls in labels])
    y = np.array([len(ls) for ls in labels])
    assert abs(x.sum() / y.sum() - 2 / 3) <= 5 * math.sqrt(1 / 3 / n) / 2.25
    assert abs(y.mean() - 2.25) <= 5 * math.sqrt(0.1875 / n)


def test_sop_label_balance():
    """Each SOP pair is swapped by its own Bernoulli(½) coin, so over N ≥ 20,000 pairs the rate of
    label 1 is within 5 sqrt(¼ / N) of ½; swapped pairs are in reverse document order."""
    gen = np.random.default_rng(3)
    labels = []
    for i in range(1800):
        lengths = gen.integers(1, 8, size=int(gen.integers(2, 60)))
        sentences = np.split(np.arange(lengths.sum()), np.cumsum(lengths)[:-1])  # ids = positions
        for a, b, label in sentence_pairs(sentences, example_rng(8, i), max_num_tokens=9, task="sop"):
            in_order = a.max() < b.min()
            assert in_order != bool(label) and (in_order or a.min() > b.max())
            labels.append(label)
    assert len(labels) >= 20_000
    assert within(float(np.mean(labels)), 0.5, len(labels))


def test_glm_span_lengths_follow_the_truncated_poisson():
    """Span lengths are i.i.d. truncated Poisson(3) draws and the number K of spans in a row is a
    stopping time, so by Wald's identities the pooled mean ΣS/ΣK is consistent for μ with
    SE = σ / sqrt(ΣK), and each pooled length frequency for p_k (χ² over bins 1…8 and ≥ 9).
    Rows are counted only when ≥ 64 text tokens remained before them (known before the row's
    draws, so no bias): then a span is never shortened to fit. ~110k masked tokens, ~35k spans."""
    pmf = truncated_poisson_pmf(3.0, 39)
    k = np.arange(1, 40)
    mu, sigma = float(k @ pmf), math.sqrt(float((k - k @ pmf) ** 2 @ pmf))
    gen = np.random.default_rng(4)
    lengths = []
    for i in range(200):
        doc = gen.integers(9, 190, size=3500)
        remaining = doc.size
        for row in glm_examples(doc, example_rng(9, i), seq_len=512, specials=SP):
            sep, labels = row["sep"], row["labels"]
            window = sep - 1 - int(row["input_ids"][sep - 1] == SP.eos) + int((labels[sep:] != SP.eop).sum())
            window -= int((row["input_ids"][:sep] == SP.mask).sum())
            if remaining >= 64:
                ends = np.flatnonzero(labels[sep:] == SP.eop)
                lengths += (np.diff(np.concatenate(([-1], ends))) - 1).tolist()  # span + [eop] each
            remaining -= window
        assert remaining == 0
    lengths = np.array(lengths)
    assert lengths.sum() >= 100_000
    assert abs(lengths.mean() - mu) <= 5 * sigma / math.sqrt(lengths.size)
    counts = np.append(np.bincount(lengths, minlength=9)[1:9], (lengths >= 9).sum())
    expected = np.append(pmf[:8], pmf[8:].sum()) * lengths.size
    assert chi2_ok(counts, expected)


def test_random_composition_is_uniform():
    """7 items into 3 parts: C(6, 2) = 15 compositions, 30,000 draws → 2,000 expected each, χ² 14 dof."""
    gen = example_rng(10)
    seen = {}
    for _ in range(30_000):
        key = tuple(random_composition(7, 3, gen).tolist())
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == 15
    assert chi2_ok(np.array(list(seen.values())), np.full(15, 2000.0))
