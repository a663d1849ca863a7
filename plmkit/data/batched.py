"""MLM segmenting and token masking for a whole chunk at once, vectorised over its segments.

`objectives.mlm` defines the objective one segment at a time (`mlm_segments`, `mask_tokens`);
calling it per segment costs about 100 µs of NumPy call overhead per 128-token segment, more
than encoding the text. Here the same rules run over every segment of a chunk in a handful of
array operations, on one flat array of tokens (`RowBlock` layout: values + row lengths):

* segments: each document (or, with `--cross-documents`, the chunk's `[SEP]`-separated stream)
  cut in order into windows of `seq_len − 2` tokens, each wrapped as `[CLS] window [SEP]`
  (the exact output of `mlm_segments` / `MlmPacker`);
* masking: per segment, `masked_count(maskable, mask_prob, max_predictions)` positions drawn
  uniformly without replacement among the non-special ones (every subset of that size equally
  likely, as `rng.choice(…, replace=False)` in `mask_tokens`), then each selected token
  independently `[MASK]` / a uniformly random non-special id / kept with the given
  probabilities. Same law as `mask_tokens`, different draws: the generator is consumed in
  another order, so rows are not equal to a per-segment loop over the same generator.

Worked example (ids 10…; `[CLS]` = 1, `[SEP]` = 2, seq_len 5 → windows of 3):

    >>> from plmkit.data.objectives import SpecialIds
    >>> sp = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=50)
    >>> flat, lengths = segment_documents([np.array([10, 11, 12, 13]), np.array([14])], 5, sp)
    >>> flat.tolist(), lengths.tolist()
    ([1, 10, 11, 12, 2, 1, 13, 2, 1, 14, 2], [5, 3, 3])
"""

from __future__ import annotations

import numpy as np

from plmkit.data.objectives import IGNORE_INDEX, SpecialIds

# A seg_id × key matrix is never built: everything is flat, and per-segment values are looked up
# through `seg` (the segment number of every flat position).


def segment_documents(docs: list[np.ndarray], seq_len: int, specials: SpecialIds) -> tuple[np.ndarray, np.ndarray]:
    """`[CLS] window [SEP]` segments of every document, flat, and the segment lengths."""
    width = seq_len - 2
    sizes = np.fromiter((d.size for d in docs), dtype=np.int64, count=len(docs))
    n_seg = -(-sizes // width)  # a document of 0 tokens has no segment
    doc_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    # window k of document d covers tokens [k·width, min((k+1)·width, size)) of it
    seg_doc = np.repeat(np.arange(len(docs)), n_seg)
    k = np.arange(n_seg.sum()) - np.repeat(np.cumsum(n_seg) - n_seg, n_seg)
    content = np.minimum(width, sizes[seg_doc] - k * width)
    src_start = doc_start[seg_doc] + k * width
    tokens = np.concatenate(docs) if docs else np.zeros(0, np.int32)
    return wrap_windows(tokens, src_start, content, specials)


def wrap_windows(tokens: np.ndarray, start: np.ndarray, content: np.ndarray,
                 specials: SpecialIds) -> tuple[np.ndarray, np.ndarray]:
    """`[CLS] tokens[start:start+content] [SEP]` for every window, flat, and their lengths."""
    lengths = content + 2
    out_start = np.cumsum(lengths) - lengths
    out = np.empty(int(lengths.sum()), dtype=np.int32)
    out[out_start] = specials.cls
    out[out_start + lengths - 1] = specials.sep
    # body positions: out_start + 1 + j for j < content, taken from tokens[start + j]
    seg = np.repeat(np.arange(content.size), content)
    j = np.arange(int(content.sum())) - np.repeat(np.cumsum(content) - content, content)
    out[out_start[seg] + 1 + j] = tokens[start[seg] + j]
    return out, lengths


def segment_stream(docs: list[np.ndarray], seq_len: int, specials: SpecialIds) -> tuple[np.ndarray, np.ndarray]:
    """`--cross-documents`: the documents joined with a `[SEP]` after each, cut into windows.

    >>> sp = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=50)
    >>> flat, lengths = segment_stream([np.array([10, 11, 12]), np.array([13, 14])], 6, sp)
    >>> flat.tolist(), lengths.tolist()
    ([1, 10, 11, 12, 2, 2, 1, 13, 14, 2, 2], [6, 5])
    """
    if not docs:
        return np.zeros(0, np.int32), np.zeros(0, np.int64)
    stream = np.concatenate([np.append(d.astype(np.int32), np.int32(specials.sep)) for d in docs])
    return segment_documents([stream], seq_len, specials)


def mask_flat(
    ids: np.ndarray,
    lengths: np.ndarray,
    rng: np.random.Generator,
    specials: SpecialIds,
    *,
    mask_prob: float = 0.15,
    max_predictions: int | None = None,
    mask_replace: float = 0.8,
    random_replace: float = 0.1,
) -> dict[str, np.ndarray]:
    """Static masking of every segment of a flat block: `input_ids`, `labels`, `special_tokens_mask`."""
    special = specials.is_special(ids)
    seg = np.repeat(np.arange(lengths.size), lengths)
    seg_start = np.cumsum(lengths) - lengths
    maskable = np.bincount(seg, weights=~special, minlength=lengths.size).astype(np.int64)
    budget = masked_counts(maskable, mask_prob, max_predictions)
    # Uniform subset of `budget` maskable positions per segment: the smallest random keys. One
    # sort of `segment + key` (keys in [0, ½), special positions ¾) orders by segment, then key.
    keys = seg + np.where(special, 0.75, 0.5 * rng.random(ids.size))
    order = np.argsort(keys)
    rank = np.arange(ids.size) - seg_start[seg[order]]
    chosen = np.sort(order[rank < budget[seg[order]]])
    labels = np.full(ids.size, IGNORE_INDEX, dtype=np.int32)
    labels[chosen] = ids[chosen]
    out = ids.astype(np.int32, copy=True)
    u = rng.random(chosen.size)
    out[chosen[u < mask_replace]] = specials.mask
    rand = chosen[(u >= mask_replace) & (u < mask_replace + random_replace)]
    pool = specials.nonspecial_array
    out[rand] = pool[rng.integers(pool.size, size=rand.size)]
    return {"input_ids": out, "labels": labels, "special_tokens_mask": special.astype(np.uint8)}


def masked_counts(maskable: np.ndarray, mask_prob: float, max_predictions: int | None) -> np.ndarray:
    """`objectives.mlm.masked_count` for an array of maskable counts (half-to-even rounding too).

    >>> masked_counts(np.array([10, 30, 3, 0]), 0.15, None).tolist()
    [2, 4, 1, 0]
    """
    count = np.maximum(1, np.rint(mask_prob * maskable)).astype(np.int64)
    if max_predictions is not None:
        count = np.minimum(count, max_predictions)
    return np.where(maskable > 0, np.minimum(count, maskable), 0)
