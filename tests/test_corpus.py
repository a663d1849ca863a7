"""Corpus readers: formats, order, normalisation, bad input, bounded memory; sentence splitting."""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
import tracemalloc
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

import plmkit.corpus as corpus
from plmkit.corpus import Source, describe_sources, iter_documents, resolve_sources, split_sentences
from plmkit.errors import PlmkitError
from plmkit.manifest import describe_file
from plmkit.progress import Progress


def write(path, data: bytes | str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def docs(*sources, **kw) -> list[str]:
    return list(iter_documents([str(s) for s in sources], **kw))


# --------------------------------------------------------------------------- plain text


def test_crlf_bom_and_trailing_whitespace_give_exact_documents(tmp_path):
    f = write(tmp_path / "a.txt", b"\xef\xbb\xbfFirst line.  \r\nSecond line.\t\r\n \r\n\r\n  Indented.\r\nLast")
    assert docs(f) == ["First line.\nSecond line.", "  Indented.\nLast"]


def test_lone_cr_is_a_line_end(tmp_path):
    f = write(tmp_path / "mac.txt", b"one\rtwo\r\rthree\r")
    assert docs(f) == ["one\ntwo", "three"]


def test_blank_lines_separate_documents_unless_doc_per_line(tmp_path):
    f = write(tmp_path / "a.txt", "A1\nA2\n\n\n\nB1\n   \nC1\n")
    assert docs(f) == ["A1\nA2", "B1", "C1"]
    assert docs(f, doc_per_line=True) == ["A1", "A2", "B1", "C1"]


def test_a_runaway_document_names_doc_per_line(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "MAX_DOCUMENT_BYTES", 100)
    f = write(tmp_path / "lines.txt", "".join(f"sentence number {i}\n" for i in range(20)))
    with pytest.raises(PlmkitError, match=r"lines\.txt: a document .* --doc-per-line"):
        docs(f)
    assert len(docs(f, doc_per_line=True)) == 20


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a", "é", "中", "😀", " ", "\t", "\n", "\r\n", "\r", "\n\n"]), max_size=60),
       st.integers(1, 9))
def test_chunk_boundaries_never_change_the_documents(tmp_path_factory, pieces, chunk):
    """Reading in chunks of 1..9 bytes (cutting UTF-8 sequences and CRLF pairs) equals whole-text parsing."""
    text = "".join(pieces)
    f = write(tmp_path_factory.mktemp("c") / "a.txt", "x\n" + text)  # "x" keeps the file non-empty
    expected = [b.strip("\n") for b in
                "\n".join(line.rstrip() for line in ("x\n" + text).replace("\r\n", "\n").replace("\r", "\n").split("\n"))
                .split("\n\n") if b.strip()]
    old = corpus.CHUNK_BYTES
    corpus.CHUNK_BYTES = chunk
    try:
        assert docs(f) == expected
    finally:
        corpus.CHUNK_BYTES = old


def line_by_line(lines, doc_per_line: bool, limit: int):
    """The definition of plain-text documents, one line at a time (the reader before it worked on blocks)."""
    block, size = [], 0
    for line in lines:
        line = line.rstrip()
        if doc_per_line:
            if line:
                yield line
        elif line:
            block.append(line)
            size += len(line)
            if size > limit:
                raise PlmkitError("a document grew past the limit")
        elif block:
            yield "\n".join(block)
            block, size = [], 0
    if block:
        yield "\n".join(block)


ERRORS = ("grew past", "has a line longer", "contains no documents")


def outcome(documents) -> tuple[list[str], str | None]:
    """The documents an iterator yields before it stops, and which of the reader's errors stopped it."""
    out = []
    try:
        for doc in documents:
            out.append(doc)
    except PlmkitError as e:
        return out, next(kind for kind in ERRORS if kind in str(e))
    return out, None


@contextlib.contextmanager
def patched(**values):
    """Set module constants of plmkit.corpus (hypothesis tests cannot use the monkeypatch fixture)."""
    old = {k: getattr(corpus, k) for k in values}
    for k, v in values.items():
        setattr(corpus, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(corpus, k, v)


SPACE = ["", "", " ", "\t", "\u2028", "\x85", "\x0c", "\x1c", "\u3000", "\ufeff", " \u2028"]
WORDS = st.one_of(st.text("ab 中", min_size=1, max_size=3).map(lambda w: w + "a"), st.just(""))  # half blank
LINE = st.tuples(st.sampled_from(["", " ", "\t"]), WORDS, st.sampled_from(SPACE),
                 st.sampled_from(["\n", "\n", "\n", "\r\n", "\r", "\n\n", "\n \n", "\n\x85\r\n"]))


def reads_like_line_by_line(folder, text: str, chunk: int, limit: int, bom: bool, per_line: bool) -> str | None:
    """Assert that the reader gives the documents of `line_by_line` (then the same error); returns the error."""
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    f = write(folder / "a.txt", data)
    with patched(CHUNK_BYTES=chunk, MAX_DOCUMENT_BYTES=limit):
        got = outcome(iter_documents([f], doc_per_line=per_line))
        # the same lines, streamed by the same chunked reader (so a too-long-line error comes at the same point)
        lines = (line for _, line in corpus._lines(resolve_sources([f])[0], "strict", Progress()))
        streamed = outcome(line_by_line(lines, per_line, limit))
    if streamed == ([], None):
        streamed = ([], "contains no documents")
    assert got == streamed
    if streamed[1] != "has a line longer":  # the chunked reader's own limit; otherwise the whole-text reading
        whole = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").split("\n")
        assert got[0] == outcome(line_by_line(whole, per_line, limit))[0]
    return got[1]


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=30), st.integers(1, 24), st.booleans(), st.booleans())
def test_block_reader_equals_the_line_by_line_definition(tmp_path_factory, lines, chunk, bom, per_line):
    """Same documents for any text and read-chunk size: blank and whitespace-only lines (every
    `str.isspace` character, e.g. U+2028, U+0085, U+001C at a line end), CR/CRLF, U+FEFF, BOM,
    documents spanning chunks."""
    text = "".join("".join(parts) for parts in lines)
    reads_like_line_by_line(tmp_path_factory.mktemp("r"), text, chunk, 1 << 30, bom, per_line)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text("ab", min_size=1, max_size=3), st.sampled_from(["", " ", "\u2028", "\x85"]),
                          st.sampled_from(["\n", "\n", "\n", "\n\n", "\n \n"])), min_size=1, max_size=40),
       st.integers(1, 24), st.integers(6, 9))
def test_block_reader_stops_where_the_line_by_line_definition_does(tmp_path_factory, lines, chunk, limit):
    """`MAX_DOCUMENT_BYTES`: the same documents before the same error. (Lines are at most 6 bytes,
    so the reader's own too-long-line error never comes first.)"""
    text = "".join("".join(parts) for parts in lines)
    error = reads_like_line_by_line(tmp_path_factory.mktemp("r"), text, chunk, limit, False, False)
    assert error in (None, "grew past")


def test_documents_spanning_read_chunks_and_blank_lines_at_chunk_seams(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 8)  # blocks: "one\ntwo\n" | "\n  \nthree\n" | ...
    f = write(tmp_path / "a.txt", "one\ntwo\n\n  \nthree\n\u2028\nfour\u3000\nfive six seven\n\n\n")
    assert docs(f) == ["one\ntwo", "three", "four\nfive six seven"]
    assert docs(f, doc_per_line=True) == ["one", "two", "three", "four", "five six seven"]


def test_leading_blank_lines_and_a_last_line_without_line_end(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 4)
    f = write(tmp_path / "a.txt", "\n \t\n\x1c\nfirst\n\n last \x85")
    assert docs(f) == ["first", " last"]


def test_a_bom_read_alone_in_the_first_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 3)
    assert docs(write(tmp_path / "a.txt", b"\xef\xbb\xbfab")) == ["ab"]


def test_the_runaway_error_comes_after_the_documents_before_it(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "MAX_DOCUMENT_BYTES", 10)  # counts characters, not line ends
    f = write(tmp_path / "a.txt", "ok\n\n0123\n45678\n\nfine\n\n0123456789\nX\n")
    got, error = outcome(iter_documents([f]))
    assert got == ["ok", "0123\n45678", "fine"] and error == "grew past"


# --------------------------------------------------------------------------- JSONL, Parquet, compression


def test_jsonl_reads_the_text_field_and_normalises_it(tmp_path):
    lines = [{"text": "one\r\ntwo  ", "id": 1}, {"text": None}, {"text": ""}, {"body": "x", "text": "three"}]
    f = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n\n")
    assert docs(f) == ["one\ntwo", "three"]
    g = write(tmp_path / "b.json", '{"body": "b1"}\n{"body": "b2"}\n')
    assert docs(g, text_field="body") == ["b1", "b2"]


def test_jsonl_missing_field_names_file_line_field_and_flag(tmp_path):
    f = write(tmp_path / "a.jsonl", '{"text": "ok"}\n{"content": "no text here"}\n')
    with pytest.raises(PlmkitError) as e:
        docs(f)
    assert str(e.value) == (f"{f} line 2 has no field 'text' (fields: content) (pass --text-field NAME)")


def test_jsonl_bad_lines_are_named(tmp_path):
    with pytest.raises(PlmkitError, match=r"a\.jsonl line 2 is not valid JSON"):
        docs(write(tmp_path / "a.jsonl", '{"text": "ok"}\n{"text": \n'))
    with pytest.raises(PlmkitError, match=r"line 1 is not valid JSON .*jq -c"):
        docs(write(tmp_path / "arr.json", '[{"text": "a"},\n {"text": "b"}]\n'))
    with pytest.raises(PlmkitError, match=r"line 1 is a JSON list, not an object .*jq -c"):
        docs(write(tmp_path / "l.json", '[{"text": "a"}]\n'))
    with pytest.raises(PlmkitError, match=r"line 2 is a JSON str, not an object \(each line"):
        docs(write(tmp_path / "s.jsonl", '{"text": "a"}\n"b"\n'))
    with pytest.raises(PlmkitError, match=r"line 1: field 'text' is a int, not text .*--text-field"):
        docs(write(tmp_path / "n.jsonl", '{"text": 3}\n'))


def test_parquet_is_read_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "BATCH_ROWS", 2)
    table = pa.table({"id": [1, 2, 3, 4, 5], "content": ["a\r\nb", None, "c  ", "", "d"]})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=2)
    assert docs(tmp_path / "a.parquet", text_field="content") == ["a\nb", "c", "d"]
    with pytest.raises(PlmkitError, match=r"has no column 'text' \(columns: id, content\) \(pass --text-field NAME\)"):
        docs(tmp_path / "a.parquet")
    with pytest.raises(PlmkitError, match=r"column 'id' holds int64, not text"):
        docs(tmp_path / "a.parquet", text_field="id")


def test_parquet_is_recognised_by_content(tmp_path):
    pq.write_table(pa.table({"text": ["x"]}), tmp_path / "noext")
    assert resolve_sources([str(tmp_path / "noext")])[0].format == "parquet"


def test_gzip_and_zstd_text_and_jsonl(tmp_path):
    text = b"a b\r\n\r\nc\n"
    write(tmp_path / "t.txt.gz", gzip.compress(text))
    write(tmp_path / "t.txt.zst", zstandard.ZstdCompressor().compress(text))
    write(tmp_path / "j.jsonl.gz", gzip.compress(b'{"text": "j1"}\n{"text": "j2"}\n'))
    write(tmp_path / "j.jsonl.zst", zstandard.ZstdCompressor().compress(b'{"text": "z1"}\n'))
    write(tmp_path / "gz_without_extension", gzip.compress(b"hidden gzip\n"))
    kinds = [(s.format, s.compression) for s in resolve_sources([str(tmp_path)])]
    assert kinds == [("text", "gzip"), ("jsonl", "gzip"), ("jsonl", "zstd"), ("text", "gzip"), ("text", "zstd")]
    assert docs(tmp_path) == ["hidden gzip", "j1", "j2", "z1", "a b", "c", "a b", "c"]


def test_corrupt_compression_is_named(tmp_path):
    whole = gzip.compress(b"some text\n" * 100)
    with pytest.raises(PlmkitError, match=r"cut\.txt\.gz.*gzip data is truncated or corrupt"):
        docs(write(tmp_path / "cut.txt.gz", whole[: len(whole) // 2]))
    with pytest.raises(PlmkitError, match=r"fake\.gz has the extension \.gz but is not gzip-compressed"):
        docs(write(tmp_path / "fake.gz", "plain text\n"))


def test_missing_zstandard_says_how_to_install_it(tmp_path, monkeypatch):
    f = write(tmp_path / "t.txt.zst", zstandard.ZstdCompressor().compress(b"x\n"))
    monkeypatch.setitem(sys.modules, "zstandard", None)  # makes `import zstandard` raise ImportError
    with pytest.raises(PlmkitError, match=r"needs the zstandard package \(pip install zstandard\)"):
        docs(f)


# --------------------------------------------------------------------------- files, globs, folders


def test_folder_and_glob_expansion_order(tmp_path):
    for name in ["b.txt", "a/z.txt", "a/b/y.txt", "a.txt", ".hidden.txt", ".git/x.txt", "c/.x.txt", "c/d.txt"]:
        write(tmp_path / name, name + "\n")
    names = [str(s.path)[len(str(tmp_path)) + 1:] for s in resolve_sources([str(tmp_path)])]
    assert names == ["a/b/y.txt", "a/z.txt", "a.txt", "b.txt", "c/d.txt"]  # sorted by name at every level
    assert docs(tmp_path / "b.txt", tmp_path / "a") == ["b.txt", "a/b/y.txt", "a/z.txt"]  # sources keep their order
    assert docs(f"{tmp_path}/*.txt") == ["a.txt", "b.txt"]
    assert docs(f"{tmp_path}/**/*.txt") == ["a/b/y.txt", "a/z.txt", "a.txt", "b.txt", "c/d.txt"]  # as the folder


def test_missing_paths_are_named_before_reading_starts(tmp_path):
    with pytest.raises(PlmkitError, match=r"corpus path .*nope\.txt does not exist"):
        iter_documents([str(tmp_path / "nope.txt")])  # not consumed: the check is eager
    with pytest.raises(PlmkitError, match=r"no file matches the corpus pattern '.*\*\.jsonl'"):
        resolve_sources([f"{tmp_path}/*.jsonl"])
    (tmp_path / "empty").mkdir()
    write(tmp_path / "empty" / ".only_hidden", "x")
    with pytest.raises(PlmkitError, match=r"corpus folder .*empty contains no files"):
        resolve_sources([str(tmp_path / "empty")])
    with pytest.raises(PlmkitError, match="no corpus given"):
        resolve_sources([])


# --------------------------------------------------------------------------- Hugging Face datasets


def test_dataset_saved_on_disk(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["first\r\ndoc", "", "second"], "n": [1, 2, 3]})
    ds.save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict(train=ds.select([2]), test=ds.select([0])).save_to_disk(str(tmp_path / "dd"))
    datasets.DatasetDict(validation=ds).save_to_disk(str(tmp_path / "val_only"))
    assert docs(tmp_path / "ds") == ["first\ndoc", "second"]
    assert docs(tmp_path / "dd") == ["second"]  # a DatasetDict reads its train split
    assert docs(tmp_path / "dd" / "test") == ["first\ndoc"]
    with pytest.raises(PlmkitError, match=r"val_only has no train split \(splits: validation\) .*val_only/validation"):
        resolve_sources([str(tmp_path / "val_only")])
    with pytest.raises(PlmkitError, match=r"has no column 'body' \(columns: text, n\)"):
        docs(tmp_path / "ds", text_field="body")
    # inside a folder walk, a saved dataset is one source, not a pile of .arrow and .json files
    write(tmp_path / "z.txt", "plain\n")
    assert [s.format for s in resolve_sources([str(tmp_path / "dd"), str(tmp_path / "z.txt")])] == ["hf-disk", "text"]


def test_hub_source_parsing():
    assert resolve_sources(["hf:wikitext:wikitext-2-raw-v1:validation"]) == [
        Source("wikitext", "hf-hub", config="wikitext-2-raw-v1", split="validation")]
    assert resolve_sources(["hf:user/set"])[0].name == "hf:user/set::train"
    for bad in ["hf:", "hf:a:b:c:d"]:
        with pytest.raises(PlmkitError, match=r"hf:NAME\[:CONFIG\]\[:SPLIT\]"):
            resolve_sources([bad])


def test_hub_is_refused_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PlmkitError, match=r"hf:wikitext::train is on the Hugging Face hub, but this machine is offline"):
        docs("hf:wikitext")
    with pytest.raises(PlmkitError, match="offline"):
        describe_sources(["hf:wikitext"])


def test_hub_streams_through_load_dataset(monkeypatch):
    import datasets

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    calls = []

    def fake_load_dataset(name, config=None, split=None, streaming=False):
        calls.append((name, config, split, streaming))
        return iter([{"text": "hub one"}, {"text": " "}, {"text": "hub two"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert docs("hf:owner/set:cfg") == ["hub one", "hub two"]
    assert calls == [("owner/set", "cfg", "train", True)]

    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(PlmkitError, match=r"cannot stream hf:owner/set::train from the Hugging Face hub: ConnectionError"):
        docs("hf:owner/set")


# --------------------------------------------------------------------------- bad bytes


def test_invalid_utf8_names_the_byte_offset(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 16)  # the bad byte lies in a later chunk
    f = write(tmp_path / "latin1.txt", b"line one is fine\nline two caf\xe9\n")
    with pytest.raises(PlmkitError) as e:
        docs(f)
    assert str(e.value) == (f"corpus file {f} is not valid UTF-8: byte offset 29 (invalid continuation byte) "
                            "(convert it to UTF-8, or pass --encoding-errors replace to decode bad bytes as U+FFFD)")
    assert docs(f, encoding_errors="replace") == ["line one is fine\nline two caf\ufffd"]


def test_invalid_utf8_offset_counts_decompressed_bytes(tmp_path):
    f = write(tmp_path / "bad.txt.gz", gzip.compress(b"ok\n\xff\n"))
    with pytest.raises(PlmkitError, match="byte offset 3"):
        docs(f)


def test_binary_files_are_refused_before_reading(tmp_path):
    with pytest.raises(PlmkitError, match=r"corpus file .*model\.bin looks binary"):
        resolve_sources([str(write(tmp_path / "model.bin", bytes(range(256)) * 40))])
    with pytest.raises(PlmkitError, match=r"corpus file .*weights\.gz looks binary"):  # seen after decompression
        docs(write(tmp_path / "weights.gz", gzip.compress(bytes(range(256)) * 40)))
    with pytest.raises(PlmkitError, match=r"looks binary \(it is UTF-16 text\) \(convert it to UTF-8, e\.g\. iconv"):
        docs(write(tmp_path / "u16.txt", "hello\nworld\n".encode("utf-16")))


def test_nul_byte_in_text_is_an_error_or_replaced(tmp_path):
    f = write(tmp_path / "nul.txt", b"clean text\nbad\x00byte\n")
    with pytest.raises(PlmkitError, match=r"nul\.txt has a NUL byte at byte offset 14 .*--encoding-errors replace"):
        docs(f)
    assert docs(f, encoding_errors="replace") == ["clean text\nbad\ufffdbyte"]


def test_empty_inputs_are_refused(tmp_path):
    with pytest.raises(PlmkitError, match=r"corpus file .*zero\.txt is empty"):
        resolve_sources([str(write(tmp_path / "zero.txt", b""))])
    with pytest.raises(PlmkitError, match=r"corpus file .*zero\.txt\.gz is empty"):
        docs(write(tmp_path / "zero.txt.gz", gzip.compress(b"")))
    for name, data in [("blank.txt", b" \n\n\t\n"), ("bom.txt", b"\xef\xbb\xbf"), ("nulls.jsonl", b'{"text": null}\n')]:
        with pytest.raises(PlmkitError, match=rf"corpus source .*{name} contains no documents"):
            docs(write(tmp_path / name, data))
    with pytest.raises(PlmkitError, match="--encoding-errors must be one of strict, replace"):
        docs(write(tmp_path / "ok.txt", "x"), encoding_errors="ignore")


# --------------------------------------------------------------------------- manifests, memory, progress


def test_describe_sources(tmp_path, monkeypatch):
    import datasets

    f = write(tmp_path / "a.txt", "hello\n")
    assert describe_sources([str(f)]) == [{**describe_file(f), "format": "text"}]
    datasets.Dataset.from_dict({"text": ["x"]}).save_to_disk(str(tmp_path / "ds"))
    [d] = describe_sources([str(tmp_path / "ds")])
    state = json.loads((tmp_path / "ds" / "state.json").read_text())
    arrow = (tmp_path / "ds" / state["_data_files"][0]["filename"]).read_bytes()
    assert d == {"path": str((tmp_path / "ds").resolve()), "bytes": len(arrow), "format": "hf-disk",
                 "sha256": __import__("hashlib").sha256(arrow).hexdigest(), "fingerprint": state["_fingerprint"]}
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, name: types.SimpleNamespace(sha="abc123"))
    assert describe_sources(["hf:wikitext:raw"]) == [{
        "path": "hf:wikitext:raw:train", "bytes": None, "sha256": None, "format": "hf-hub",
        "hf": {"name": "wikitext", "config": "raw", "split": "train", "revision": "abc123"}}]


def test_reading_uses_bounded_memory(tmp_path):
    """A 5 MB file streams through a peak of well under 1 MB of Python allocations (64 KiB chunks)."""
    paragraph = "Language models learn from text. 语言模型从文本中学习。\n" * 4 + "\n"
    f = write(tmp_path / "big.txt", paragraph * (5_000_000 // len(paragraph.encode())))
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_documents([str(f)]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 5_000_000 // len(paragraph.encode())
    assert peak < 1_000_000, peak


class Recorder(Progress):
    def __init__(self):
        self.done = 0.0

    def update(self, advance=0, **fields):
        self.done += advance


def test_progress_counts_bytes_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_BYTES", 100)
    f = write(tmp_path / "a.txt.gz", gzip.compress("".join(f"line {i}\n" for i in range(500)).encode()))
    pq.write_table(pa.table({"text": [f"row {i}" for i in range(50)]}), tmp_path / "b.parquet", row_group_size=10)
    sources = resolve_sources([str(f), str(tmp_path / "b.parquet")])
    progress = Recorder()
    assert len(list(iter_documents(sources, progress=progress))) == 51
    assert progress.done == pytest.approx(sum(s.size for s in sources))


# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize("text, sentences", [
    ("Dr. Smith went to Washington. He arrived on Monday.", ["Dr. Smith went to Washington.", "He arrived on Monday."]),
    ("The U.S. economy grew, e.g. in exports. Prices fell.", ["The U.S. economy grew, e.g. in exports.", "Prices fell."]),
    ("Pi is about 3.14. It never ends.", ["Pi is about 3.14.", "It never ends."]),
    ('She said, "It works." Then she left.', ['She said, "It works."', "Then she left."]),
    ('He asked "Why not?" and walked off.', ['He asked "Why not?" and walked off.']),
    ("“Stop!” she cried. Nobody moved.", ["“Stop!” she cried.", "Nobody moved."]),
    ("See Fig. 2 for the loss. J. R. R. Tolkien wrote it.", ["See Fig. 2 for the loss.", "J. R. R. Tolkien wrote it."]),
    ("Wait... What happened? Nobody knew!", ["Wait...", "What happened?", "Nobody knew!"]),
    ("It was 5 p.m. Then I left. So did I. You stayed.", ["It was 5 p.m.", "Then I left.", "So did I.", "You stayed."]),
    ("今天天气很好。我们去公园吧！你去吗？", ["今天天气很好。", "我们去公园吧！", "你去吗？"]),
    ("他说：“我不去。”然后就走了。", ["他说：“我不去。”", "然后就走了。"]),
    ("「好！」，他说。这是第一句；这是第二句。", ["「好！」，他说。", "这是第一句；这是第二句。"]),
    ("请更新（如果需要的话。）谢谢！真的吗?我不信!", ["请更新（如果需要的话。）", "谢谢！", "真的吗?", "我不信!"]),
    ("拜见过王夫人．约为３．１４。", ["拜见过王夫人．", "约为３．１４。"]),
    ("BERT是一个模型。It was released in 2018. 很有名！", ["BERT是一个模型。", "It was released in 2018.", "很有名！"]),
    ("  line one\n\nline two. Still two? No\n", ["line one", "line two.", "Still two?", "No"]),
    ("", []),
])
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences
