"""Arrow shards on disk: the schema of each objective, atomic writing, memory-mapped reading.

A split folder (`DATA/train/`, `DATA/validation/`) is laid out the way `datasets.save_to_disk`
lays out a `Dataset`, so `datasets.load_from_disk(DATA/train)` opens it:

    data-00000-of-00003.arrow …     Arrow IPC streams; schema metadata "huggingface" = the features
    dataset_info.json               {"features": …}
    state.json                      {"_data_files": [{"filename": …}, …], "_fingerprint": …, …}

Token columns use the narrowest unsigned type that holds every id of the vocabulary (uint8,
uint16 below 65,536 ids, else int32); `labels` is always int32 because it holds -100;
flags (`special_tokens_mask`, `token_type_ids`, the pair labels) are uint8; GLM positions are
uint16 when `seq_len` fits. Rows are variable length, so token columns are list columns.

Workers hand rows to the writer as a `RowBlock`: one flat numpy array per column plus the row
lengths of the list columns, which pickles cheaply and becomes an Arrow record batch without a
per-row Python loop. A `ShardWriter` writes one record batch per block, under a temporary name
that is renamed when the file is complete, so the bytes of a shard depend only on the blocks
written to it.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from plmkit.errors import PlmkitError

SPLITS = ("train", "validation")
OBJECTIVES = ("mlm", "nsp", "sop", "t5-span", "glm", "clm")


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Column:
    """One column: numpy dtype name of its values, and whether each row holds a list of them."""

    name: str
    dtype: str
    is_list: bool = True


@dataclass(frozen=True)
class Schema:
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def features(self) -> dict[str, Any]:
        """The `datasets` features, in the legacy `Sequence` spelling every datasets version reads."""
        out: dict[str, Any] = {}
        for c in self.columns:
            value = {"dtype": c.dtype, "_type": "Value"}
            out[c.name] = {"feature": value, "length": -1, "_type": "Sequence"} if c.is_list else value
        return out

    def arrow(self) -> pa.Schema:
        fields = []
        for c in self.columns:
            kind = pa.from_numpy_dtype(np.dtype(c.dtype))
            fields.append(pa.field(c.name, pa.list_(kind) if c.is_list else kind))
        meta = json.dumps({"info": {"features": self.features()}}, sort_keys=True)
        return pa.schema(fields, metadata={"huggingface": meta})

    def to_dict(self) -> dict[str, str]:
        """For manifests: {"input_ids": "list<uint16>", "sep": "int32", …}."""
        return {c.name: f"list<{c.dtype}>" if c.is_list else c.dtype for c in self.columns}


def token_dtype(vocab_size: int) -> str:
    """The narrowest integer type that holds ids 0 … vocab_size − 1.

    >>> token_dtype(200), token_dtype(30_000), token_dtype(65_536), token_dtype(65_537)
    ('uint8', 'uint16', 'uint16', 'int32')
    """
    if vocab_size <= 1 << 8:
        return "uint8"
    return "uint16" if vocab_size <= 1 << 16 else "int32"


def objective_schema(objective: str, vocab_size: int, seq_len: int, dynamic: bool = False) -> Schema:
    """The columns of an objective's shards, in order (see the data-dir contract in design.md)."""
    tok, pos = token_dtype(vocab_size), ("uint16" if seq_len < 1 << 16 else "int32")
    ids, labels, flags = Column("input_ids", tok), Column("labels", "int32"), Column("special_tokens_mask", "uint8")
    cols = {
        "mlm": [ids, flags] if dynamic else [ids, labels, flags],
        "nsp": [ids, Column("token_type_ids", "uint8"), labels, flags, Column("next_sentence_label", "uint8", False)],
        "sop": [ids, Column("token_type_ids", "uint8"), labels, flags, Column("sentence_order_label", "uint8", False)],
        "t5-span": [ids, labels],
        "glm": [ids, labels, Column("position_ids", pos), Column("block_position_ids", pos), Column("sep", "int32", False)],
        "clm": [ids],
    }[objective]
    return Schema(tuple(cols))


# --------------------------------------------------------------------------- rows


@dataclass
class RowBlock:
    """Rows in columnar form: `values[name]` is the flat array of a column (all rows one after the
    other), `lengths[name]` the row lengths of a list column.

    >>> b = RowBlock.from_rows([{"input_ids": np.array([5, 6]), "sep": 1}, {"input_ids": np.array([7]), "sep": 0}])
    >>> b.num_rows, b.values["input_ids"].tolist(), b.lengths["input_ids"].tolist(), b.values["sep"].tolist()
    (2, [5, 6, 7], [2, 1], [1, 0])
    >>> [r["input_ids"].tolist() for r in b.rows()]
    [[5, 6], [7]]
    """

    values: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    num_rows: int

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]]) -> RowBlock:
        if not rows:
            return cls({}, {}, 0)
        values, lengths = {}, {}
        for name, first in rows[0].items():
            if np.ndim(first) == 0:
                values[name] = np.asarray([r[name] for r in rows])
            else:
                parts = [np.asarray(r[name]) for r in rows]
                values[name] = np.concatenate(parts)
                lengths[name] = np.fromiter((p.size for p in parts), dtype=np.int64, count=len(parts))
        return cls(values, lengths, len(rows))

    @classmethod
    def from_lists(cls, name: str, arrays: Sequence[np.ndarray]) -> RowBlock:
        """A one-column block (e.g. CLM blocks)."""
        if not arrays:
            return cls({}, {}, 0)
        lengths = np.fromiter((a.size for a in arrays), dtype=np.int64, count=len(arrays))
        return cls({name: np.concatenate(arrays)}, {name: lengths}, len(arrays))

    @classmethod
    def concat(cls, blocks: Iterable[RowBlock]) -> RowBlock:
        blocks = [b for b in blocks if b.num_rows]
        if not blocks:
            return cls({}, {}, 0)
        values = {k: np.concatenate([b.values[k] for b in blocks]) for k in blocks[0].values}
        lengths = {k: np.concatenate([b.lengths[k] for b in blocks]) for k in blocks[0].lengths}
        return cls(values, lengths, sum(b.num_rows for b in blocks))

    def rows(self) -> Iterator[dict[str, Any]]:
        """Back to one dict per row (tests and inspection; not a hot path)."""
        offsets = {k: np.concatenate(([0], np.cumsum(v))) for k, v in self.lengths.items()}
        for i in range(self.num_rows):
            yield {k: (v[offsets[k][i] : offsets[k][i + 1]] if k in offsets else v[i]) for k, v in self.values.items()}

    def to_batch(self, schema: Schema) -> pa.RecordBatch:
        arrays = []
        for c in schema.columns:
            values = _arrow(_cast(self.values[c.name], c))
            if c.is_list:
                offsets = np.concatenate(([0], np.cumsum(self.lengths[c.name]))).astype(np.int32)
                arrays.append(pa.ListArray.from_arrays(_arrow(offsets), values))
            else:
                arrays.append(values)
        return pa.RecordBatch.from_arrays(arrays, schema=schema.arrow())


def _arrow(values: np.ndarray) -> pa.Array:
    """A numpy array as an Arrow array without a copy (and without `pa.array`, whose first call
    imports pandas to check for a Series: a second of start-up)."""
    values = np.ascontiguousarray(values)
    assert values.dtype != np.bool_, "Arrow booleans are bit-packed: cast flags to uint8 first"
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), values.size, [None, pa.py_buffer(values)])


def _cast(values: np.ndarray, column: Column) -> np.ndarray:
    """Narrow to the column's dtype; an id outside the type's range is a bug, not a user error."""
    dtype = np.dtype(column.dtype)
    if values.dtype == dtype:
        return values
    if values.size:
        info = np.iinfo(dtype)
        assert info.min <= values.min() and values.max() <= info.max, f"{column.name} out of {dtype} range"
    return values.astype(dtype)


def block_from_batch(batch: pa.RecordBatch | pa.Table, schema: Schema) -> RowBlock:
    """The inverse of `RowBlock.to_batch` (values keep the shard's narrow dtypes)."""
    values, lengths = {}, {}
    for c in schema.columns:
        col = batch.column(c.name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
        if c.is_list:
            offsets = col.offsets.to_numpy()
            values[c.name] = col.values.to_numpy()[offsets[0] : offsets[-1]]
            lengths[c.name] = np.diff(offsets).astype(np.int64)
        else:
            values[c.name] = col.to_numpy()
    return RowBlock(values, lengths, batch.num_rows)


# --------------------------------------------------------------------------- writing


class ShardWriter:
    """Writes one Arrow stream file: one record batch per `write`; renamed into place by `close`.

    Until `close` the data lives in `.NAME.tmp`, which nothing reads; `abort` removes it.
    """

    def __init__(self, path: str | os.PathLike, schema: Schema):
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._file = open(self._tmp, "wb")  # noqa: SIM115 (closed in close/abort)
        self._writer = pa.ipc.new_stream(self._file, schema.arrow())

    def write(self, block: RowBlock) -> None:
        if block.num_rows:
            self._writer.write_batch(block.to_batch(self.schema))
            self.rows += block.num_rows

    def close(self) -> int:
        """Finish the file, make it durable, rename it into place; returns its size in bytes."""
        self._writer.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)
        return self.path.stat().st_size

    def abort(self) -> None:
        try:
            self._writer.close()
        except pa.ArrowException:
            pass
        self._file.close()
        self._tmp.unlink(missing_ok=True)


def shard_name(index: int, count: int) -> str:
    """`data-00002-of-00005.arrow`, as `datasets.save_to_disk` names its files."""
    return f"data-{index:05d}-of-{count:05d}.arrow"


def write_split_metadata(split_dir: str | os.PathLike, schema: Schema, files: Sequence[str], fingerprint: str,
                         split: str) -> None:
    """`dataset_info.json` and `state.json` beside the shards, as `datasets.save_to_disk` writes them."""
    split_dir = Path(split_dir)
    info = {"citation": "", "description": "", "features": schema.features(), "homepage": "", "license": ""}
    state = {
        "_data_files": [{"filename": f} for f in files],
        "_fingerprint": fingerprint,
        "_format_columns": None,
        "_format_kwargs": {},
        "_format_type": None,
        "_output_all_columns": False,
        "_split": split,
    }
    (split_dir / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (split_dir / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_empty_shard(path: str | os.PathLike, schema: Schema) -> int:
    """A valid zero-row shard (an empty split still loads with `datasets.load_from_disk`)."""
    return ShardWriter(path, schema).close()


# --------------------------------------------------------------------------- reading


def shard_files(split_dir: str | os.PathLike) -> list[Path]:
    """The shard files of a split folder, in order, as its `state.json` lists them."""
    split_dir = Path(split_dir)
    state_path = split_dir / "state.json"
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
        names = [f["filename"] for f in state["_data_files"]]
    except FileNotFoundError as e:
        raise PlmkitError(f"{split_dir} has no state.json: it is not a finished shard folder",
                          hint="rebuild it with `plmkit build-data`") from e
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PlmkitError(f"{state_path} is unreadable ({e})", hint="rebuild the data with `plmkit build-data`") from e
    return [split_dir / n for n in names]


def open_shard(path: str | os.PathLike, random_access: bool = False) -> pa.Table:
    """One shard, memory-mapped (the record batches point into the page cache, not the heap).

    `random_access`: for training, which reads rows in a shuffled order. Arrow's own memory map
    asks the kernel to prefetch every record batch it scans, so opening a split read all of it
    from storage (4.3 GB for a 4.5 GB set); a mapping advised MADV_RANDOM fetches only the pages
    that are read (the batches' headers at open, then the rows taken).
    """
    path = Path(path)
    try:
        if not random_access:
            return pa.ipc.open_stream(pa.memory_map(str(path), "r")).read_all()
        with open(path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if hasattr(mmap, "MADV_RANDOM"):
            mapped.madvise(mmap.MADV_RANDOM)
        return pa.ipc.open_stream(pa.py_buffer(mapped)).read_all()  # the buffer keeps the map alive
    except FileNotFoundError as e:
        raise PlmkitError(f"shard {path} is missing", hint="rebuild the data with `plmkit build-data`") from e
    except (pa.ArrowInvalid, OSError, ValueError) as e:  # ValueError: mmap of an empty file
        raise PlmkitError(f"shard {path} is truncated or not an Arrow stream ({e})",
                          hint="rebuild the data with `plmkit build-data`") from e


def open_split(split_dir: str | os.PathLike, random_access: bool = False) -> pa.Table:
    """A whole split as one memory-mapped table (chunked by shard and record batch)."""
    tables = [open_shard(p, random_access) for p in shard_files(split_dir)]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def iter_blocks(split_dir: str | os.PathLike, schema: Schema) -> Iterator[RowBlock]:
    """The record batches of a split, in order, as `RowBlock`s (streaming, memory-mapped)."""
    for path in shard_files(split_dir):
        for batch in open_shard(path).to_batches():
            yield block_from_batch(batch, schema)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def open_data_split(data_dir: str | os.PathLike, split: str = "train", flag: str = "--data") -> pa.Table:
    """A split of a finished DATA/ dir, memory-mapped, after checking every shard against the
    manifest (an Arrow stream cut at a record-batch boundary would otherwise read as valid)."""
    from plmkit.manifest import read_manifest

    manifest = read_manifest(data_dir, "data", flag=flag)
    for shard in manifest["shards"][split]:
        path = Path(data_dir) / split / shard["file"]
        if not path.is_file():
            raise PlmkitError(f"{flag} {data_dir}: shard {path} is missing", hint="rebuild it with `plmkit build-data`")
        if path.stat().st_size != shard["bytes"]:
            raise PlmkitError(f"{flag} {data_dir}: shard {path} has {path.stat().st_size} bytes, the manifest says "
                              f"{shard['bytes']} (truncated or replaced)", hint="rebuild it with `plmkit build-data`")
    return open_split(Path(data_dir) / split)
