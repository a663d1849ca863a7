"""Reading `DATA/train` and `DATA/validation` for training: order, rank slicing, resumable position.

The order of an epoch is a permutation drawn from `example_rng(seed, epoch)`, so it is a pure
function of (seed, epoch) and a run resumes mid-epoch from two integers, `DataPosition(epoch,
step)`. Each optimizer step takes the next `batch_size` rows of the order and splits them
rank-major, then micro-batch-major:

    step s of an epoch, batch_size 8, 2 ranks, --grad-accum 2 (micro-batch 2):
    order[8s : 8s+8] = r0a0 r0a0 | r0a1 r0a1 | r1a0 r1a0 | r1a1 r1a1

so one process with `--grad-accum 4` sees exactly the rows that two processes with
`--grad-accum 2` see together. The last `len % batch_size` rows of an epoch's order are not
used in that epoch (a different set each epoch, since the order is reshuffled).

Shards are memory-mapped Arrow streams opened for random access (the layout
`datasets.load_from_disk` reads); rows are sliced out of their record batches, not Python
dicts, and collated in DataLoader workers when `num_workers > 0`. Nothing at start-up reads the
tokens: the memory that grows with the split is the epoch order (4 bytes a row) and
Arrow's record-batch metadata (about 3 KB a record batch); see bench/train_memory.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from plmkit.data.objectives import SpecialIds, example_rng
from plmkit.errors import PlmkitError
from plmkit.manifest import read_manifest, require_upstream

Collate = Callable[[dict, np.ndarray, int], dict]


class ShardSplit:
    """One split of a DATA directory, memory-mapped; `rows(indices)` returns numpy columns.

    The shards are opened for random access (`shards.open_shard`): only the record batches'
    headers are read at open, and each row when it is taken. A pickled split (a DataLoader
    worker started by spawn) carries its path and maps the files again.
    """

    def __init__(self, path: str | Path):
        from plmkit.data.shards import open_split

        self.path = Path(path)
        if not self.path.is_dir():
            raise PlmkitError(f"{self.path} is missing: the data directory has no {self.path.name} split",
                              hint="rebuild it with `plmkit build-data`")
        self.table = open_split(self.path, random_access=True)
        self.columns = list(self.table.column_names)
        self._batches = self.table.to_batches()
        self._starts = np.cumsum([0] + [len(b) for b in self._batches])  # first row of each batch

    def __getstate__(self) -> dict:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __len__(self) -> int:
        return self.table.num_rows

    def rows(self, indices: np.ndarray) -> dict[str, list[np.ndarray] | np.ndarray]:
        """The rows at `indices`: list columns as lists of 1-D arrays, scalar columns as one array.

        Each row is sliced out of its record batch (found by bisection) and only those rows are
        copied: a `take` on the whole table could combine its chunks first."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        which = np.searchsorted(self._starts, indices, side="right") - 1
        pieces = [self._batches[b].slice(int(i - self._starts[b]), 1) for b, i in zip(which, indices, strict=True)]
        table = pa.Table.from_batches(pieces, schema=self.table.schema)
        out = {}
        for name in self.columns:
            column = table.column(name).combine_chunks()
            if hasattr(column, "flatten"):  # a list column
                values = column.flatten().to_numpy(zero_copy_only=False)
                ends = np.cumsum(column.value_lengths().to_numpy(zero_copy_only=False))
                out[name] = np.split(values, ends[:-1]) if len(ends) else []
            else:
                out[name] = column.to_numpy(zero_copy_only=False)
        return out

    def num_tokens(self, column: str = "input_ids") -> int:
        """Total tokens in `column` over the split: last minus first list offset of each record batch.

        Two offsets a record batch, not a length per row: the split's rows stay unread (a per-row
        length array would be 4 bytes a row, and would page in every batch's offsets).
        """
        total = 0
        for chunk in self.table.column(column).chunks:
            if len(chunk):
                offsets = chunk.offsets  # a zero-copy view that honours the chunk's slice
                total += offsets[len(chunk)].as_py() - offsets[0].as_py()
        return total


@dataclass
class DataPosition:
    """Where training stands in the data: optimizer steps finished in the current epoch."""

    epoch: int = 0
    step: int = 0


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The row order of one epoch: `example_rng(seed, epoch).permutation(n)`, as int32 below 2**31 rows.

    It is the one thing training holds per row (4 bytes a row: 69 MB for 17M rows), so it is
    built in place in an int32 `arange`: `permutation(n)` is `shuffle(arange(n))`, and the swaps
    the shuffle draws do not depend on the dtype, so the order is the same at half the memory
    (an int64 permutation cast afterwards would still peak at 12 bytes a row).

    >>> order = epoch_order(1000, 3, 1)
    >>> order.dtype.name, bool((order == example_rng(3, 1).permutation(1000)).all())
    ('int32', True)
    """
    order = np.arange(n, dtype=np.int32 if n < 1 << 31 else np.int64)
    example_rng(seed, epoch).shuffle(order)
    return order


class Batches:
    """The micro-batches each optimizer step gives to one rank, from any `DataPosition` on."""

    def __init__(self, split: ShardSplit, collate: Collate, *, batch_size: int, grad_accum: int = 1,
                 rank: int = 0, world_size: int = 1, seed: int = 0, num_workers: int = 0):
        if batch_size % (world_size * grad_accum):
            raise PlmkitError(
                f"--batch-size {batch_size} is not divisible by {world_size} process(es) × --grad-accum {grad_accum}",
                hint="the global batch is split evenly over processes and micro-batches")
        if batch_size > len(split):
            raise PlmkitError(f"--batch-size {batch_size} is larger than the {len(split)} rows of {split.path}",
                              hint="lower --batch-size or build more data")
        self.split, self.collate = split, collate
        self.batch_size, self.grad_accum = batch_size, grad_accum
        self.rank, self.world_size = rank, world_size
        self.micro = batch_size // (world_size * grad_accum)
        self.seed, self.num_workers = seed, num_workers

    @property
    def steps_per_epoch(self) -> int:
        return len(self.split) // self.batch_size

    def micro_indices(self, order: np.ndarray, step: int, accum: int) -> np.ndarray:
        """Row indices of micro-batch `accum` of `step` for this rank."""
        start = step * self.batch_size + (self.rank * self.grad_accum + accum) * self.micro
        return order[start : start + self.micro]

    def __call__(self, position: DataPosition) -> Iterator[tuple[DataPosition, list[dict]]]:
        """Yield (position after the step, its micro-batches) forever, epoch after epoch."""
        epoch, step = position.epoch, position.step
        while True:
            if step >= self.steps_per_epoch:
                epoch, step = epoch + 1, 0
            micro = self._epoch(epoch, step)
            for s in range(step, self.steps_per_epoch):
                yield DataPosition(epoch, s + 1), [next(micro) for _ in range(self.grad_accum)]
            step = self.steps_per_epoch

    def _epoch(self, epoch: int, first_step: int) -> Iterator[dict]:
        items = _MicroBatches(self, epoch_order(len(self.split), self.seed, epoch), epoch, first_step)
        if self.num_workers == 0:
            return iter(items[i] for i in range(len(items)))
        # Its own generator: seeding the workers must not draw from the global one that dropout uses.
        generator = torch.Generator().manual_seed(self.seed)
        return iter(torch.utils.data.DataLoader(items, batch_size=None, num_workers=self.num_workers,
                                                prefetch_factor=4, generator=generator))


class _MicroBatches(torch.utils.data.Dataset):
    """Map-style view of one epoch's remaining micro-batches, so DataLoader workers can collate them."""

    def __init__(self, batches: Batches, order: np.ndarray, epoch: int, first_step: int):
        self.batches, self.order, self.epoch, self.first_step = batches, order, epoch, first_step

    def __len__(self) -> int:
        return (self.batches.steps_per_epoch - self.first_step) * self.batches.grad_accum

    def __getitem__(self, k: int) -> dict:
        b = self.batches
        step, accum = self.first_step + k // b.grad_accum, k % b.grad_accum
        indices = b.micro_indices(self.order, step, accum)
        return b.collate(b.split.rows(indices), indices, self.epoch)


def eval_batches(split: ShardSplit, collate: Collate, batch_size: int, rank: int = 0,
                 world_size: int = 1) -> Iterator[tuple[dict, bool]]:
    """The whole split in order as (batch, counted): this rank's share is every `world_size`-th batch.

    Every rank yields the same number of batches (FSDP needs matching forward passes); a rank
    with one fewer repeats a batch with `counted=False`. Masking uses epoch 0's generators, so
    the validation set is the same at every evaluation.
    """
    num_batches = -(-len(split) // batch_size)
    per_rank = -(-num_batches // world_size)
    for i in range(per_rank):
        b = i * world_size + rank
        counted = b < num_batches
        start = (b if counted else 0) * batch_size
        indices = np.arange(start, min(start + batch_size, len(split)))
        yield collate(split.rows(indices), indices, 0), counted


# ---- a whole DATA directory ----------------------------------------------------------------

@dataclass
class RunData:
    """A checked DATA directory: its manifest, objective, tokenizer and splits."""

    path: Path
    manifest: dict[str, Any]
    objective: str
    seq_len: int
    tokenizer: Any
    specials: SpecialIds
    train: ShardSplit
    validation: ShardSplit | None

    def split(self, name: str) -> ShardSplit:
        return {"train": self.train, "validation": self.validation}.get(name) or ShardSplit(self.path / name)


def open_data(path: str | Path, flag: str = "--data") -> RunData:
    """Read and check a DATA directory: manifest, its tokenizer (must be the one it was built with), splits."""
    from plmkit.tokenization import load_tokenizer

    path = Path(path)
    manifest = read_manifest(path, "data", flag=flag)
    tok = load_tokenizer(path / "tokenizer", flag=flag)
    require_upstream(manifest, tok.manifest, "its tokenizer/ folder was replaced",
                     "rebuild the shards with `plmkit build-data`")
    params = manifest["params"]
    validation = ShardSplit(path / "validation") if (path / "validation").is_dir() else None
    return RunData(path=path, manifest=manifest, objective=params["objective"], seq_len=int(params.get("seq_len", 0)),
                   tokenizer=tok, specials=SpecialIds.from_tokenizer(tok), train=ShardSplit(path / "train"),
                   validation=validation if validation is not None and len(validation) else None)


def check_objective(family: str, objective: str, flag: str = "--data") -> None:
    """A one-line error unless `family` trains on `objective` shards."""
    from plmkit.models import FAMILY_OBJECTIVES

    allowed = FAMILY_OBJECTIVES[family]
    if objective not in allowed:
        raise PlmkitError(f"a {family} model trains on {' or '.join(allowed)} shards, but {flag} holds {objective} shards",
                          hint=f"build data with `plmkit build-data … --objective {allowed[0]}`")
