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


def wordpiece(lowercase: bool, strip_accents: bool, unk: str) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token=unk, continuing_subword_prefix="##", max_input_chars_per_word=100))
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


def trainer(kind: str, vocab_size: int, min_frequency: int, specials: list[str]) -> trainers.Trainer:
    """The `tokenizers` trainer for wordpiece/bpe; special tokens take ids 0…len(specials)-1.

    WordPiece keeps every character it sees unless told otherwise, so a corpus with many
    distinct characters (Chinese) could overshoot a small vocabulary; `limit_alphabet` keeps
    single characters (and their `##` forms) to at most the learnable part of the vocabulary.
    """
    if kind == "wordpiece":
        return trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False,
            limit_alphabet=max(1, (vocab_size - len(specials)) // 2), continuing_subword_prefix="##")
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
