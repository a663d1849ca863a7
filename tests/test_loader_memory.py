"""What training holds in memory per row of the shards (issue #7; figures in bench/train_memory.py).

The shards are memory-mapped; the per-row state a run keeps is the epoch order, which must be 4
bytes a row and exactly the order `Generator.permutation` gives (resumed runs and the data
position depend on it), and counting tokens for `--max-tokens` must not build a per-row array.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from plmkit.data.loader import ShardSplit, epoch_order
from plmkit.data.objectives import example_rng
from plmkit.data.shards import RowBlock, ShardWriter, objective_schema, shard_name, write_split_metadata


@pytest.mark.parametrize("n", [0, 1, 2, 7, 1000, 100_003])
@pytest.mark.parametrize(("seed", "epoch"), [(0, 0), (0, 1), (12345, 7)])
def test_epoch_order_is_the_permutation_of_the_epoch_generator_in_int32(n, seed, epoch):
    order = epoch_order(n, seed, epoch)
    assert order.dtype == np.int32
    assert order.tolist() == example_rng(seed, epoch).permutation(n).tolist()


def test_epoch_order_of_a_small_split_is_literal():
    # Pinned so that a change of algorithm (which would silently reorder every resumed run) fails here.
    assert epoch_order(10, 0, 0).tolist() == example_rng(0, 0).permutation(10).tolist()
    assert sorted(epoch_order(10, 0, 0).tolist()) == list(range(10))
    assert epoch_order(10, 0, 0).tolist() != epoch_order(10, 0, 1).tolist()


def test_epoch_order_peaks_at_4_bytes_a_row():
    # The int32 order is exactly 4n bytes; numpy reports its buffers to tracemalloc. The shuffle
    # swaps through a one-item buffer, so anything else is small objects: 64 KB of slack is plenty.
    # An int64 permutation (8n) or an int64 one cast to int32 (12n) exceeds 4n + 64 KB by ≥ 8 MB.
    n = 2_000_000
    tracemalloc.start()
    try:
        order = epoch_order(n, 3, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert order.nbytes == 4 * n
    assert peak <= 4 * n + (64 << 10), f"peak {peak:,} B for {n:,} rows"


def write_split(path, rows: list[list[int]], batch_rows: int, shard_rows: int) -> None:
    """A clm split as build-data writes it: shards of `shard_rows` rows in record batches of `batch_rows`."""
    schema = objective_schema("clm", 1000, 16)
    path.mkdir()
    starts = range(0, len(rows), shard_rows)
    names = [shard_name(i, len(starts)) for i in range(len(starts))]
    for name, start in zip(names, starts, strict=True):
        writer = ShardWriter(path / name, schema)
        shard = rows[start : start + shard_rows]
        for b in range(0, len(shard), batch_rows):
            writer.write(RowBlock.from_lists("input_ids", [np.array(r) for r in shard[b : b + batch_rows]]))
        writer.close()
    write_split_metadata(path, schema, names, "test", "train")


def test_num_tokens_sums_every_record_batch_of_every_shard(tmp_path):
    rows = [[1, 2], [3], [4, 5, 6], [7, 8, 9, 10], [11], [12, 13]]  # 13 tokens
    write_split(tmp_path / "train", rows, batch_rows=2, shard_rows=4)  # shards of 4 + 2 rows, batches of 2
    split = ShardSplit(tmp_path / "train")
    assert split.table.column("input_ids").num_chunks == 3
    assert len(split) == 6 and split.num_tokens() == 13


def test_num_tokens_counts_only_the_rows_of_a_sliced_table(tmp_path):
    # A contiguous select slices the Arrow table; its first chunk's offsets then start past 0.
    rows = [[1, 2], [3], [4, 5, 6], [7, 8, 9, 10], [11]]
    write_split(tmp_path / "train", rows, batch_rows=5, shard_rows=5)
    split = ShardSplit(tmp_path / "train")
    split.table = split.table.slice(1, 3)  # rows [3], [4, 5, 6], [7, 8, 9, 10]
    assert split.num_tokens() == 8


def test_num_tokens_allocates_nothing_per_row(tmp_path):
    # 200,000 rows of 1–3 tokens in 1,024-row record batches: a per-row length array would be
    # 800 KB of Arrow memory; two offsets a record batch allocate nothing from the pool.
    lengths = np.random.default_rng(0).integers(1, 4, size=200_000)
    rows = [[7] * int(k) for k in lengths]
    write_split(tmp_path / "train", rows, batch_rows=1024, shard_rows=100_000)
    split = ShardSplit(tmp_path / "train")
    pool = pa.proxy_memory_pool(pa.default_memory_pool())
    previous = pa.default_memory_pool()
    pa.set_memory_pool(pool)
    try:
        total = split.num_tokens()
    finally:
        pa.set_memory_pool(previous)
    assert total == int(lengths.sum())
    assert pool.max_memory() < 64 << 10, f"{pool.max_memory():,} B of Arrow memory for {len(rows):,} rows"


def test_rows_are_taken_across_shards_and_record_batches_in_the_order_asked(tmp_path):
    rows = [[1, 2], [3], [4, 5, 6], [7, 8, 9, 10], [11], [12, 13]]
    write_split(tmp_path / "train", rows, batch_rows=2, shard_rows=4)  # batches [0,1] [2,3] | [4,5]
    split = ShardSplit(tmp_path / "train")
    got = split.rows(np.array([5, 0, 3, 3, 2]))["input_ids"]
    assert [g.tolist() for g in got] == [[12, 13], [1, 2], [7, 8, 9, 10], [7, 8, 9, 10], [4, 5, 6]]
    with pytest.raises(IndexError):
        split.rows(np.array([6]))


def test_a_pickled_split_carries_its_path_not_its_rows(tmp_path):
    import pickle

    rows = [[7] * 50 for _ in range(2000)]
    write_split(tmp_path / "train", rows, batch_rows=256, shard_rows=1000)
    split = ShardSplit(tmp_path / "train")
    blob = pickle.dumps(split)
    assert len(blob) < 1000  # 100,000 tokens would be ~200 KB
    again = pickle.loads(blob)
    assert len(again) == 2000 and again.num_tokens() == 100_000
    assert again.rows(np.array([1999]))["input_ids"][0].tolist() == [7] * 50
