"""Sentence-pair objectives: next-sentence prediction (BERT) and sentence-order prediction (ALBERT).

Both port google-research/bert `create_instances_from_document` (data-objectives.md §1.2–1.3,
§3.2) over one document given as a list of sentence token arrays:

* `max_num_tokens = seq_len - 3`; a target length, `max_num_tokens` or, with probability
  `short_seq_prob`, U[2, max_num_tokens], drawn once per document as in the reference;
* sentences accumulate into a chunk until it reaches the target (or the document ends); A is
  the first `a_end ~ U[1, len(chunk) - 1]` sentences;
* NSP: B is random (label 1) when the chunk has one sentence or with probability
  `random_next_prob`: sentences from another document, from a random start until B reaches
  `target - len(A)`; the chunk's unused sentences are put back. Otherwise B is the rest of the
  chunk (label 0 = B follows A);
* SOP: B is always the rest of the chunk, and A/B are swapped with probability `swap_prob`
  (label 1 = swapped, 0 = original order);
* `truncate_pair` trims the longer side (ties: B), from the front or the back at random,
  until both fit in `max_num_tokens`.

Deviations (documented choices):

* Where the other document comes from. Randomness that reaches other documents must not depend
  on how the corpus is split over workers, so the caller passes `sample_other(rng) -> sentences`.
  The build pipeline cuts each split into fixed-size chunks of consecutive documents (the chunk
  size does not depend on the worker count) and uses `other_document_sampler(chunk, i)`: a
  document drawn uniformly from the *other* documents of the same chunk, with the example's
  own generator. The reference's "retry 10 times, then use the same document" (which mislabels
  negatives) is replaced by excluding the current document outright.
* When no other document exists (`sample_other` is None or returns nothing), the random branch
  is not taken: a chunk of ≥ 2 sentences gives a true continuation (label 0).
* A chunk of a single sentence needs a second segment. NSP takes a random B (as the reference)
  when another document exists; SOP never uses another document (the reference does, albert#234),
  and neither does NSP without one: the sentence is split at a random token boundary into A and B
  (a true continuation), then SOP swaps as usual. A single-token chunk cannot form a pair and
  yields no example.

Columns: `input_ids` = `[CLS] A [SEP] B [SEP]`, `token_type_ids` (0 for `[CLS]`, A and the first
`[SEP]`; 1 after), `special_tokens_mask`, MLM `labels`, and the label column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from plmkit.data.objectives import SpecialIds, as_ids
from plmkit.data.objectives.mlm import MaskSpec
from plmkit.errors import check

Sentences = Sequence[np.ndarray]
OtherSampler = Callable[[np.random.Generator], "Sentences | None"]


def trim_counts(len_a: int, len_b: int, max_tokens: int) -> tuple[int, int]:
    """Tokens `truncate_seq_pair` removes from A and from B (the side choice is deterministic).

    The reference trims the longer side one token at a time (ties → B): first the longer side
    down to the shorter, then the two alternately.

    >>> trim_counts(10, 4, 12), trim_counts(6, 6, 9), trim_counts(3, 3, 6)
    ((2, 0), (1, 2), (0, 0))
    """
    excess = max(0, len_a + len_b - max_tokens)
    if len_a > len_b:  # A is trimmed until equal, then B, A, B, …
        first = min(len_a - len_b, excess)
        rest = excess - first
        return first + rest // 2, (rest + 1) // 2
    first = min(len_b - len_a + 1, excess)  # B is trimmed until one shorter than A, then A, B, …
    rest = excess - first
    return (rest + 1) // 2, first + rest // 2


def truncate_pair(a: np.ndarray, b: np.ndarray, max_tokens: int, rng: np.random.Generator):
    """BERT's `truncate_seq_pair`: each removed token comes off the front or the back with p = ½.

    The number of front removals on a side is Binomial(removals, ½): the same distribution as
    the reference's one coin per removed token, without a per-token loop.
    """
    ra, rb = trim_counts(a.size, b.size, max_tokens)
    fa, fb = (int(rng.binomial(r, 0.5)) if r else 0 for r in (ra, rb))
    return a[fa : a.size - (ra - fa)], b[fb : b.size - (rb - fb)]


def other_document_sampler(documents: Sequence[Sentences], index: int) -> OtherSampler | None:
    """`sample_other` drawing uniformly among the documents of `documents` other than `index`.

    `documents` is the fixed-size chunk of the split that holds document `index`; documents with
    no sentences are never drawn. None when the chunk has no other usable document.
    """
    others = [j for j, doc in enumerate(documents) if j != index and any(len(s) for s in doc)]
    if not others:
        return None
    return lambda rng: documents[others[int(rng.integers(len(others)))]]


def _random_b(other: Sentences, target_b: int, rng: np.random.Generator) -> np.ndarray:
    """Sentences of `other` from a random start until at least `target_b` tokens (≥ 1 sentence)."""
    other = [s for s in other if len(s)]
    start = int(rng.integers(len(other)))
    taken, total = [], 0
    for sent in other[start:]:
        taken.append(sent)
        total += len(sent)
        if total >= target_b:
            break
    return np.concatenate(taken)


def _split_single(sentence: np.ndarray, rng: np.random.Generator):
    """A one-sentence chunk cut at a random token boundary (None when it has one token)."""
    if sentence.size < 2:
        return None
    cut = int(rng.integers(1, sentence.size))
    return sentence[:cut], sentence[cut:]


def _chunk_pair(chunk, target, rng, task, sample_other, prob):
    """(A, B, label, put_back) for one chunk, per the module docstring."""
    a_end = 1 if len(chunk) == 1 else int(rng.integers(1, len(chunk)))
    a = np.concatenate(chunk[:a_end])
    if task == "nsp" and sample_other is not None and (len(chunk) == 1 or rng.random() < prob):
        other = sample_other(rng)
        if other is not None and any(len(s) for s in other):
            return a, _random_b(other, target - a.size, rng), 1, len(chunk) - a_end
    if len(chunk) == 1:
        split = _split_single(chunk[0], rng)
        if split is None:
            return None
        a, b = split
    else:
        b = np.concatenate(chunk[a_end:])
    if task == "sop" and rng.random() < prob:
        return b, a, 1, 0
    return a, b, 0, 0


def sentence_pairs(
    sentences: Sentences,
    rng: np.random.Generator,
    *,
    max_num_tokens: int,
    task: str = "nsp",
    short_seq_prob: float = 0.1,
    prob: float = 0.5,
    sample_other: OtherSampler | None = None,
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """All (A, B, label) pairs of one document, already truncated to `max_num_tokens` together.

    `task` is "nsp" (`prob` = chance of a random B) or "sop" (`prob` = chance of a swap).
    """
    assert task in ("nsp", "sop") and max_num_tokens >= 2
    doc = [as_ids(s) for s in sentences if len(s)]
    target = max_num_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_num_tokens + 1))
    pairs, chunk, length, i = [], [], 0, 0
    while i < len(doc):
        chunk.append(doc[i])
        length += doc[i].size
        if i == len(doc) - 1 or length >= target:
            made = _chunk_pair(chunk, target, rng, task, sample_other, prob)
            if made is not None:
                a, b, label, put_back = made
                i -= put_back  # unused sentences start the next chunk
                pairs.append((*truncate_pair(a, b, max_num_tokens, rng), label))
            chunk, length = [], 0
        i += 1
    return pairs


def pack_pair(a, b, specials: SpecialIds) -> dict[str, np.ndarray]:
    """`[CLS] A [SEP] B [SEP]` with `token_type_ids` and `special_tokens_mask`.

    >>> sp = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=50)
    >>> {k: v.tolist() for k, v in pack_pair([7, 8], [9], sp).items()}
    {'input_ids': [1, 7, 8, 2, 9, 2], 'token_type_ids': [0, 0, 0, 0, 1, 1], 'special_tokens_mask': [1, 0, 0, 1, 0, 1]}
    """
    a, b = as_ids(a), as_ids(b)
    ids = np.concatenate(([specials.cls], a, [specials.sep], b, [specials.sep])).astype(np.int32)
    types = np.zeros(ids.size, dtype=np.int8)
    types[a.size + 2 :] = 1
    return {"input_ids": ids, "token_type_ids": types, "special_tokens_mask": specials.is_special(ids).astype(np.int8)}


def _pair_examples(sentences, rng, task, label_key, seq_len, specials, spec, word_start_table, **kw):
    check(seq_len >= 5, f"--seq-len must be at least 5 for {task} ([CLS] A [SEP] B [SEP]), got {seq_len}")
    rows = []
    for a, b, label in sentence_pairs(sentences, rng, max_num_tokens=seq_len - 3, task=task, **kw):
        row = pack_pair(a, b, specials)
        special = row["special_tokens_mask"].astype(bool)
        row["input_ids"], row["labels"] = spec.apply(row["input_ids"], special, rng, specials, word_start_table)
        row[label_key] = label
        rows.append(row)
    return rows


def nsp_examples(
    sentences: Sentences,
    rng: np.random.Generator,
    *,
    seq_len: int,
    specials: SpecialIds,
    sample_other: OtherSampler | None = None,
    short_seq_prob: float = 0.1,
    random_next_prob: float = 0.5,
    spec: MaskSpec = MaskSpec(),
    word_start_table: np.ndarray | None = None,
) -> list[dict]:
    """BERT rows of one document: `input_ids, token_type_ids, special_tokens_mask, labels,
    next_sentence_label` (an int; 0 = B follows A, 1 = B is random)."""
    return _pair_examples(
        sentences, rng, "nsp", "next_sentence_label", seq_len, specials, spec, word_start_table,
        short_seq_prob=short_seq_prob, prob=random_next_prob, sample_other=sample_other,
    )


def sop_examples(
    sentences: Sentences,
    rng: np.random.Generator,
    *,
    seq_len: int,
    specials: SpecialIds,
    short_seq_prob: float = 0.1,
    swap_prob: float = 0.5,
    spec: MaskSpec = MaskSpec(ngram=3),
    word_start_table: np.ndarray | None = None,
) -> list[dict]:
    """ALBERT rows of one document: `input_ids, token_type_ids, special_tokens_mask, labels,
    sentence_order_label` (an int; 0 = original order, 1 = swapped)."""
    return _pair_examples(
        sentences, rng, "sop", "sentence_order_label", seq_len, specials, spec, word_start_table,
        short_seq_prob=short_seq_prob, prob=swap_prob,
    )
