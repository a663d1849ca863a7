"""Documents from corpus files, streamed in a fixed order; sentence splitting.

Sources (`resolve_sources`), expanded in the order given:
- a file; a glob (`data/*.jsonl`, `**` recurses); a folder, walked recursively with the
  entries of every level sorted by name, hidden files and folders (`.name`) skipped and
  symlinked folders not followed;
- a Hugging Face dataset saved with `save_to_disk` (a folder holding `state.json` and
  `dataset_info.json`; a `DatasetDict` folder reads its `train` split, pass `DIR/SPLIT` for
  another one), also when met inside a folder walk;
- `hf:NAME[:CONFIG][:SPLIT]`: a dataset on the Hugging Face hub, streamed (split `train` by
  default). It needs the network; with `HF_HUB_OFFLINE=1` it is refused up front.

Formats, by extension and then by content (magic bytes win over a missing extension):
plain text (documents separated by blank lines, or one per line with `doc_per_line`);
`.jsonl`/`.ndjson`/`.json` JSON Lines, one object per line, text in `text_field`;
`.parquet` (read one record batch at a time); any of the text formats compressed with gzip
(`.gz`) or zstd (`.zst`, needs the `zstandard` package).

Every document is normalised the same way: CRLF and lone CR become LF, U+FEFF (a byte-order
mark) is removed, trailing whitespace is stripped from every line (leading whitespace is
content: indentation), blank lines at either end are dropped, and empty documents are skipped.

Memory stays bounded: files are read in 64 KiB chunks, Parquet and Arrow in batches of 1024
rows, so memory holds one chunk plus the current document. A plain-text "document" that grows
past `MAX_DOCUMENT_BYTES` is refused (it usually means a file with one document per line was
read without `--doc-per-line`).

Bad input is a `PlmkitError` naming the file and the fix: a missing path, a file that looks
binary (a NUL byte in the first 8 KiB together with invalid UTF-8 or more than 1% and 8
control bytes; UTF-16 text counts as binary), invalid UTF-8 (with the byte offset of the
first bad byte; with `encoding_errors="replace"` bad bytes decode to U+FFFD), a NUL byte
inside otherwise-text (an error with its offset, never silently dropped; `"replace"` turns it
into U+FFFD too), an empty file or a source with no documents. Empty and binary files are
refused by `resolve_sources`, before anything is read; the other checks happen as the bytes
stream by. Offsets in compressed files count decompressed bytes.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import hashlib
import itertools
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from plmkit.errors import PlmkitError
from plmkit.manifest import describe_file
from plmkit.progress import NULL, Progress

CHUNK_BYTES = 1 << 16  # 64 KiB: as fast as 1 MiB (faster, in cache) and 1/16 of the memory
SNIFF_BYTES = 8192
BATCH_ROWS = 1024
MAX_DOCUMENT_BYTES = 64 << 20

_COMPRESSION_EXT = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}
_FORMAT_EXT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"PAR1": "parquet"}
# C0 control bytes other than tab, LF, VT, FF, CR: rare in text, common in binary formats.
_CONTROL = bytes([*range(0, 9), *range(14, 32)])
_ENCODING_ERRORS = ("strict", "replace")


@dataclass(frozen=True)
class Source:
    """One resolved corpus source. `path` is a file, a saved dataset folder, or a hub name."""

    path: str
    format: str  # "text" | "jsonl" | "parquet" | "hf-disk" | "hf-hub"
    compression: str | None = None  # "gzip" | "zstd"
    config: str | None = None  # hf-hub only
    split: str | None = None  # hf-hub and DatasetDict folders
    size: int | None = None  # bytes on disk (None for hf-hub)

    @property
    def name(self) -> str:
        """How errors and manifests refer to the source."""
        if self.format == "hf-hub":
            return "hf:" + ":".join(p or "" for p in (self.path, self.config, self.split)).rstrip(":")
        return self.path


# --------------------------------------------------------------------------- resolving


def resolve_sources(sources: Sequence[str | os.PathLike | Source]) -> list[Source]:
    """Expand files, globs, folders and `hf:` names into `Source`s, in a deterministic order.

    Sources keep the order given; a glob or folder expands to its files sorted by path
    component by component ("a/b/y.txt" < "a/z.txt" < "a.txt"), the order of a walk that sorts
    every folder by name. A file named twice is read twice.
    """
    if not sources:
        raise PlmkitError("no corpus given", hint="pass one or more files, globs or folders, e.g. corpora/")
    out: list[Source] = []
    for src in sources:
        if isinstance(src, Source):
            out.append(src)
        elif str(src).startswith("hf:"):
            out.append(_hub_source(str(src)))
        else:
            out.extend(_expand_path(str(src)))
    return out


def _hub_source(spec: str) -> Source:
    parts = spec[3:].split(":")
    if not parts[0] or len(parts) > 3:
        raise PlmkitError(f"corpus source {spec!r} is not of the form hf:NAME[:CONFIG][:SPLIT]",
                          hint="e.g. hf:wikitext:wikitext-2-raw-v1:train")
    name, config, split = (parts + [None, None])[:3]
    return Source(name, "hf-hub", config=config or None, split=split or "train")


def _expand_path(spec: str) -> list[Source]:
    p = Path(spec)
    if p.is_dir():
        ds = _saved_dataset(p)
        if ds is not None:
            return [ds]
        found = list(_walk(p))
        if not found:
            raise PlmkitError(f"corpus folder {spec} contains no files (hidden files are skipped)",
                              hint="check the path")
        return found
    if p.is_file():
        return [_file_source(p)]
    if glob.has_magic(spec):
        matches = sorted(glob.glob(spec, recursive=True), key=lambda m: Path(m).parts)  # the folder walk's order
        if not matches:
            raise PlmkitError(f"no file matches the corpus pattern {spec!r}", hint="check the pattern and the current directory")
        return [s for m in matches for s in _expand_path(m)]
    raise PlmkitError(f"corpus path {spec} does not exist", hint="check the path")


def _walk(folder: Path) -> Iterator[Source]:
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            ds = _saved_dataset(path)
            if ds is not None:
                yield ds
            else:
                yield from _walk(path)
        elif entry.is_file():
            yield _file_source(path)


def _saved_dataset(folder: Path) -> Source | None:
    """A `save_to_disk` folder as a Source (a DatasetDict resolves to its train split)."""
    if (folder / "state.json").is_file() and (folder / "dataset_info.json").is_file():
        return Source(str(folder), "hf-disk", size=sum(f.stat().st_size for f in _arrow_files(folder)))
    if (folder / "dataset_dict.json").is_file():
        splits = _dict_splits(folder)
        if "train" not in splits:
            raise PlmkitError(f"saved dataset {folder} has no train split (splits: {', '.join(splits)})",
                              hint=f"pass the split folder instead, e.g. {folder / splits[0]}" if splits else None)
        ds = _saved_dataset(folder / "train")
        assert ds is not None, folder
        return Source(ds.path, "hf-disk", split="train", size=ds.size)
    return None


def _dict_splits(folder: Path) -> list[str]:
    try:
        return list(json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PlmkitError(f"{folder / 'dataset_dict.json'} is unreadable ({e})",
                          hint="save the dataset again with DatasetDict.save_to_disk") from e


def _arrow_files(folder: Path) -> list[Path]:
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        return [folder / f["filename"] for f in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise PlmkitError(f"{folder / 'state.json'} is unreadable ({e})",
                          hint="save the dataset again with Dataset.save_to_disk") from e


def _file_source(path: Path) -> Source:
    """Format and compression from the extension, corrected by the file's first bytes.

    Empty and binary files are refused here, before any document is read.
    """
    suffixes = [s.lower() for s in path.suffixes]
    compression = _COMPRESSION_EXT.get(suffixes[-1]) if suffixes else None
    inner = suffixes[:-1] if compression else suffixes  # "a.jsonl.gz" -> [".jsonl"]
    fmt = _FORMAT_EXT.get(inner[-1], "text") if inner else "text"
    head = _read_head(path)
    magic = next((kind for m, kind in _MAGIC.items() if head.startswith(m)), None)
    if compression and magic != compression:
        raise PlmkitError(f"{path} has the extension {suffixes[-1]} but is not {compression}-compressed",
                          hint="rename it or recompress it")
    source = Source(str(path), "parquet" if magic == "parquet" else fmt,
                    compression=magic if magic in ("gzip", "zstd") else None, size=path.stat().st_size)
    if not head:
        raise PlmkitError(f"corpus file {path} is empty", hint="remove it from the corpus")
    if magic is None:
        _refuse_binary(head, source)
    return source


def _read_head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError as e:
        raise PlmkitError(f"cannot read corpus file {path}: {e.strerror}", hint="check its permissions") from e


# --------------------------------------------------------------------------- reading


def iter_documents(
    sources: Sequence[str | os.PathLike | Source],
    doc_per_line: bool = False,
    text_field: str = "text",
    encoding_errors: str = "strict",
    progress: Progress = NULL,
) -> Iterator[str]:
    """Stream the documents of `sources`, source after source, in a deterministic order.

    Sources are resolved (and missing, empty or binary files refused) when this is called;
    the documents are read as the returned iterator is consumed.

    `progress.update(advance=n)` is called with bytes of the on-disk sources consumed (a
    caller may `progress.start(..., total=sum(s.size for s in resolve_sources(...)))`).

    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = f.write_bytes(b"\\xef\\xbb\\xbfOne.\\r\\nStill one.  \\r\\n\\r\\nTwo.\\r\\n")
    >>> list(iter_documents([f]))
    ['One.\\nStill one.', 'Two.']
    """
    if encoding_errors not in _ENCODING_ERRORS:
        raise PlmkitError(f"--encoding-errors must be one of {', '.join(_ENCODING_ERRORS)}, got {encoding_errors!r}")
    return _documents(resolve_sources(sources), doc_per_line, text_field, encoding_errors, progress)


def _documents(resolved: list[Source], doc_per_line: bool, text_field: str, encoding_errors: str,
               progress: Progress) -> Iterator[str]:
    # Lists of documents flattened in C: no Python frame per document on the way out.
    return itertools.chain.from_iterable(_batches(resolved, doc_per_line, text_field, encoding_errors, progress))


def _batches(resolved: list[Source], doc_per_line: bool, text_field: str, encoding_errors: str,
             progress: Progress) -> Iterator[list[str]]:
    for source in resolved:
        count = 0
        for batch in _source_batches(source, doc_per_line, text_field, encoding_errors, progress):
            count += len(batch)
            yield batch
        if count == 0:
            raise PlmkitError(f"corpus source {source.name} contains no documents (only blank text)",
                              hint="remove it from the corpus or check --text-field")


def _source_batches(source: Source, doc_per_line: bool, field: str, errors: str,
                    progress: Progress) -> Iterator[list[str]]:
    """Lists of consecutive documents: one per text block; one per document for the other formats."""
    if source.format == "text":
        blocks = _text_blocks(source, errors, progress)
        yield from (_line_batches(blocks) if doc_per_line else _block_batches(blocks, source))
        return
    if source.format == "jsonl":
        docs = _jsonl_documents(source, field, errors, progress)
    elif source.format == "parquet":
        docs = _parquet_documents(source, field, errors, progress)
    elif source.format == "hf-disk":
        docs = _hf_disk_documents(source, field, errors, progress)
    else:
        docs = _hf_hub_documents(source, field, errors)
    yield from ([doc] for doc in docs)


# A line that ends in whitespace (Python's `\s` is `str.isspace`, what `str.rstrip` strips). The
# literal LF first lets the regex engine jump from line end to line end: 12 ms for 20 MB of
# English, where a regex that strips (`[^\S\n]+(?=\n)`) tries every space between words (250 ms).
_TRAILING_SPACE = re.compile(r"\n(?<=[^\S\n]\n)")
_BLANK_LINES = re.compile(r"\n\n+")


def _strip_lines(block: str) -> str:
    """`block` (whole lines, each ending in LF) with trailing whitespace removed from every line.

    >>> _strip_lines("a \\t\\n \\n b\\u2028\\n")
    'a\\n\\n b\\n'
    """
    if _TRAILING_SPACE.search(block) is None:  # most blocks of most corpora: nothing to strip
        return block
    return "\n".join(map(str.rstrip, block.split("\n")))


def _line_batches(blocks: Iterable[str]) -> Iterator[list[str]]:
    """`--doc-per-line`: every non-blank line is a document."""
    for block in blocks:
        yield list(filter(None, _strip_lines(block).split("\n")))


def _block_batches(blocks: Iterable[str], source: Source) -> Iterator[list[str]]:
    """Documents are runs of non-blank lines (whitespace-only lines count as blank); a list per block.

    Once its lines are stripped, a block's blank lines are its runs of two or more LFs, or LFs
    at its start (the line end before them closed the previous block). The documents are the
    pieces between them (never empty, no LF at either end: the runs are maximal); the last
    piece waits in `carry`, as the next block may continue it.

    >>> list(_block_batches(["a\\nb  \\n\\n\\nc\\n", "d\\n", "\\n\\te\\n"], Source("x", "text")))
    [['a\\nb'], ['c\\nd'], ['\\te']]
    """
    carry: list[str] = []  # the pieces of the unfinished last document
    size = 0  # its characters other than "\n" (the line-by-line definition counts those)
    for block in blocks:
        text = _strip_lines(block)
        if text.startswith("\n"):  # the carried document ends at the seam
            pieces = ["", *_BLANK_LINES.split(text.lstrip("\n"))]
        else:
            pieces = _BLANK_LINES.split(text)
        carry.append(pieces[0])
        size += len(pieces[0]) - pieces[0].count("\n")
        if size > MAX_DOCUMENT_BYTES:
            raise _runaway(source)
        if len(pieces) == 1:
            continue
        first = "".join(carry).strip("\n")  # "" when the document ended with the previous block
        docs = [first, *pieces[1:-1]] if first else pieces[1:-1]
        carry, size = [pieces[-1]], len(pieces[-1]) - pieces[-1].count("\n")
        if docs and max(map(len, docs)) > MAX_DOCUMENT_BYTES:
            yield from _within_limit(docs, source)
        elif docs:
            yield docs
        if size > MAX_DOCUMENT_BYTES:
            raise _runaway(source)
    last = "".join(carry).strip("\n")
    if last:
        yield [last]


def _within_limit(docs: list[str], source: Source) -> Iterator[list[str]]:
    """`docs` up to the first one over `MAX_DOCUMENT_BYTES` (not counting LFs), then its error."""
    for i, doc in enumerate(docs):
        if len(doc) - doc.count("\n") > MAX_DOCUMENT_BYTES:
            if i:
                yield docs[:i]
            raise _runaway(source)
    yield docs


def _runaway(source: Source) -> PlmkitError:
    return PlmkitError(f"{source.path}: a document (blank-line separated) grew past {MAX_DOCUMENT_BYTES >> 20} MiB",
                       hint="if the file holds one document per line, pass --doc-per-line")


def _lines(source: Source, errors: str, progress: Progress) -> Iterator[tuple[int, str]]:
    """(line number, line) of a text file; line ends removed."""
    lineno = 0
    for block in _text_blocks(source, errors, progress):
        for line in block.split("\n")[:-1]:  # [-1] is the "" after the last "\n"
            lineno += 1
            yield lineno, line


def _text_blocks(source: Source, errors: str, progress: Progress) -> Iterator[str]:
    """The decoded text of a text file in blocks of whole lines, each ending in LF (one is added
    after a last line that has no line end); CR/CRLF → LF, U+FEFF removed.

    Each chunk read is cut after its last LF, so a UTF-8 sequence (which never contains 0x0A)
    and a CRLF pair never straddle two blocks; the rest waits in `carry` for the next chunk.
    """
    with _open_bytes(source) as (stream, raw, failures):
        block = _read(stream, source, failures)
        if not block:
            raise PlmkitError(f"corpus file {source.path} is empty", hint="remove it from the corpus")
        _refuse_binary(block[:SNIFF_BYTES], source)
        offset = 3 if block.startswith(b"\xef\xbb\xbf") else 0  # decompressed bytes decoded so far
        block = block[offset:] or _read(stream, source, failures)  # (a chunk size of 3 reads the BOM alone)
        carry: list[bytes] = []  # the pieces of a line that spans chunks
        pending = seen = 0
        while block:
            cut = block.rfind(b"\n") + 1
            if cut:
                data = b"".join([*carry, block[:cut]])
                yield _decode(data, offset, source, errors)
                offset += len(data)
                carry, pending = [], 0
            carry.append(block[cut:])
            pending += len(block) - cut
            if pending > MAX_DOCUMENT_BYTES:
                raise PlmkitError(f"{source.path} has a line longer than {MAX_DOCUMENT_BYTES >> 20} MiB",
                                  hint="split the file into lines")
            now = raw.tell()
            progress.update(advance=now - seen)
            seen = now
            block = _read(stream, source, failures)
        if pending:  # the last line has no line end
            yield _decode(b"".join(carry), offset, source, errors) + "\n"


@contextlib.contextmanager
def _open_bytes(source: Source) -> Iterator[tuple[BinaryIO, BinaryIO, tuple[type[BaseException], ...]]]:
    """(decompressed stream, raw file whose `tell()` measures progress, decompression errors)."""
    try:
        raw = open(source.path, "rb")  # noqa: SIM115 (closed below)
    except OSError as e:
        raise PlmkitError(f"cannot read corpus file {source.path}: {e.strerror}", hint="check the path") from e
    with raw:
        if source.compression == "gzip":
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                yield stream, raw, (OSError, EOFError, zlib.error)
        elif source.compression == "zstd":
            zstd = _zstandard()
            with zstd.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=False) as stream:
                yield stream, raw, (OSError, zstd.ZstdError)
        else:
            yield raw, raw, (OSError,)


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as e:
        raise PlmkitError("reading .zst files needs the zstandard package", hint="pip install zstandard") from e
    return zstandard


def _read(stream: BinaryIO, source: Source, failures: tuple[type[BaseException], ...]) -> bytes:
    """Read CHUNK_BYTES (fewer only at the end); a corrupt or truncated file is a PlmkitError."""
    parts, got = [], 0
    try:
        while got < CHUNK_BYTES:
            part = stream.read(CHUNK_BYTES - got)
            if not part:
                break
            parts.append(part)
            got += len(part)
    except failures as e:
        what = f"its {source.compression} data is truncated or corrupt" if source.compression else "check the file"
        raise PlmkitError(f"cannot read corpus file {source.path}: {e}", hint=what) from e
    return b"".join(parts)


def _refuse_binary(sample: bytes, source: Source) -> None:
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PlmkitError(f"corpus file {source.path} looks binary (it is UTF-16 text)",
                          hint=f"convert it to UTF-8, e.g. iconv -f UTF-16 -t UTF-8 {source.path}")
    if b"\x00" not in sample:
        return
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    if controls > max(8, 0.01 * len(sample)) or not _utf8_prefix_ok(sample):
        raise PlmkitError(f"corpus file {source.path} looks binary ({controls} control bytes in its first "
                          f"{len(sample)} bytes)", hint="pass text, JSONL, Parquet or a saved dataset")


def _utf8_prefix_ok(sample: bytes) -> bool:
    """Valid UTF-8, allowing a character cut off at the end of the sample."""
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(sample) - 3 and e.reason == "unexpected end of data"
    return True


def _decode(data: bytes, offset: int, source: Source, errors: str) -> str:
    """Strict or replacing UTF-8; errors name the decompressed byte offset; CR/CRLF → LF."""
    nul = data.find(b"\x00")
    if nul >= 0:
        if errors == "strict":
            raise PlmkitError(f"corpus file {source.path} has a NUL byte at byte offset {offset + nul}",
                              hint="remove NUL bytes (e.g. tr -d '\\000'), or pass --encoding-errors replace")
        data = data.replace(b"\x00", "\ufffd".encode())
    try:
        text = data.decode("utf-8", errors)
    except UnicodeDecodeError as e:
        raise PlmkitError(
            f"corpus file {source.path} is not valid UTF-8: byte offset {offset + e.start} ({e.reason})",
            hint="convert it to UTF-8, or pass --encoding-errors replace to decode bad bytes as U+FFFD") from e
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\ufeff" in text:
        text = text.replace("\ufeff", "")
    return text


_JSONL_HINT = {
    False: "each line of a JSON Lines file must be one JSON object",
    True: "each line of a JSON Lines file must be one JSON object; convert a JSON array with jq -c '.[]'",
}


def _jsonl_documents(source: Source, field: str, errors: str, progress: Progress) -> Iterator[str]:
    for lineno, line in _lines(source, errors, progress):
        if not line.strip():
            continue
        where = f"{source.path} line {lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            array = lineno == 1 and line.lstrip().startswith("[")
            raise PlmkitError(f"{where} is not valid JSON ({e.msg} at column {e.colno})", hint=_JSONL_HINT[array]) from e
        if not isinstance(record, dict):
            raise PlmkitError(f"{where} is a JSON {type(record).__name__}, not an object", hint=_JSONL_HINT[lineno == 1])
        if field not in record:
            raise PlmkitError(f"{where} has no field {field!r} (fields: {', '.join(list(record)[:10])})",
                              hint="pass --text-field NAME")
        doc = _field_text(record[field], where, field, errors)
        if doc:
            yield doc


def _field_text(value: Any, where: str, field: str, errors: str) -> str:
    """A record's text, normalised like a plain-text document; None counts as empty."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PlmkitError(f"{where}: field {field!r} is a {type(value).__name__}, not text",
                          hint="pass --text-field with the name of a text field")
    if "\x00" in value:
        if errors == "strict":
            raise PlmkitError(f"{where}: field {field!r} contains a NUL character",
                              hint="remove it, or pass --encoding-errors replace")
        value = value.replace("\x00", "\ufffd")
    return normalise_text(value)


def normalise_text(text: str) -> str:
    """LF line ends, no U+FEFF, no trailing whitespace on lines, no blank lines at either end.

    >>> normalise_text("\\ufeff\\r\\n  indented \\r\\nnext\\t\\r\\n\\r\\n")
    '  indented\\nnext'
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\ufeff", "")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def _parquet_documents(source: Source, field: str, errors: str, progress: Progress) -> Iterator[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source.path)
    except (pa.ArrowException, OSError) as e:
        raise PlmkitError(f"cannot read Parquet file {source.path}: {e}", hint="check the file") from e
    _check_column(pf.schema_arrow, field, source)
    batches = (batch.column(0).to_pylist() for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[field]))
    yield from _column_documents(batches, pf.metadata.num_rows, source, field, errors, progress)


def _column_documents(batches: Iterable[list[Any]], rows: int, source: Source, field: str, errors: str,
                      progress: Progress) -> Iterator[str]:
    """Documents from batches of one text column; progress advances by each batch's share of the bytes."""
    row = 0
    for values in batches:
        progress.update(advance=(source.size or 0) * len(values) / max(rows, 1))
        for value in values:
            doc = _field_text(value, f"{source.name} row {row}", field, errors)
            row += 1
            if doc:
                yield doc


def _check_column(schema: Any, field: str, source: Source) -> None:
    import pyarrow as pa

    if field not in schema.names:
        raise PlmkitError(f"{source.name} has no column {field!r} (columns: {', '.join(schema.names[:10])})",
                          hint="pass --text-field NAME")
    kind = schema.field(field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
            or (pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type))):
        raise PlmkitError(f"{source.name}: column {field!r} holds {kind}, not text",
                          hint="pass --text-field with the name of a text column")


def _hf_disk_documents(source: Source, field: str, errors: str, progress: Progress) -> Iterator[str]:
    import datasets

    try:
        ds = datasets.load_from_disk(source.path)
    except Exception as e:  # datasets raises several unrelated types for a damaged folder
        raise PlmkitError(f"cannot load the saved dataset {source.path}: {e}", hint="save it again with save_to_disk") from e
    _check_column(ds.features.arrow_schema, field, source)
    batches = (batch[field] for batch in ds.select_columns([field]).iter(batch_size=BATCH_ROWS))
    yield from _column_documents(batches, len(ds), source, field, errors, progress)


def hub_offline() -> bool:
    """True when the environment tells Hugging Face libraries not to go online."""
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def _require_online(source: Source) -> None:
    if hub_offline():
        raise PlmkitError(f"{source.name} is on the Hugging Face hub, but this machine is offline (HF_HUB_OFFLINE is set)",
                          hint="save the dataset with save_to_disk on a machine that is online and pass that folder")


def _hf_hub_documents(source: Source, field: str, errors: str) -> Iterator[str]:
    _require_online(source)
    import datasets

    try:
        ds = datasets.load_dataset(source.path, source.config, split=source.split, streaming=True)
        for i, record in enumerate(ds):
            if field not in record:
                raise PlmkitError(f"{source.name} has no field {field!r} (fields: {', '.join(list(record)[:10])})",
                                  hint="pass --text-field NAME")
            doc = _field_text(record[field], f"{source.name} row {i}", field, errors)
            if doc:
                yield doc
    except PlmkitError:
        raise
    except Exception as e:  # network, auth, unknown name or config: all the user's to fix
        raise PlmkitError(f"cannot stream {source.name} from the Hugging Face hub: {type(e).__name__}: {e}",
                          hint="check the name, config, split and the network, or pass a folder saved with save_to_disk") from e


# --------------------------------------------------------------------------- manifests


def describe_sources(sources: Sequence[str | os.PathLike | Source]) -> list[dict[str, Any]]:
    """What a manifest records about each source: {path, bytes, sha256, format, ...}.

    A saved dataset's sha256 covers its Arrow files concatenated in order, and its stored
    `fingerprint` is kept; a hub dataset records name, config, split and the revision it is at.
    """
    out = []
    for source in resolve_sources(sources):
        if source.format == "hf-disk":
            out.append(_describe_saved(source))
        elif source.format == "hf-hub":
            out.append(_describe_hub(source))
        else:
            out.append({**describe_file(source.path), "format": source.format})
    return out


def _describe_saved(source: Source) -> dict[str, Any]:
    folder = Path(source.path)
    h = hashlib.sha256()
    for f in _arrow_files(folder):
        with open(f, "rb") as fh:
            while block := fh.read(CHUNK_BYTES):
                h.update(block)
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    return {"path": str(folder.resolve()), "bytes": source.size, "sha256": h.hexdigest(), "format": "hf-disk",
            "fingerprint": state.get("_fingerprint")}


def _describe_hub(source: Source) -> dict[str, Any]:
    _require_online(source)
    import huggingface_hub

    try:
        revision = huggingface_hub.HfApi().dataset_info(source.path).sha
    except Exception as e:  # network, auth, unknown name
        raise PlmkitError(f"cannot look up {source.name} on the Hugging Face hub: {type(e).__name__}: {e}",
                          hint="check the name and the network, or pass a folder saved with save_to_disk") from e
    return {"path": source.name, "bytes": None, "sha256": None, "format": "hf-hub",
            "hf": {"name": source.path, "config": source.config, "split": source.split, "revision": revision}}


# --------------------------------------------------------------------------- sentences

_ABBREVIATIONS = frozenset(
    "mr mrs ms mx dr prof st mt gen col lt sgt capt cmdr adm gov sen rep pres rev hon messrs mme mlle fr "
    "e.g i.e cf viz vs approx ca fig figs eq eqs vol vols pp op".split()
)


def _char_class(chars: Iterable[str]) -> str:
    """A regex character class for `chars`, consecutive code points merged into ranges."""
    points = sorted({ord(c) for c in chars})
    ranges: list[list[int]] = []
    for p in points:
        if ranges and p == ranges[-1][1] + 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    return "[" + "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges) + "]"


_OPENERS = "\"'“‘([{「『（《〈【"
_CLOSERS = "\"'”’)]}」』）》〉】"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Upper- and title-case letters of the BMP (Latin, Greek, Cyrillic, ...): 7 ms to build.
_UPPER = _char_class(chr(c) for c in range(0x10000) if chr(c).isupper() or chr(c).istitle())
# Sentence ends. Chinese: a run of 。！？ (or the full-width ．, as older editions use it, when no
# digit follows; or ASCII !? before a CJK character) with its closing
# quotes/brackets, followed by anything but a comma, colon or another closer. English: a run of
# .!?… with its closers, then whitespace, opening quotes and an upper-case letter or CJK
# character. Only a lone "." (possibly an abbreviation) is checked further, in Python. The
# leading lookahead lets the regex engine skip to candidate characters (3.5x faster).
_BOUNDARY = re.compile(
    rf"(?=[.!?…。！？．])(?:"
    rf"(?:[。！？]+|．+(?![0-9０-９])|[!?]+(?=[{_CJK}]))[{re.escape(_CLOSERS)}]*(?=[^{re.escape(_CLOSERS)}，、,;；:：])"
    rf"|(?P<en>[.!?…]+)[{re.escape(_CLOSERS)}]*(?=\s+[{re.escape(_OPENERS)}]*(?:{_UPPER}|[{_CJK}])))"
)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: every line first, then English and Chinese end punctuation.

    Lines are sentences already in the bundled corpus (one sentence per line), so a line is
    never joined with the next. Within a line:
    - Chinese `。！？` (and `．` not followed by a digit) end a sentence, together with the
      closing quotes or brackets that follow them (`」』”’）》`), unless a comma or colon
      follows. `；` does not end one. Quoted speech followed by its speech tag (`“走吧！”他说。`)
      splits after the quote, as the common Chinese rule does.
    - English `.!?…` end a sentence when whitespace, any opening quotes, and then an upper-case
      letter or a CJK character follow: never inside "3.14", never before a lower-case word
      ("e.g. in"), a digit ("Fig. 2"), or after a title or an abbreviation that comes before
      names ("Dr.", "Mrs.", "St.", "U.S.", an initial "J.").

    Why our own rules and not a library: `bench/sentences.py` measured sentencex 1.0.32,
    pysbd 0.3.4 and blingfire 0.1.8 against these rules on 26 tricky English/Chinese lines and
    on 2 MB of each language (figures and caveats in its docstring). These rules get 26/26,
    sentencex 24 (it keeps "…的话。）谢谢！" together and cuts "３．１４"), pysbd 22 and blingfire
    18 (both cut closing quotes away from their sentence); pysbd runs at 1% of our speed.
    sentencex is 1-2x our speed on English and a third of it on Chinese; we split 10-35 MB/s,
    over 10x the tokenizer, so speed decides nothing. sentencex knows ~300 languages, but it is
    a compiled wheel (none for macOS on Python 3.10), keeps whole multi-sentence quotations
    as one sentence, and its splits may change between releases, which would change shards
    built from the same corpus. For English and Chinese these few rules do as well, and the
    plmkit version alone fixes the result.

    >>> split_sentences("Dr. Smith paid $3.14, e.g. for tea. “Why?” he asked.\\n他说：“好。”然后走了。")
    ['Dr. Smith paid $3.14, e.g. for tea.', '“Why?” he asked.', '他说：“好。”', '然后走了。']
    """
    sentences: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            sentences.extend(_split_line(line))
    return sentences


def _split_line(line: str) -> list[str]:
    pieces, start = [], 0
    for m in _BOUNDARY.finditer(line):
        if m.group("en") == "." and _is_abbreviation(line[max(0, m.start() - 24): m.start()]):
            continue
        piece = line[start: m.end()].strip()
        if piece:
            pieces.append(piece)
        start = m.end()
    tail = line[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


def _is_abbreviation(before: str) -> bool:
    """Does the word ending `before` (the text up to a ".") abbreviate something?

    True for "Dr", "e.g", "U.S", an initial "J"; False for "I", "p.m" (times end sentences).
    """
    parts = before.rsplit(None, 1)
    word = parts[-1].lstrip(_OPENERS) if parts else ""
    if word.lower() in _ABBREVIATIONS:
        return True
    if len(word) == 1:
        return word.isupper() and word != "I"
    return bool(re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word)) and any(c.isupper() for c in word)


__all__ = ["Source", "describe_sources", "iter_documents", "normalise_text", "resolve_sources", "split_sentences"]
