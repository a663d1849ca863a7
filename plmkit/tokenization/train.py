"""Train a tokenizer from streamed documents and write the tokenizer directory TOK/.

    documents ──(every 50th held out)──▶ trainer (tokenizers or sentencepiece) ──▶ TOK/
        tokenizer.json, tokenizer_config.json, special_tokens_map.json   (transformers loads these)
        vocab.txt (wordpiece) | spm.model (unigram, sp-bpe)              (the native formats)
        plmkit.json                                                       (roles → token → id, params, inputs)

Documents stream into the trainer in batches (`train_from_iterator`, SentencePiece's
`sentence_iterator`); nothing here holds the corpus. SentencePiece itself keeps the sentences
it trains on in memory, up to `max_sentences` (sampled uniformly beyond that).

A corpus too small to fill `vocab_size` is an error unless `allow_smaller_vocab`: a silently
smaller vocabulary changes the model's embedding size and every downstream number; with the
flag the realised size is what the manifest records (`vocab_size`), beside the request
(`params.vocab_size`).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from plmkit.errors import PlmkitError
from plmkit.manifest import atomic_write_bytes, staging_dir, write_manifest
from plmkit.progress import NULL, Progress
from plmkit.tokenization import pipelines, spm
from plmkit.tokenization.presets import DEFAULT_PRESET, KINDS, PRESETS, SENTENCEPIECE_KINDS, Preset
from plmkit.tokenization.roles import ROLES, special_tokens

HOLD_OUT_EVERY = 50  # every 50th document is held out of training to measure characters per token …
HOLD_OUT_CHARS = 200_000  # … until 200k characters are held out (enough for the figure); later ones train
BATCH = 1000  # documents per batch handed to `train_from_iterator`
DEFAULT_MIN_FREQUENCY = 2
DEFAULT_MAX_SENTENCES = 10_000_000
REPLAY_CHARS = 32_000_000  # WordPiece's second pass replays a corpus this small from memory


@dataclass(frozen=True)
class TokenizerSpec:
    """Fully resolved training parameters (what `plmkit.json` records under `params`)."""

    kind: str
    preset: str
    vocab_size: int
    min_frequency: int
    lowercase: bool
    strip_accents: bool
    max_sentences: int
    seed: int
    allow_smaller_vocab: bool

    @property
    def names(self) -> dict[str, str]:
        return PRESETS[self.preset].all_names


def resolve_spec(*, kind: str | None = None, preset: str | None = None, vocab_size: int, min_frequency: int | None = None,
                 lowercase: bool | None = None, strip_accents: bool | None = None, max_sentences: int | None = None,
                 seed: int = 0, allow_smaller_vocab: bool = False) -> TokenizerSpec:
    """Preset defaults < explicit arguments; None means "not given".

    >>> s = resolve_spec(preset="bert", vocab_size=1000, lowercase=False)
    >>> s.kind, s.lowercase, s.strip_accents
    ('wordpiece', False, False)
    """
    if preset is not None and preset not in PRESETS:
        raise PlmkitError(f"unknown --preset {preset!r}", hint=f"choose one of {', '.join(PRESETS)}")
    if kind is not None and kind not in KINDS:
        raise PlmkitError(f"unknown --kind {kind!r}", hint=f"choose one of {', '.join(KINDS)}")
    if kind is None and preset is None:
        raise PlmkitError("pass --kind or --preset", hint=f"e.g. --preset bert; kinds: {', '.join(KINDS)}")
    p: Preset = PRESETS[preset or DEFAULT_PRESET[kind]]
    kind = kind or p.kind
    lowercase = p.lowercase if lowercase is None else lowercase
    # BERT's convention: accents are stripped exactly when lower-casing, unless said otherwise.
    strip_accents = (p.strip_accents if lowercase == p.lowercase else lowercase) if strip_accents is None else strip_accents
    if min_frequency is not None and min_frequency < 0:
        raise PlmkitError(f"--min-frequency must be 0 or more, got {min_frequency}")
    if max_sentences is not None and max_sentences < 0:
        raise PlmkitError(f"--max-sentences must be 0 (no cap) or more, got {max_sentences}")
    spec = TokenizerSpec(kind=kind, preset=p.name, vocab_size=vocab_size,
                         min_frequency=DEFAULT_MIN_FREQUENCY if min_frequency is None else min_frequency,
                         lowercase=lowercase, strip_accents=strip_accents,
                         max_sentences=DEFAULT_MAX_SENTENCES if max_sentences is None else max_sentences,
                         seed=seed, allow_smaller_vocab=allow_smaller_vocab)
    _check_vocab_size(spec)
    return spec


def _check_vocab_size(spec: TokenizerSpec) -> None:
    n = len(special_tokens(spec.names))
    base = 256 if spec.kind in ("bpe", "sp-bpe") else 0  # byte alphabet / byte-fallback pieces
    if spec.vocab_size <= n + base:
        what = f"the {n} special tokens" + (" and 256 byte tokens" if base else "")
        raise PlmkitError(f"--vocab-size {spec.vocab_size} leaves no room for learned tokens after {what} "
                          f"every {spec.kind} tokenizer reserves",
                          hint=f"pass --vocab-size {max(1000, 2 * (n + base))} or more")


class _Split:
    """Documents in, training documents out; every `HOLD_OUT_EVERY`-th one is kept aside.

    The held-out slice measures characters per token on text the tokenizer did not see. A
    corpus of fewer than `HOLD_OUT_EVERY` documents has no held-out slice; the figure is then
    measured on the first training documents (and the manifest says so).
    """

    def __init__(self, documents: Iterable[str]):
        self.documents = documents
        self.held_out: list[str] = []
        self.first: list[str] = []
        self.num_documents = self.num_chars = self.held_chars = self.first_chars = 0

    def __iter__(self) -> Iterator[str]:
        for i, doc in enumerate(self.documents):
            self.num_documents += 1
            self.num_chars += len(doc)
            if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 and self.held_chars < HOLD_OUT_CHARS:
                self.held_out.append(doc)
                self.held_chars += len(doc)
                continue
            if self.first_chars < HOLD_OUT_CHARS // 10:
                self.first.append(doc)
                self.first_chars += len(doc)
            yield doc


def _batches(docs: Iterable[str], size: int = BATCH) -> Iterator[list[str]]:
    batch: list[str] = []
    for doc in docs:
        batch.append(doc)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _phases(items: Iterable, split: _Split, progress: Progress, then: str) -> Iterator:
    """Pass `items` through, showing the document count; start phase `then` once they run out."""
    for i, item in enumerate(items):
        if i % 64 == 0:
            progress.update(0, documents=split.num_documents)
        yield item
    progress.start(then)


def train_tokenizer(documents: Iterable[str], out: str | os.PathLike, spec: TokenizerSpec, *,
                    inputs: list[dict[str, Any]] | None = None, reader: dict[str, Any] | None = None,
                    total_mb: float | None = None, force: bool = False,
                    progress: Progress = NULL) -> dict[str, Any]:
    """Train on `documents` and write TOK/ at `out` (built under a temporary name).

    `inputs` (what `describe_sources` says) and `reader` (corpus options) go to the manifest;
    `total_mb` sizes the progress bar (the corpus reader advances it).
    Returns the manifest, with `elapsed_s` and `chars_per_token` (on the held-out slice).
    """
    t0 = time.perf_counter()
    with staging_dir(out, force=force) as tmp:
        split = _Split(documents)
        tok, spm_model = _train(split, spec, total_mb, progress)
        if split.num_documents == 0:
            raise no_documents()
        _check_realised(tok.get_vocab_size(), spec)
        progress.start("writing the tokenizer")
        specials = special_tokens(spec.names)
        pipelines.finish(tok, PRESETS[spec.preset], specials)
        ids = _role_ids(tok, spec)
        sample = split.held_out or split.first
        # Characters per token on the held-out slice, measured while the files are written (the
        # library encodes without the interpreter lock; the writes wait on the disk).
        with ThreadPoolExecutor(1) as pool:
            counting = pool.submit(count_tokens, tok, sample, spec.kind)
            _write_files(Path(tmp), tok, spec, ids, spm_model)
            n_tokens = counting.result()
        stats = {"documents": split.num_documents, "characters": split.num_chars,
                 "held_out_documents": len(split.held_out),
                 "chars_per_token": round(sum(map(len, sample)) / max(1, n_tokens), 4),
                 "chars_per_token_on": "held-out" if split.held_out else "training"}
        manifest = write_manifest(tmp, "tokenizer", params={**asdict(spec), **(reader or {})}, inputs=inputs,
                                  kind=spec.kind, vocab_size=tok.get_vocab_size(),
                                  special_tokens=ids["roles"], sentinels=ids["sentinels"], corpus=stats,
                                  elapsed_s=round(time.perf_counter() - t0, 3))
        progress.finish()
    return manifest


# Runs of the characters BertNormalizer pads with spaces (CJK ideographs)
IDEOGRAPH_RUNS = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in pipelines.CJK_RANGES) + "]+")


def count_tokens(tok, texts: list[str], kind: str) -> int:
    """How many tokens `tok` makes of `texts`, without special tokens (the held-out figure).

    WordPiece: BertNormalizer pads every CJK ideograph with spaces, so each is a word of one
    character, which WordPiece turns into one token (its piece, or [UNK]); and a run of them
    separates its neighbours as one space does. So each run is counted and replaced by a space,
    and the library encodes what is left: on Chinese text, mostly punctuation (4x faster on the
    held-out slice of a Chinese novel: the normaliser's padding is what costs). The special
    tokens, matched in the raw text first, hold no ideograph (checked).
    """
    ideographs = 0
    if kind == "wordpiece" and not any(IDEOGRAPH_RUNS.search(t.content) for t in tok.get_added_tokens_decoder().values()):
        rest = []
        for text in texts:
            kept, runs = IDEOGRAPH_RUNS.subn(" ", text)
            ideographs += len(text) - len(kept) + runs
            rest.append(kept)
        texts = rest
    return ideographs + sum(len(e.ids) for e in tok.encode_batch_fast(texts, add_special_tokens=False))


def no_documents() -> PlmkitError:
    return PlmkitError("the corpus has no documents: nothing to train on",
                       hint="check the CORPUS paths, --text-field and --doc-per-line")


def _train(split: _Split, spec: TokenizerSpec, total_mb: float | None, progress: Progress):
    """Run the library trainer; returns (tokenizers.Tokenizer, spm.model bytes or None).

    The corpus reader advances the progress bar by megabytes read; when the documents run
    out the library works on its own (merges, EM) and the display says so.
    """
    names, specials = spec.names, special_tokens(spec.names)
    reading = f"training {spec.kind}: reading the corpus"
    if spec.kind in SENTENCEPIECE_KINDS:
        progress.start(reading, total=total_mb, unit="MB")
        pre = pipelines.text_normalizers(spec.kind, spec.lowercase, spec.strip_accents)
        docs = _phases(_normalized(split, pre) if pre else split, split, progress,
                       f"training {spec.kind}: SentencePiece is learning the pieces")
        model = spm.train(docs, spec.kind, spec.vocab_size, specials, names, max_sentences=spec.max_sentences,
                          seed=spec.seed, allow_smaller_vocab=spec.allow_smaller_vocab,
                          num_threads=os.cpu_count() or 1)
        return spm.to_tokenizer(model, pre), model
    if spec.kind == "bpe":
        tok = pipelines.byte_level_bpe(spec.lowercase, spec.strip_accents)
        trainer = pipelines.trainer(spec.kind, spec.vocab_size, spec.min_frequency, specials)
        progress.start(reading, total=total_mb, unit="MB")
    else:
        tok = pipelines.wordpiece(spec.lowercase, spec.strip_accents, names["unk"])
        counts = _char_counts(split.documents, progress, total_mb)
        progress.start(reading, total=total_mb, unit="MB")
        alphabet = pipelines.wordpiece_alphabet(counts, tok, max(1, (spec.vocab_size - len(specials)) // 2))
        trainer = pipelines.trainer(spec.kind, spec.vocab_size, spec.min_frequency, specials, alphabet)
    batches = _phases(_batches(split), split, progress, f"training {spec.kind}: learning the merges")
    tok.train_from_iterator(batches, trainer=trainer)
    if spec.kind == "wordpiece":  # a fresh pipeline: the `##c` pieces were trainer "special tokens"
        tok = pipelines.wordpiece(spec.lowercase, spec.strip_accents, names["unk"], model=tok.model)
    return tok, None


def _char_counts(documents: Iterable[str], progress: Progress, total_mb: float | None) -> dict[str, int]:
    """How often each character occurs: a first pass over the corpus (WordPiece needs the alphabet
    before training; see `pipelines.wordpiece_alphabet`). Counted a megabyte at a time with numpy:
    a per-character Python loop would cost more than the training."""
    import numpy as np

    if iter(documents) is documents:
        raise TypeError("wordpiece training reads the documents twice: pass a list or a re-iterable, "
                        "not an iterator")
    progress.start("training wordpiece: counting characters", total=total_mb, unit="MB")
    counts = np.zeros(0, dtype=np.int64)  # grows to the largest code point seen
    chunk: list[str] = []
    size = 0
    for doc in itertools.chain(documents, [None]):  # None: flush the last chunk
        if doc is not None:
            chunk.append(doc)
            size += len(doc)
        if size >= 1 << 20 or (doc is None and chunk):
            codes = np.frombuffer("".join(chunk).encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
            more = np.bincount(codes)
            if len(more) > len(counts):
                counts = np.concatenate([counts, np.zeros(len(more) - len(counts), dtype=np.int64)])
            counts[:len(more)] += more
            chunk, size = [], 0
    present = np.flatnonzero(counts)
    return dict(zip(map(chr, present.tolist()), counts[present].tolist(), strict=True))


def _normalized(docs: Iterable[str], steps: list) -> Iterator[str]:
    """Documents through plmkit's own normalisers (SentencePiece then trains on what it will see)."""
    from tokenizers import normalizers

    norm = normalizers.Sequence(steps)
    for doc in docs:
        yield norm.normalize_str(doc)


class _Rereadable:
    """Documents that can be read twice (WordPiece makes two passes): the second pass replays the
    first from memory when the corpus is small (up to `REPLAY_CHARS` characters), and reads it
    afresh otherwise. On a small corpus the second read costs as much as the rest of the set-up.
    A replay advances `progress` exactly as the read did."""

    def __init__(self, read, progress: Progress, keep: bool = True):
        self.read, self.progress, self.keep = read, progress, keep
        self._kept: list[str] | None = None
        self._advances: list[tuple[int, float]] = []  # (documents yielded before, megabytes)

    def __iter__(self) -> Iterator[str]:
        if self._kept is not None:
            return self._replay()
        return self._first()

    def _first(self) -> Iterator[str]:
        kept: list[str] | None = [] if self.keep else None
        chars = 0
        self._advances = []  # a pass left unfinished recorded some: start afresh
        recorder = _Recorder(self.progress, self._advances, lambda: len(kept or ()))
        recorder.recording = kept is not None
        for doc in self.read(recorder):
            if kept is not None:
                kept.append(doc)
                chars += len(doc)
                if chars > REPLAY_CHARS:  # too large to keep: the next pass reads again
                    kept = None
                    self._advances.clear()
                    recorder.recording = False
            yield doc
        self._kept = kept

    def _replay(self) -> Iterator[str]:
        pending = deque(self._advances)
        for i, doc in enumerate(self._kept):
            while pending and pending[0][0] <= i:
                self.progress.update(pending.popleft()[1])
            yield doc
        for _, mb in pending:
            self.progress.update(mb)


class _Recorder(Progress):
    """Forwards progress and notes each advance with the number of documents yielded so far."""

    def __init__(self, inner: Progress, log: list[tuple[int, float]], position):
        self.inner, self.log, self.position, self.recording = inner, log, position, True

    def update(self, advance: float = 0, **fields: Any) -> None:
        if self.recording and advance:
            self.log.append((self.position(), advance))
        self.inner.update(advance, **fields)


class _Megabytes(Progress):
    """Forwards progress, advancing by megabytes where the corpus reader counts bytes."""

    def __init__(self, inner: Progress):
        self.inner = inner

    def update(self, advance: float = 0, **fields: Any) -> None:
        self.inner.update(advance / 1e6, **fields)


def _check_realised(realised: int, spec: TokenizerSpec) -> None:
    if realised < spec.vocab_size and not spec.allow_smaller_vocab:
        hint = f"pass --vocab-size {realised} or less, a larger corpus, or --allow-smaller-vocab"
        if spec.kind in ("wordpiece", "bpe") and spec.min_frequency > 1:
            hint += f" (or a --min-frequency below {spec.min_frequency})"
        raise PlmkitError(f"the corpus is too small for --vocab-size {spec.vocab_size}: "
                          f"training filled only {realised} tokens", hint=hint)


def _role_ids(tok, spec: TokenizerSpec) -> dict[str, Any]:
    """{"roles": {role: {"token", "id"}}, "sentinels": [ids]} read back from the trained vocabulary."""
    roles = {}
    for role in ROLES:
        token = spec.names[role]
        roles[role] = {"token": token, "id": tok.token_to_id(token)}
        assert roles[role]["id"] is not None, f"special token {token} missing from the vocabulary"
    sentinels = [tok.token_to_id(t) for t in special_tokens(spec.names)[-100:]]
    assert None not in sentinels
    return {"roles": roles, "sentinels": sentinels}


def _write_files(d: Path, tok, spec: TokenizerSpec, ids: dict[str, Any], spm_model: bytes | None) -> None:
    files = {"tokenizer.json": tok.to_str(pretty=True).encode("utf-8")}
    if spm_model is not None:
        files["spm.model"] = spm_model
    if spec.kind == "wordpiece":  # BERT's own format, for tools that read vocab.txt
        by_id = [""] * tok.get_vocab_size(with_added_tokens=True)
        for t, i in tok.get_vocab(with_added_tokens=True).items():
            by_id[i] = t
        files["vocab.txt"] = "".join(f"{t}\n" for t in by_id).encode("utf-8")
    special_map = hf_special_tokens_map(ids, spec)
    files["special_tokens_map.json"] = _json(special_map).encode("utf-8")
    pair_types = PRESETS[spec.preset].pair is not None and ":1" in PRESETS[spec.preset].pair
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False,
              "model_max_length": 1_000_000_000_000_000_019_884_624_838_656,
              "model_input_names": ["input_ids", "token_type_ids", "attention_mask"] if pair_types
              else ["input_ids", "attention_mask"], **special_map}
    if spec.kind == "wordpiece":
        config["do_lower_case"] = spec.lowercase
    files["tokenizer_config.json"] = _json(config).encode("utf-8")
    # Each write waits on the disk for its fsync (about a millisecond here): wait for all at once.
    with ThreadPoolExecutor(len(files)) as pool:
        list(pool.map(lambda item: atomic_write_bytes(d / item[0], item[1]), files.items()))


def hf_special_tokens_map(ids: dict[str, Any], spec: TokenizerSpec) -> dict[str, Any]:
    """transformers' names: the seven standard roles, the rest as additional special tokens."""
    names = spec.names
    out = {f"{r}_token": names[r] for r in ("bos", "eos", "unk", "sep", "pad", "cls", "mask")}
    out["additional_special_tokens"] = [names[r] for r in ("gmask", "smask", "sop", "eop")] + \
        special_tokens(names)[-100:]
    return out


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def train_from_corpus(sources: Sequence[str | os.PathLike], out: str | os.PathLike, spec: TokenizerSpec, *,
                      doc_per_line: bool = False, text_field: str = "text", encoding_errors: str = "strict",
                      force: bool = False, progress: Progress = NULL) -> dict[str, Any]:
    """`train_tokenizer` on the documents of corpus files/globs/folders (`plmkit.corpus`)."""
    from plmkit.corpus import describe_sources, iter_documents

    if not sources:
        raise PlmkitError("no CORPUS given", hint="pass one or more files, globs or folders")
    inputs = describe_sources(sources)
    reader = {"doc_per_line": doc_per_line, "text_field": text_field, "encoding_errors": encoding_errors}
    def read(shown: Progress):
        return iter_documents(sources, doc_per_line=doc_per_line, text_field=text_field,
                              encoding_errors=encoding_errors, progress=_Megabytes(shown))

    docs = _Rereadable(read, progress, keep=spec.kind == "wordpiece")
    sizes = [i.get("bytes") for i in inputs]
    total_mb = sum(sizes) / 1e6 if None not in sizes else None
    return train_tokenizer(docs, out, spec, inputs=inputs, reader=reader, total_mb=total_mb, force=force,
                           progress=progress)
