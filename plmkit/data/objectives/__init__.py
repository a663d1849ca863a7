"""Pretraining objectives as pure functions of token ids, parameters and an explicit random generator.

Every function here takes numpy integer arrays of token ids (never a tokenizer object), the
special ids it needs (`SpecialIds`), its parameters, and a `numpy.random.Generator`; it returns
numpy arrays (int32 for token columns) keyed by the Hugging Face column names of the shards:

    mlm      input_ids, labels, special_tokens_mask           (mlm.py)
    nsp/sop  + token_type_ids, next_sentence_label / sentence_order_label   (pairs.py)
    t5-span  input_ids, labels                                 (spans.py)
    glm      input_ids, labels, position_ids, block_position_ids, sep       (glm.py)
    clm      input_ids                                         (clm.py)

Determinism: callers derive one generator per unit of work with `example_rng(seed, *keys)`
(e.g. keys = (split, document index) when building, (epoch, example index) when masking
dynamically), so the output never depends on how the work is spread over processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IGNORE_INDEX = -100  # label value where nothing is predicted (HF / torch cross-entropy default)


def example_rng(seed: int, *keys: int) -> np.random.Generator:
    """An independent random stream for (seed, *keys), e.g. `example_rng(seed, split, doc_index)`.

    Streams for different key tuples are statistically independent (SeedSequence hashing), and
    one stream never depends on how many others were drawn before, which is what makes the
    output independent of the number of workers.

    >>> a, b = example_rng(1, 0, 7), example_rng(1, 0, 7)
    >>> bool(a.integers(1 << 30) == b.integers(1 << 30))
    True
    """
    assert all(int(k) >= 0 for k in (seed, *keys)), "seed and keys must be non-negative integers"
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), *map(int, keys)])))


def as_ids(ids) -> np.ndarray:
    """Token ids as a 1-D int32 array (the dtype every objective returns)."""
    out = np.asarray(ids, dtype=np.int32)
    assert out.ndim == 1, f"token ids must be 1-D, got shape {out.shape}"
    return out


@dataclass(frozen=True, eq=False)
class SpecialIds:
    """The special-token ids the objectives need, by role (see the tokenizer contract).

    `special_ids` lists every special id of the tokenizer (sorted); they are never selected
    for masking and never used as random replacements. `vocab_size` bounds random ids.
    """

    pad: int
    cls: int
    sep: int
    mask: int
    eos: int
    bos: int
    vocab_size: int
    sentinels: tuple[int, ...] = ()
    gmask: int = -1
    sop: int = -1
    eop: int = -1
    special_ids: tuple[int, ...] = ()
    _special: np.ndarray = field(init=False, repr=False)
    _nonspecial: np.ndarray = field(init=False, repr=False)
    _table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        named = [self.pad, self.cls, self.sep, self.mask, self.eos, self.bos, self.gmask, self.sop, self.eop]
        ids = {int(i) for i in (*named, *self.sentinels, *self.special_ids) if i >= 0}
        special = np.array(sorted(ids), dtype=np.int32)
        assert special.size == 0 or special[-1] < self.vocab_size, "special id outside the vocabulary"
        keep = np.ones(self.vocab_size, dtype=bool)
        keep[special] = False
        object.__setattr__(self, "sentinels", tuple(int(s) for s in self.sentinels))
        object.__setattr__(self, "special_ids", tuple(special.tolist()))
        object.__setattr__(self, "_special", special)
        object.__setattr__(self, "_nonspecial", np.flatnonzero(keep).astype(np.int32))
        object.__setattr__(self, "_table", ~keep)

    @classmethod
    def from_tokenizer(cls, tok) -> SpecialIds:
        """Build from a loaded plmkit tokenizer (`.roles`, `.sentinel_ids`, `.special_ids`, `.vocab_size`)."""
        r = tok.roles
        return cls(
            pad=r["pad"], cls=r["cls"], sep=r["sep"], mask=r["mask"], eos=r["eos"], bos=r["bos"],
            vocab_size=int(tok.vocab_size), sentinels=tuple(tok.sentinel_ids), gmask=r.get("gmask", -1),
            sop=r.get("sop", -1), eop=r.get("eop", -1), special_ids=tuple(int(i) for i in tok.special_ids),
        )

    @property
    def special_array(self) -> np.ndarray:
        """Sorted int32 array of every special id."""
        return self._special

    @property
    def nonspecial_array(self) -> np.ndarray:
        """Sorted int32 array of every id that random replacement may draw."""
        return self._nonspecial

    def is_special(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: True where `ids` holds a special id (the `special_tokens_mask` column)."""
        return self._table[ids]
