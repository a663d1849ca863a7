"""Batches for training: pad variable-length shard rows, add `attention_mask`, mask `--dynamic` MLM.

A batch is built from the rows at some dataset indices; everything random about it (dynamic
masking) comes from `example_rng(seed, epoch, index)`, so a batch depends only on which rows
it holds and the epoch — not on worker count, batch composition or resume point.

Padding per column (right-padding, to the longest row of the batch):

    input_ids                          pad id        (T5: input_ids and labels padded separately)
    labels                             -100          (never counts in a loss)
    token_type_ids, position_ids,
    block_position_ids                 0
    attention_mask (added)             1 real token, 0 padding

Scalar columns (`next_sentence_label`, `sentence_order_label`, `sep`) become (B,) tensors.
CLM shards hold only `input_ids`; the collator adds `labels` = the real tokens (the model
shifts them), so an EOS that doubles as pad still carries a label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from plmkit.data.objectives import IGNORE_INDEX, SpecialIds, example_rng
from plmkit.data.objectives.mlm import MaskSpec, mask_tokens

SCALAR_COLUMNS = ("next_sentence_label", "sentence_order_label", "sep")
PAD_ZERO = ("token_type_ids", "position_ids", "block_position_ids")


def pad_rows(rows: list[np.ndarray], value: int) -> np.ndarray:
    """Right-pad 1-D rows to the longest one.

    >>> pad_rows([np.array([5, 6, 7]), np.array([8])], 0).tolist()
    [[5, 6, 7], [8, 0, 0]]
    """
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), value, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def lengths_mask(rows: list[np.ndarray]) -> np.ndarray:
    """1 over each row's real tokens, 0 over its padding.

    >>> lengths_mask([np.array([5, 6, 7]), np.array([8])]).tolist()
    [[1, 1, 1], [1, 0, 0]]
    """
    width = max((len(r) for r in rows), default=0)
    return (np.arange(width)[None, :] < np.array([len(r) for r in rows])[:, None]).astype(np.int64)


@dataclass
class Collator:
    """Turns shard rows into model inputs for one objective.

    `mask_spec` is set for `--dynamic` MLM shards (no `labels` column): rows are masked here,
    with `seed` the training seed.
    """

    objective: str
    specials: SpecialIds
    mask_spec: MaskSpec | None = None
    seed: int = 0
    word_starts: Callable[[np.ndarray], np.ndarray] | None = None  # whole-word masking: ids -> word-start flags

    def __call__(self, rows: dict[str, list | np.ndarray], indices: np.ndarray, epoch: int) -> dict[str, torch.Tensor]:
        rows = dict(rows)
        if self.mask_spec is not None:
            rows["input_ids"], rows["labels"] = self.mask(rows["input_ids"], rows["special_tokens_mask"], indices, epoch)
        if self.objective == "clm":
            rows["labels"] = rows["input_ids"]  # padded with -100 below, by length, not by pad id
        rows.pop("special_tokens_mask", None)
        batch = {}
        for name, column in rows.items():
            if name in SCALAR_COLUMNS:
                batch[name] = np.array(column, dtype=np.int64)  # a copy: Arrow memory is read-only
            elif name == "labels":
                batch[name] = pad_rows(column, IGNORE_INDEX)
            elif name == "input_ids":
                batch[name] = pad_rows(column, self.specials.pad)
                batch["attention_mask"] = lengths_mask(column)
            else:
                assert name in PAD_ZERO, f"unexpected shard column {name!r}"
                batch[name] = pad_rows(column, 0)
        return {name: torch.from_numpy(array) for name, array in batch.items()}

    def mask(self, ids: list[np.ndarray], special: list[np.ndarray], indices: np.ndarray, epoch: int):
        """Dynamic MLM: each row masked with its own generator from (seed, epoch, row index)."""
        spec, inputs, labels = self.mask_spec, [], []
        for row, row_special, index in zip(ids, special, indices, strict=True):
            rng = example_rng(self.seed, epoch, int(index))
            starts = self.word_starts(row) if self.word_starts is not None else None  # read in context
            masked, lab = mask_tokens(row, np.asarray(row_special, dtype=bool), rng, specials=self.specials,
                                      mask_prob=spec.mask_prob, max_predictions=spec.max_predictions,
                                      mask_replace=spec.mask_replace, random_replace=spec.random_replace,
                                      word_starts=starts, ngram=spec.ngram)
            inputs.append(masked)
            labels.append(lab)
        return inputs, labels


def collator_for(data, seed: int) -> Collator:
    """The collator for a `RunData`'s objective; `--dynamic` MLM shards (no labels) are masked here."""
    mask_spec, word_starts = None, None
    if data.objective in ("mlm", "nsp", "sop") and "labels" not in data.train.columns:
        params = data.manifest["params"]
        fields = ("mask_prob", "max_predictions", "mask_replace", "random_replace", "ngram")
        mask_spec = MaskSpec(**{k: params[k] for k in fields if params.get(k) is not None})
        if params.get("whole_word"):  # as build-data's static masking: word starts read in context
            word_starts = data.tokenizer.word_start_mask
    return Collator(data.objective, data.specials, mask_spec=mask_spec, seed=seed, word_starts=word_starts)
