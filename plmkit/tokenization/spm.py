"""SentencePiece kinds: train with `sentencepiece`, convert the model to a `tokenizers` pipeline.

`TOK/spm.model` is kept as the library wrote it; `TOK/tokenizer.json` is built from it here so
that everything downstream (plmkit, transformers) runs one pipeline. The conversion follows the
model's own normaliser spec, in SentencePiece's order, and is checked by a parity test on
multilingual, whitespace-heavy text (the conversion drift reported in transformers#25316 is
what that test guards against):

    spm:        charsmap (e.g. nmt_nfkc) → strip/collapse spaces → dummy "▁" prefix → " " → "▁" → model
    tokenizers: Precompiled(charsmap) → Replace(strip, collapse) → Prepend("▁") → Replace(" ", "▁") → model

A SentencePiece BPE model ranks merges by piece score; `tokenizers` wants an explicit merge
list, which is derived from the vocabulary: every split of a piece into two pieces, ranked by
the merged piece's score (as transformers' `SentencePieceExtractor` does).

Reading `spm.model` needs no protobuf package: the few fields used are read from the wire
format by `read_model_proto` (protobuf encoding: each field is a varint key `field << 3 | wire`
followed by a varint, 4/8 fixed bytes, or a length-prefixed byte string).

Known difference: a special-token literal typed in the text ("x [MASK] y") is matched before
normalisation, as transformers does, and the text on each side of it is normalised as a text
of its own; `spm.model` normalises the whole line first. Ordinary text encodes identically.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from tokenizers import Regex, Tokenizer, decoders, models, normalizers

from plmkit.errors import PlmkitError

# SentencePiece piece types (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Per kind: the SentencePiece trainer settings. Unigram follows T5/ALBERT (NFKC, whitespace
# collapsed); sp-bpe follows LLaMA (text kept as is, digits split, unknown characters as bytes).
TRAINER_OPTIONS = {
    "unigram": dict(model_type="unigram", normalization_rule_name="nmt_nfkc", remove_extra_whitespaces=True,
                    byte_fallback=False, character_coverage=0.9995),
    "sp-bpe": dict(model_type="bpe", normalization_rule_name="identity", remove_extra_whitespaces=False,
                   byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
                   character_coverage=0.9995),
}


@dataclass
class SpmModel:
    pieces: list[tuple[str, float, int]]  # (piece, score, type) in id order
    model_type: int  # 1 unigram, 2 bpe
    byte_fallback: bool
    charsmap: bytes
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) of one protobuf message; value: int or bytes (wire types 2, 1, 5)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, pos = buf[pos:pos + n], pos + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield key >> 3, value


def read_model_proto(data: bytes) -> SpmModel:
    """The parts of a SentencePiece `ModelProto` that the conversion needs.

    Fields: ModelProto{1: pieces{1: piece, 2: score (float32), 3: type}, 2: trainer_spec{3: model_type,
    35: byte_fallback}, 3: normalizer_spec{2: precompiled_charsmap, 3: add_dummy_prefix,
    4: remove_extra_whitespaces, 5: escape_whitespaces}}; absent fields take the proto defaults.
    """
    model = SpmModel(pieces=[], model_type=1, byte_fallback=False, charsmap=b"")
    for number, value in _fields(data):
        if number == 1:
            piece, score, kind = "", 0.0, NORMAL
            for f, v in _fields(value):
                if f == 1:
                    piece = v.decode("utf-8")
                elif f == 2:
                    score = struct.unpack("<f", v)[0]
                elif f == 3:
                    kind = v
            model.pieces.append((piece, score, kind))
        elif number == 2:
            for f, v in _fields(value):
                if f == 3:
                    model.model_type = v
                elif f == 35:
                    model.byte_fallback = bool(v)
        elif number == 3:
            for f, v in _fields(value):
                if f == 2:
                    model.charsmap = v
                elif f == 3:
                    model.add_dummy_prefix = bool(v)
                elif f == 4:
                    model.remove_extra_whitespaces = bool(v)
                elif f == 5:
                    model.escape_whitespaces = bool(v)
    return model


def _bpe_merges(pieces: list[tuple[str, float, int]]) -> list[tuple[str, str]]:
    """Merges implied by a SentencePiece BPE vocabulary: best-scored merged piece first.

    >>> _bpe_merges([("▁", -1.0, NORMAL), ("a", -2.0, NORMAL), ("▁a", -0.5, NORMAL)])
    [('▁', 'a')]
    """
    normal = {p: (score, i) for i, (p, score, kind) in enumerate(pieces) if kind == NORMAL}
    ranked = []
    for piece, (score, i) in normal.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in normal and right in normal:
                ranked.append((-score, i, normal[left][1], normal[right][1], left, right))
    return [(left, right) for *_, left, right in sorted(ranked)]


def to_tokenizer(data: bytes, pre: list[normalizers.Normalizer] | None = None) -> Tokenizer:
    """A `tokenizers.Tokenizer` that encodes like `SentencePieceProcessor(model_proto=data)`.

    `pre` are normalisers plmkit applies before SentencePiece's own (lower-casing, accent
    stripping); training text went through the same ones.
    """
    m = read_model_proto(data)
    unk = next((i for i, (_, _, kind) in enumerate(m.pieces) if kind == UNKNOWN), 0)
    if m.model_type == 1:
        model = models.Unigram([(p, s) for p, s, _ in m.pieces], unk_id=unk, byte_fallback=m.byte_fallback)
    else:
        vocab = {p: i for i, (p, _, _) in enumerate(m.pieces)}
        model = models.BPE(vocab, _bpe_merges(m.pieces), unk_token=m.pieces[unk][0], fuse_unk=True,
                           byte_fallback=m.byte_fallback)
    tok = Tokenizer(model)
    steps = list(pre or [])
    if m.charsmap:
        steps.append(normalizers.Precompiled(m.charsmap))
    if m.remove_extra_whitespaces:  # only spaces: SentencePiece leaves other whitespace to the charsmap
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if m.add_dummy_prefix:
        steps.append(normalizers.Prepend(" "))
    if m.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    tok.normalizer = normalizers.Sequence(steps)
    steps = [decoders.Replace("▁", " ")] + ([decoders.ByteFallback()] if m.byte_fallback else []) + [decoders.Fuse()]
    if m.add_dummy_prefix:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    tok.decoder = decoders.Sequence(steps)
    return tok


def _lines(documents: Iterable[str]) -> Iterator[str]:
    """SentencePiece trains on lines (its 'sentences'); documents are split at newlines."""
    for doc in documents:
        for line in doc.split("\n"):
            if line.strip():
                yield line


def train(documents: Iterable[str], kind: str, vocab_size: int, specials: list[str], roles: dict[str, str], *,
          max_sentences: int, seed: int, allow_smaller_vocab: bool, num_threads: int) -> bytes:
    """Train a SentencePiece model of `kind` ("unigram" or "sp-bpe"); return `spm.model`'s bytes.

    pad/unk/bos/eos become SentencePiece's own control pieces (so `spm.model` users get
    `sp.pad_id()` etc.); every other special token is a user-defined piece, in `specials` order.
    """
    import sentencepiece as sp

    meta = {f"{r}_id": specials.index(roles[r]) for r in ("pad", "unk", "bos", "eos")}
    meta.update({f"{r}_piece": roles[r] for r in ("pad", "unk", "bos", "eos")})
    user = [t for t in specials if t not in {roles[r] for r in ("pad", "unk", "bos", "eos")}]
    sp.set_random_generator_seed(seed)
    out = io.BytesIO()
    lines = _Guarded(_lines(documents))
    try:
        sp.SentencePieceTrainer.train(
            sentence_iterator=lines, model_writer=out, vocab_size=vocab_size,
            user_defined_symbols=user, input_sentence_size=max_sentences, shuffle_input_sentence=True,
            hard_vocab_limit=not allow_smaller_vocab, max_sentence_length=1 << 20, num_threads=num_threads,
            minloglevel=2, **meta, **TRAINER_OPTIONS[kind],
        )
    except RuntimeError as e:
        if lines.error is not None:  # the corpus reader failed (bad UTF-8, Ctrl-C): that error, not the wrapper's
            raise lines.error from None
        if lines.count == 0:
            from plmkit.tokenization.train import no_documents

            raise no_documents() from None
        raise _explain(str(e), vocab_size) from e
    return out.getvalue()


class _Guarded:
    """An iterator that remembers the exception its source raised.

    SentencePiece turns an exception raised inside `sentence_iterator` into a RuntimeError
    holding only its text; keeping the original lets a `PlmkitError` or a Ctrl-C pass unchanged.
    """

    def __init__(self, source: Iterator[str]):
        self.source, self.error, self.count = source, None, 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            line = next(self.source)
            self.count += 1
            return line
        except StopIteration:
            raise
        except BaseException as e:
            self.error = e
            raise


def _explain(message: str, vocab_size: int) -> PlmkitError:
    """Turn SentencePiece's trainer errors into a one-line error naming the flag to change."""
    import re

    if m := re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", message):
        return PlmkitError(
            f"the corpus is too small for --vocab-size {vocab_size}: it can fill at most {m.group(2)} tokens",
            hint=f"pass --vocab-size {m.group(2)} or less, a larger corpus, or --allow-smaller-vocab",
        )
    if "Vocabulary size is smaller than required_chars" in message:
        m = re.search(r"required_chars\. (\d+) vs (\d+)", message)
        need = m.group(2) if m else "more"
        return PlmkitError(
            f"--vocab-size {vocab_size} is too small for the corpus's characters and the special tokens "
            f"(SentencePiece needs {need})", hint=f"pass --vocab-size {need} or more")
    return PlmkitError(f"SentencePiece training failed: {message.strip().splitlines()[-1]}")
