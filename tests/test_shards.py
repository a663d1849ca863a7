"""Specification of the shard format (plmkit.data.shards): schemas per objective, narrow dtypes,
row blocks ↔ Arrow round trips, atomic writing, and `datasets.load_from_disk` compatibility."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from plmkit.data.shards import (
    RowBlock,
    ShardWriter,
    block_from_batch,
    iter_blocks,
    objective_schema,
    open_split,
    shard_name,
    token_dtype,
    write_empty_shard,
    write_split_metadata,
)
from plmkit.errors import PlmkitError


def test_token_dtype_is_the_narrowest_that_holds_every_id():
    assert [token_dtype(v) for v in (2, 256, 257, 30_522, 65_536, 65_537, 250_000)] == \
        ["uint8", "uint8", "uint16", "uint16", "uint16", "int32", "int32"]


@pytest.mark.parametrize("objective,dynamic,columns", [
    ("mlm", False, {"input_ids": "list<uint16>", "labels": "list<int32>", "special_tokens_mask": "list<uint8>"}),
    ("mlm", True, {"input_ids": "list<uint16>", "special_tokens_mask": "list<uint8>"}),
    ("nsp", False, {"input_ids": "list<uint16>", "token_type_ids": "list<uint8>", "labels": "list<int32>",
                    "special_tokens_mask": "list<uint8>", "next_sentence_label": "uint8"}),
    ("sop", False, {"input_ids": "list<uint16>", "token_type_ids": "list<uint8>", "labels": "list<int32>",
                    "special_tokens_mask": "list<uint8>", "sentence_order_label": "uint8"}),
    ("t5-span", False, {"input_ids": "list<uint16>", "labels": "list<int32>"}),
    ("glm", False, {"input_ids": "list<uint16>", "labels": "list<int32>", "position_ids": "list<uint16>",
                    "block_position_ids": "list<uint16>", "sep": "int32"}),
    ("clm", False, {"input_ids": "list<uint16>"}),
])
def test_columns_follow_the_data_contract(objective, dynamic, columns):
    schema = objective_schema(objective, vocab_size=30_000, seq_len=512, dynamic=dynamic)
    assert schema.to_dict() == columns
    assert list(schema.to_dict()) == list(columns)  # order too


def test_large_vocabularies_and_long_sequences_widen_the_types():
    schema = objective_schema("glm", vocab_size=100_000, seq_len=70_000)
    assert schema.to_dict()["input_ids"] == "list<int32>"
    assert schema.to_dict()["position_ids"] == "list<int32>"


GLM_ROWS = [
    {"input_ids": np.array([2, 10, 4, 7, 11], np.int32), "labels": np.array([-100, -100, -100, 11, 8], np.int32),
     "position_ids": np.array([0, 1, 2, 2, 2]), "block_position_ids": np.array([0, 0, 0, 1, 2]), "sep": 3},
    {"input_ids": np.array([2, 12], np.int32), "labels": np.array([-100, -100], np.int32),
     "position_ids": np.array([0, 1]), "block_position_ids": np.array([0, 0]), "sep": 2},
]


def _same_rows(block: RowBlock, rows: list[dict]) -> bool:
    got = list(block.rows())
    return len(got) == len(rows) and all(
        np.array_equal(np.asarray(g[k]), np.asarray(r[k])) for g, r in zip(got, rows, strict=True) for k in r)


def test_row_block_round_trips_through_arrow_with_narrow_types():
    schema = objective_schema("glm", vocab_size=1000, seq_len=64)
    batch = RowBlock.from_rows(GLM_ROWS).to_batch(schema)
    assert batch.schema.field("input_ids").type == pa.list_(pa.uint16())
    assert batch.column("labels").to_pylist()[0] == [-100, -100, -100, 11, 8]  # signed, -100 intact
    assert _same_rows(block_from_batch(batch, schema), GLM_ROWS)


def test_concat_keeps_row_order():
    a, b = RowBlock.from_rows(GLM_ROWS[:1]), RowBlock.from_rows(GLM_ROWS[1:])
    assert _same_rows(RowBlock.concat([a, RowBlock.from_rows([]), b]), GLM_ROWS)


def test_writer_uses_a_temporary_name_until_closed(tmp_path):
    schema = objective_schema("clm", vocab_size=1000, seq_len=4)
    final = tmp_path / shard_name(0, 1)
    w = ShardWriter(final, schema)
    w.write(RowBlock.from_lists("input_ids", [np.array([5, 6, 7, 8])]))
    assert not final.exists() and [p.name for p in tmp_path.iterdir()] == [f".{final.name}.tmp"]
    w.close()
    assert [p.name for p in tmp_path.iterdir()] == [final.name]
    w2 = ShardWriter(tmp_path / shard_name(1, 2), schema)
    w2.abort()
    assert [p.name for p in tmp_path.iterdir()] == [final.name]


def test_split_folder_loads_with_datasets_including_an_empty_one(tmp_path):
    import datasets

    schema = objective_schema("glm", vocab_size=1000, seq_len=64)
    full, empty = tmp_path / "train", tmp_path / "validation"
    full.mkdir(), empty.mkdir()
    for i, rows in enumerate((GLM_ROWS, GLM_ROWS[:1])):
        w = ShardWriter(full / shard_name(i, 2), schema)
        w.write(RowBlock.from_rows(rows))
        w.close()
    write_split_metadata(full, schema, [shard_name(0, 2), shard_name(1, 2)], "abc", "train")
    write_empty_shard(empty / shard_name(0, 1), schema)
    write_split_metadata(empty, schema, [shard_name(0, 1)], "abc", "validation")

    ds = datasets.load_from_disk(str(full))
    assert len(ds) == 3 and ds.features["input_ids"].feature.dtype == "uint16"
    assert ds[0]["labels"] == [-100, -100, -100, 11, 8] and ds[2]["sep"] == 3
    assert len(datasets.load_from_disk(str(empty))) == 0
    assert open_split(full).num_rows == 3
    assert [b.num_rows for b in iter_blocks(full, schema)] == [2, 1]


def test_truncated_or_missing_shards_are_one_line_errors(tmp_path):
    schema = objective_schema("clm", vocab_size=1000, seq_len=4)
    w = ShardWriter(tmp_path / shard_name(0, 1), schema)
    w.write(RowBlock.from_lists("input_ids", [np.arange(4)] * 100))
    w.close()
    write_split_metadata(tmp_path, schema, [shard_name(0, 1)], "abc", "train")
    data = (tmp_path / shard_name(0, 1)).read_bytes()
    (tmp_path / shard_name(0, 1)).write_bytes(data[: len(data) // 2])
    with pytest.raises(PlmkitError, match="truncated"):
        open_split(tmp_path)
    (tmp_path / shard_name(0, 1)).unlink()
    with pytest.raises(PlmkitError, match="missing"):
        open_split(tmp_path)
    (tmp_path / "state.json").unlink()
    with pytest.raises(PlmkitError, match="no state.json"):
        open_split(tmp_path)


@pytest.mark.parametrize("module", ["plmkit.data.shards", "plmkit.data.batched", "plmkit.data.params",
                                    "plmkit.data.build", "plmkit.data.work"])
def test_docstring_examples_hold(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0
