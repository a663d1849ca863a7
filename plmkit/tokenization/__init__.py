"""Tokenizers: train them (`train.py`), load a tokenizer directory, encode through one interface.

    tok = load_tokenizer("TOK")            # validates TOK/plmkit.json
    tok.encode_batch(["Hello world", "你好"])   # [array([...], int32), array([...], int32)], no special tokens
    tok.id("mask"), tok.sentinel_ids[0], tok.special_ids

Later stages encode only through `Tokenizer.encode_batch`. It hands whole batches to an
encoder object chosen once, in `_make_encoder`: by default the `tokenizers` library's own
parallel batch encoder (`encode_batch_fast`: the ids without offsets); a faster encoder
proven to give identical ids slots in there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from plmkit.errors import PlmkitError
from plmkit.manifest import read_manifest
from plmkit.tokenization.pipelines import CJK_RANGES
from plmkit.tokenization.presets import DEFAULT_PRESET, KINDS, PRESETS
from plmkit.tokenization.roles import NUM_SENTINELS, ROLES
from plmkit.tokenization.train import TokenizerSpec, resolve_spec, train_from_corpus, train_tokenizer

__all__ = ["DEFAULT_PRESET", "KINDS", "PRESETS", "ROLES", "Tokenizer", "TokenizerSpec", "load_tokenizer",
           "resolve_spec", "train_from_corpus", "train_tokenizer"]

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "spm.model", "plmkit.json")
BYTE_LEVEL_SPACES = "Ġ" + "Ċ" + "ĉ" + "č"  # space, \n, \t, \r as byte-level BPE spells them


class Encoder(Protocol):
    def encode_batch(self, texts: list[str]) -> list[np.ndarray]: ...

    def warm(self, texts: list[str]) -> None: ...


class LibraryEncoder:
    """The `tokenizers` library's batch encoder (Rust, parallel over texts)."""

    def __init__(self, hf):
        self.hf = hf

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        encodings = self.hf.encode_batch_fast(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in encodings]

    def warm(self, texts: list[str]) -> None:
        """Nothing to learn: the library keeps no cache."""


def _make_encoder(hf, tokenizer_json: str) -> Encoder:
    """The one place that decides how text becomes ids (PLMKIT_ENCODER=library forces the library).

    `plmkit.tokenization.fast.FastEncoder(tokenizer_json)`, where present, is used instead; its
    constructor raises NotImplementedError for a pipeline it does not reproduce exactly.
    """
    if os.environ.get("PLMKIT_ENCODER") != "library":
        try:
            from plmkit.tokenization.fast import FastEncoder  # identical ids, faster; absent → library
        except ImportError:
            pass
        else:
            try:
                return FastEncoder(tokenizer_json, library=hf)
            except NotImplementedError:
                pass
    return LibraryEncoder(hf)


class Tokenizer:
    """A trained tokenizer directory, seen through the interface every later stage uses."""

    def __init__(self, path: Path, manifest: dict[str, Any]):
        from tokenizers import Tokenizer as HFTokenizer

        self.path, self.manifest = path, manifest
        self.kind: str = manifest["kind"]
        self.fingerprint: str = manifest["fingerprint"]
        text = (path / "tokenizer.json").read_text(encoding="utf-8")
        self.hf = HFTokenizer.from_str(text)
        self.vocab_size: int = self.hf.get_vocab_size(with_added_tokens=True)
        self.roles: dict[str, int] = {r: v["id"] for r, v in manifest["special_tokens"].items()}
        self.sentinel_ids: list[int] = list(manifest["sentinels"])
        self.special_ids = np.array(sorted(set(self.roles.values()) | set(self.sentinel_ids)), dtype=np.int64)
        self._check_consistent(manifest)
        self._word_tables: tuple[np.ndarray, np.ndarray] | None = None  # built when first asked (whole-word masking)
        self._encoder = _make_encoder(self.hf, text)

    def _check_consistent(self, manifest: dict[str, Any]) -> None:
        where = f"{self.path}/tokenizer.json"
        if self.vocab_size != manifest["vocab_size"]:
            raise PlmkitError(f"{where} has {self.vocab_size} tokens but plmkit.json says {manifest['vocab_size']}",
                              hint="the directory was edited; retrain it with `plmkit tokenize`")
        for role, v in manifest["special_tokens"].items():
            if self.hf.token_to_id(v["token"]) != v["id"]:
                raise PlmkitError(f"{where}: the {role} token {v['token']} is not id {v['id']} as plmkit.json says",
                                  hint="the directory was edited; retrain it with `plmkit tokenize`")
        assert len(self.sentinel_ids) == NUM_SENTINELS

    def id(self, role: str) -> int:
        if role not in self.roles:
            raise PlmkitError(f"the tokenizer {self.path} has no {role!r} token",
                              hint=f"roles: {', '.join(self.roles)}; retrain it with `plmkit tokenize`")
        return self.roles[role]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids (int32) of each text, without special tokens; one parallel call per batch."""
        return self._encoder.encode_batch(list(texts))

    def encode(self, text: str) -> np.ndarray:
        return self.encode_batch([text])[0]

    def warm(self, texts: list[str]) -> None:
        """Let the encoder learn the words of `texts` ahead of encoding text like them (the fast
        encoder caches each distinct word's ids; the library's encoder has nothing to learn)."""
        self._encoder.warm(list(texts))

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.hf.decode(np.asarray(ids).tolist(), skip_special_tokens=skip_special_tokens)

    def tokens(self, ids) -> list[str]:
        return [self.hf.id_to_token(int(i)) for i in np.asarray(ids)]

    def word_start_mask(self, ids) -> np.ndarray:
        """True where a token begins a word (for whole-word masking).

        A token begins a word when its spelling says so (not a `##` continuation; starts with
        `Ġ` or `▁` or whitespace; is a CJK character, each of which counts as a word; is a special
        token), when it follows whitespace or a special token, or when it opens the sequence.

        >>> # byte-level BPE: "Hello world!\\nBye" → Hello Ġworld ! Ċ Bye
        >>> # word starts:                           T     T      F T  T
        """
        if self._word_tables is None:
            self._word_tables = _word_tables(self.hf, self.kind, self.special_ids)
        starts, ends_space = self._word_tables
        ids = np.asarray(ids, dtype=np.int64)
        mask = starts[ids]
        if len(ids):
            mask[1:] |= ends_space[ids[:-1]]
            mask[0] = True
        return mask

    def save(self, directory: str | os.PathLike) -> None:
        """Copy the tokenizer's files (byte for byte, so the fingerprint stays valid) into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (self.path / name).exists():
                shutil.copyfile(self.path / name, d / name)

    def __repr__(self) -> str:
        return f"Tokenizer({str(self.path)!r}, kind={self.kind!r}, vocab_size={self.vocab_size})"


def load_tokenizer(path: str | os.PathLike, flag: str = "--tokenizer") -> Tokenizer:
    """Load TOK/ (or any directory holding a tokenizer's files and manifest, such as DATA/tokenizer)."""
    manifest = read_manifest(path, "tokenizer", flag=flag)
    d = Path(path)
    if not (d / "tokenizer.json").is_file():
        raise PlmkitError(f"{flag} {path} has no tokenizer.json", hint="retrain it with `plmkit tokenize`")
    return Tokenizer(d, manifest)


def _is_cjk(ch: str) -> bool:
    return bool(ch) and any(lo <= ord(ch) <= hi for lo, hi in CJK_RANGES)


def _byte_level_text(token: str, byte_decoder: dict[str, int]) -> tuple[bytes, bool]:
    """The bytes a byte-level BPE token stands for; False when it is not a byte-level spelling."""
    if all(c in byte_decoder for c in token):
        return bytes(byte_decoder[c] for c in token), True
    return b"", False


def _first_char(data: bytes) -> str:
    """The first character of possibly truncated UTF-8: a CJK lead byte alone still says 'CJK'.

    Three-byte sequences led by 0xE3…0xE9 cover U+3000…U+9FFF (CJK punctuation, kana and the
    ideograph blocks); for a lone lead byte we take the block's first ideograph range as a proxy.
    """
    for n in range(min(4, len(data)), 0, -1):
        try:
            return data[:n].decode("utf-8")[0]
        except UnicodeDecodeError:
            continue
    return "\u4e00" if data and 0xE4 <= data[0] <= 0xE9 else ""


def _word_tables(hf, kind: str, special_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-id lookup tables: does the token start a word; does it end in whitespace."""
    from tokenizers import pre_tokenizers

    n = hf.get_vocab_size(with_added_tokens=True)
    starts, ends = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    byte_decoder = {c: i for i, c in enumerate(_bytes_to_unicode())} if kind == "bpe" else {}
    assert kind != "bpe" or len(pre_tokenizers.ByteLevel.alphabet()) == 256
    for token, i in hf.get_vocab(with_added_tokens=True).items():
        if kind == "wordpiece":
            starts[i] = not token.startswith("##")
            continue
        if kind == "bpe":
            data, ok = _byte_level_text(token, byte_decoder)
        elif token.startswith("<0x") and len(token) == 6:  # SentencePiece byte-fallback piece
            data, ok = bytes([int(token[3:5], 16)]), True
        else:
            data, ok = token.replace("▁", " ").encode("utf-8"), True
        if not ok or not data:
            continue
        first = _first_char(data)
        starts[i] = data[:1].isspace() or _is_cjk(first)
        ends[i] = data[-1:].isspace()
    starts[special_ids] = True
    ends[special_ids] = True
    return starts, ends


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte → printable character table (index = byte value), as `tokenizers` ByteLevel uses."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars
