"""Causal-LM token streams: documents joined with EOS and cut into blocks of exactly `seq_len`.

The stream of a split is, for each document in order, `[BOS] doc EOS` (BOS only with `bos=True`).
It is cut into consecutive, non-overlapping blocks of exactly `seq_len` tokens; the final
remainder is kept as a shorter block unless `drop_remainder` (then `BlockPacker.dropped` says how
many tokens were lost, for the summary). Concatenating the blocks in order gives the stream back.

    >>> sp = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=20)
    >>> [b.tolist() for b in pack_documents([[5, 6, 7], [8, 9]], 4, sp)]
    [[5, 6, 7, 2], [8, 9, 2]]
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from plmkit.data.objectives import SpecialIds, as_ids


class BlockPacker:
    """Cuts a stream of token arrays into blocks of exactly `block_len`, carrying the remainder.

    `add` returns the blocks completed by the new tokens (possibly none); `finish` returns the
    final shorter block, if any. Work per call is linear in the tokens added.

    >>> p = BlockPacker(3)
    >>> [b.tolist() for b in p.add([1, 2])], [b.tolist() for b in p.add([3, 4, 5, 6, 7])], p.pending
    ([], [[1, 2, 3], [4, 5, 6]], 1)
    >>> [b.tolist() for b in p.finish()]
    [[7]]
    """

    def __init__(self, block_len: int):
        assert block_len >= 1, "block length must be positive"
        self.block_len = block_len
        self.dropped = 0  # tokens discarded by finish(drop_remainder=True)
        self._parts: list[np.ndarray] = []
        self._count = 0

    @property
    def pending(self) -> int:
        """Tokens waiting for the next block."""
        return self._count

    def add(self, tokens) -> list[np.ndarray]:
        tokens = as_ids(tokens)
        if self._count + tokens.size < self.block_len:
            if tokens.size:
                self._parts.append(tokens)
                self._count += tokens.size
            return []
        stream = np.concatenate([*self._parts, tokens])
        n_full = stream.size // self.block_len
        cut = n_full * self.block_len
        rest = stream[cut:]
        self._parts, self._count = ([rest] if rest.size else []), rest.size
        return list(stream[:cut].reshape(n_full, self.block_len))

    def finish(self, drop_remainder: bool = False) -> list[np.ndarray]:
        rest = np.concatenate(self._parts) if self._parts else np.zeros(0, np.int32)
        self._parts, self._count = [], 0
        if drop_remainder:
            self.dropped += rest.size
            return []
        return [rest] if rest.size else []


def clm_document(doc, specials: SpecialIds, bos: bool = False) -> np.ndarray:
    """One document's share of the stream: `[BOS] doc EOS`."""
    head = [specials.bos] if bos else []
    return np.concatenate([np.asarray(head, np.int32), as_ids(doc), np.asarray([specials.eos], np.int32)])


class ClmPacker:
    """Streaming CLM packer: feed documents in order, get `{"input_ids": block}` rows."""

    def __init__(self, seq_len: int, specials: SpecialIds, bos: bool = False):
        self.specials, self.bos = specials, bos
        self.packer = BlockPacker(seq_len)

    def add(self, doc) -> list[dict[str, np.ndarray]]:
        return [{"input_ids": b} for b in self.packer.add(clm_document(doc, self.specials, self.bos))]

    def finish(self, drop_remainder: bool = False) -> list[dict[str, np.ndarray]]:
        return [{"input_ids": b} for b in self.packer.finish(drop_remainder)]

    @property
    def dropped(self) -> int:
        return self.packer.dropped


def pack_documents(
    docs: Iterable, seq_len: int, specials: SpecialIds, bos: bool = False, drop_remainder: bool = False
) -> list[np.ndarray]:
    """All blocks of `docs` at once (the streaming `ClmPacker` does the same incrementally)."""
    packer = ClmPacker(seq_len, specials, bos)
    rows = [row for doc in docs for row in packer.add(doc)] + packer.finish(drop_remainder)
    return [row["input_ids"] for row in rows]
