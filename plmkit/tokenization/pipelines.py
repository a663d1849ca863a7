"""Tokenizer pipelines, assembled from `tokenizers` components (one function per kind).

    wordpiece   BertNormalizer (clean text, CJK ideographs split per character, optional
                lower-casing / accent stripping) → BertPreTokenizer (whitespace, punctuation)
                → WordPiece with `##` continuations → WordPiece decoder
    bpe         optional Lowercase / accent stripping → ByteLevel (GPT-2 regex, no prefix space)
                → byte-level BPE → ByteLevel decoder
    unigram, sp-bpe   built from the SentencePiece model in `spm.py`

The special tokens are added tokens (`special=True`, matched in the raw text before
normalisation, as transformers does: a user who types "[MASK]" gets the mask token) and the
preset's template is the post-processor that transformers applies on request.
"""

from __future__ import annotations

import numpy as np
from tokenizers import (
    AddedToken,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from plmkit.tokenization.presets import Preset

# The code points BertNormalizer's `handle_chinese_chars` pads with spaces, as the library has them
# (not quite BERT's original list: U+2B820–U+2B91F is not among them); a test checks them all.
CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF), (0x2A700, 0x2B81F),
              (0x2B920, 0x2CEAF), (0x2F800, 0x2FA1F))


def text_normalizers(kind: str, lowercase: bool, strip_accents: bool) -> list[normalizers.Normalizer]:
    """Lower-casing and accent stripping for the kinds whose model has no BERT normaliser.

    Accent stripping decomposes, drops combining marks, and recomposes for byte-level BPE; for
    SentencePiece it is NFKD + drop marks, as ALBERT's `preprocess_text` (SentencePiece's own
    NFKC recomposes afterwards).
    """
    steps: list[normalizers.Normalizer] = []
    if strip_accents:
        steps += [normalizers.NFKD() if kind in ("unigram", "sp-bpe") else normalizers.NFD(), normalizers.StripAccents()]
        if kind == "bpe":
            steps.append(normalizers.NFC())
    if lowercase:
        steps.append(normalizers.Lowercase())
    return steps


def wordpiece(lowercase: bool, strip_accents: bool, unk: str, vocab: dict[str, int] | None = None,
              model: models.WordPiece | None = None) -> Tokenizer:
    """The WordPiece pipeline around a new model over `vocab`, or around a trained `model`."""
    if model is None:
        model = models.WordPiece(vocab, unk_token=unk, continuing_subword_prefix="##", max_input_chars_per_word=100)
    tok = Tokenizer(model)
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def byte_level_bpe(lowercase: bool, strip_accents: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    steps = text_normalizers("bpe", lowercase, strip_accents)
    if steps:
        tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def wordpiece_alphabet(char_counts: dict[str, int], tok: Tokenizer, limit: int) -> tuple[list[str], list[str]]:
    """The characters a WordPiece vocabulary keeps, and those that get a `##` continuation piece.

    `tokenizers`' WordPiece trainer is not deterministic (tokenizers#1794): it numbers the `##c`
    pieces in hash-map order, and those numbers break ties between equally frequent merges. plmkit
    therefore names them up front, sorted, so that their ids, and every merge, are fixed. The
    alphabet is the `limit` most frequent characters after normalisation (ties by code point);
    punctuation and CJK ideographs are words of their own and never continue one.

    >>> t = wordpiece(True, True, "[UNK]")
    >>> wordpiece_alphabet({"A": 5, "é": 3, "b": 1, "中": 2, ",": 9, " ": 9}, t, 4)
    ([',', 'a', 'e', '中'], ['a', 'e'])
    """
    # Counts after normalisation, summed per character with numpy: on a Chinese corpus a dict
    # update per character cost a tenth of what plmkit adds to the library's training
    # (BertNormalizer pads every ideograph with spaces: each has a three-character form).
    forms = _normalize_each(tok.normalizer, list(char_counts))
    lengths = np.fromiter(map(len, forms), dtype=np.int64, count=len(forms))
    weights = np.repeat(np.fromiter(char_counts.values(), dtype=np.int64, count=len(forms)), lengths)
    codes, where = np.unique(_code_points("".join(forms)), return_inverse=True)
    totals = np.zeros(codes.size, dtype=np.int64)
    np.add.at(totals, where, weights)
    keep = np.array([not chr(c).isspace() for c in codes.tolist()], dtype=bool)
    codes, totals = codes[keep], totals[keep]
    if codes.size > limit:  # the most frequent; ties by code point (codes are sorted, the sort is stable)
        codes = np.sort(codes[np.argsort(-totals, kind="stable")[:limit]])
    chars = [chr(c) for c in codes.tolist()]
    candidates = [chr(c) for c in codes[~_is_cjk_code(codes)].tolist()]
    continuing = [c for c, one in zip(candidates, _one_word_each(tok.pre_tokenizer, candidates), strict=True) if one]
    return chars, continuing


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)


# Separators for the batched calls below: ASCII punctuation, which no normaliser step changes.
_SEPARATORS = "|~^`@#$%&*+=<>"


def _normalize_each(normalizer, chars: list[str]) -> list[str]:
    """`[normalizer.normalize_str(c) for c in chars]`, in one call for a large alphabet (a call per
    character costs more than the rest of a small corpus's WordPiece set-up).

    The characters are joined by a separator the normaliser leaves alone; when the output holds
    exactly one separator fewer than there are characters, no character's normal form contains
    one, so splitting at them is exact (every step is per character: NFD, mark removal,
    lower-casing, CJK padding, control-character removal). Otherwise, one call per character.
    """
    sep = next((s for s in _SEPARATORS if s not in chars), None)
    if sep is not None and len(chars) > 1:
        out = normalizer.normalize_str(sep.join(chars))
        if out.count(sep) == len(chars) - 1:
            return out.split(sep)
    return [normalizer.normalize_str(c) for c in chars]


def _one_word_each(pre_tokenizer, chars: list[str]) -> list[bool]:
    """For each character c, whether `a{c}a` stays one pre-tokenised word (c continues a word),
    in one call: the probes are joined by spaces and each word counted against the probe its
    offsets fall in."""
    if not chars:
        return []
    words = [0] * len(chars)
    for _, (start, _end) in pre_tokenizer.pre_tokenize_str(" ".join(f"a{c}a" for c in chars)):
        words[start // 4] += 1  # probe i spans characters 4i … 4i+2; the space after it splits
    return [n == 1 for n in words]


def _is_cjk_code(codes: np.ndarray) -> np.ndarray:
    """Which code points are CJK ideographs, as BertNormalizer's `handle_chinese_chars` splits them."""
    out = np.zeros(codes.shape, dtype=bool)
    for lo, hi in CJK_RANGES:
        out |= (codes >= lo) & (codes <= hi)
    return out


def trainer(kind: str, vocab_size: int, min_frequency: int, specials: list[str],
            alphabet: tuple[list[str], list[str]] | None = None) -> trainers.Trainer:
    """The `tokenizers` trainer for wordpiece/bpe; special tokens take ids 0…len(specials)-1.

    WordPiece: `alphabet` is `wordpiece_alphabet`'s result; the `##c` pieces follow the special
    tokens (they are registered as trainer "special tokens" only to fix their ids; `finish`
    makes them ordinary pieces again).
    """
    if kind == "wordpiece":
        chars, continuing = alphabet
        return trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
            special_tokens=specials + [f"##{c}" for c in continuing], initial_alphabet=chars,
            limit_alphabet=len(chars), continuing_subword_prefix="##")
    return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                               show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def finish(tok: Tokenizer, preset: Preset, specials: list[str]) -> None:
    """Mark the special tokens (already in the vocabulary) and set the preset's post-processor."""
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if preset.single is None:
        tok.post_processor = None
        return
    used = {w.split(":")[0] for w in f"{preset.single} {preset.pair}".split() if not w.startswith("$")}
    tok.post_processor = processors.TemplateProcessing(
        single=preset.single, pair=preset.pair, special_tokens=[(t, tok.token_to_id(t)) for t in sorted(used)])
