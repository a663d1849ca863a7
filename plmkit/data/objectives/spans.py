"""The shared span sampler, and T5 span corruption built on it.

`random_composition` (a uniformly random split of n items into k non-empty parts, T5's
`_random_segmentation`) is the one primitive: T5 uses it for the noise and non-noise run
lengths, GLM (glm.py) for the gaps between its Poisson-length spans.

T5 (`t5/data/preprocessors.py`, data-objectives.md §4.3–4.6), reproduced exactly:

* `random_spans_noise_mask`: num_noise = round(length × density) clamped to [1, length − 1],
  num_spans = max(1, round(num_noise / mean_span)); noise and non-noise run lengths are random
  compositions; runs interleave starting with non-noise — so the first token is never noise and
  the last always is. Rounding is half-to-even as `tf.round`.
* `span_corrupt`: inputs `N0 S0 N1 S1 … N(K-1) S(K-1) EOS`, labels `S0 X0 S1 X1 … S(K-1) X(K-1) EOS`
  (Nk = non-noise run k, Xk = noise span k, Sk = the k-th sentinel, `<extra_id_k>`). As the mask
  ends with noise, the labels carry no trailing sentinel (unlike the paper's figure).
* `t5_input_target_lengths`: the raw chunk length whose corrupted inputs are exactly
  `inputs_length` tokens with EOS, and the matching targets length (512 → 568 raw, 114).

One deviation: a 1-token chunk (only a split's last chunk can be that short) has its single
token made noise, `S0 EOS` / `S0 t0 EOS`, where T5 would produce no span at all.
"""

from __future__ import annotations

import numpy as np

from plmkit.data.objectives import as_ids
from plmkit.errors import check


def random_composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """`parts` positive integers summing to `total`, uniform over all such compositions.

    Equivalent to T5's `_random_segmentation` (shuffle `parts − 1` cut markers among the
    `total − 1` gaps between items): choose the cuts without replacement.

    >>> random_composition(5, 5, np.random.default_rng(0)).tolist()
    [1, 1, 1, 1, 1]
    """
    assert 1 <= parts <= total, (total, parts)
    cuts = np.sort(rng.choice(total - 1, parts - 1, replace=False)) + 1
    return np.diff(np.concatenate(([0], cuts, [total])))


def t5_num_noise_spans(length: int, noise_density: float = 0.15, mean_span: float = 3.0) -> tuple[int, int]:
    """(num_noise, num_spans) as `random_spans_noise_mask` computes them for a chunk of `length`."""
    length = max(length, 2)
    num_noise = int(np.clip(np.round(length * noise_density), 1, length - 1))
    return num_noise, max(1, int(np.round(num_noise / mean_span)))


def noise_span_bounds(
    length: int, noise_density: float, rng: np.random.Generator, mean_span: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of T5's noise spans in a chunk of `length` (ends exclusive, in order)."""
    num_noise, num_spans = t5_num_noise_spans(length, noise_density, mean_span)
    padded = max(length, 2)  # T5 computes on at least 2 tokens, then truncates
    noise = random_composition(num_noise, num_spans, rng)
    nonnoise = random_composition(padded - num_noise, num_spans, rng)
    ends = np.cumsum(noise + nonnoise)
    starts = ends - noise
    keep = starts < length
    return starts[keep], np.minimum(ends[keep], length)


def random_spans_noise_mask(
    length: int, noise_density: float, rng: np.random.Generator, mean_span: float = 3.0
) -> np.ndarray:
    """T5's noise mask: True on noise tokens.

    >>> random_spans_noise_mask(10, 0.15, np.random.default_rng(0)).astype(int).tolist()
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]
    """
    if noise_density == 0:
        return np.zeros(length, dtype=bool)
    starts, ends = noise_span_bounds(length, noise_density, rng, mean_span)
    return spans_to_mask(starts, ends, length)


def spans_to_mask(starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """Boolean mask of `length` that is True inside each [start, end)."""
    delta = np.zeros(length + 1, dtype=np.int32)
    np.add.at(delta, starts, 1)
    np.add.at(delta, ends, -1)
    return np.cumsum(delta[:length]) > 0


def t5_input_target_lengths(
    inputs_length: int, noise_density: float = 0.15, mean_span: float = 3.0
) -> tuple[int, int]:
    """(raw tokens per chunk, targets length) so that the inputs are exactly `inputs_length` with EOS.

    T5's `random_spans_helper` (search from `inputs_length − 1` upwards).

    >>> t5_input_target_lengths(512), t5_input_target_lengths(128)
    ((568, 114), (141, 29))
    """

    def lengths(raw: int) -> tuple[int, int]:
        noise = int(np.round(raw * noise_density))
        spans = int(np.round(noise / mean_span))
        return raw - noise + spans + 1, noise + spans + 1  # one sentinel per span, plus EOS

    raw = inputs_length - 1
    while lengths(raw + 1)[0] <= inputs_length:
        raw += 1
    inputs, targets = lengths(raw)
    if noise_density == 0.5 and targets > inputs:  # T5's own special case
        raw, targets = raw - 1, targets - 1
    return raw, targets


def span_corrupt(
    chunk,
    rng: np.random.Generator,
    *,
    sentinels,
    eos: int,
    noise_density: float = 0.15,
    mean_span: float = 3.0,
) -> dict[str, np.ndarray]:
    """T5 span corruption of one raw chunk: `input_ids` and `labels` (see the module docstring).

    `sentinels[k]` is `<extra_id_k>`'s id. With a chunk of `t5_input_target_lengths(L)[0]`
    tokens, `input_ids` has exactly L tokens and `labels` exactly the targets length.

    >>> out = span_corrupt(np.arange(10, 20), np.random.default_rng(0), sentinels=[99, 98], eos=1)
    >>> out["input_ids"].tolist(), out["labels"].tolist()
    ([10, 11, 12, 13, 14, 15, 16, 17, 99, 1], [99, 18, 19, 1])
    """
    ids = as_ids(chunk)
    check(ids.size >= 1, "span corruption needs at least one token")
    if ids.size == 1:
        starts, ends = np.array([0]), np.array([1])
    else:
        starts, ends = noise_span_bounds(ids.size, noise_density, rng, mean_span)
    sentinels = np.asarray(sentinels, dtype=np.int32)
    check(
        starts.size <= sentinels.size,
        f"a chunk of {ids.size} tokens needs {starts.size} sentinels but the tokenizer has {sentinels.size}",
        "lower --seq-len or --noise-density, or raise --mean-span",
    )
    k = starts.size
    noise = spans_to_mask(starts, ends, ids.size)
    inputs = ids.copy()
    inputs[starts] = sentinels[:k]  # the first token of each span becomes its sentinel …
    keep = ~noise
    keep[starts] = True  # … and the rest of the span is deleted
    lengths = ends - starts
    label_body = np.insert(ids[noise], np.cumsum(lengths) - lengths, sentinels[:k])  # S_k before span k
    return {
        "input_ids": np.append(inputs[keep], np.int32(eos)),
        "labels": np.append(label_body, np.int32(eos)).astype(np.int32),
    }
