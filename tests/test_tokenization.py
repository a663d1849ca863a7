"""Tokenizers: special-token roles, parity with transformers and SentencePiece, the interface, bad input.

Every tokenizer here is trained on `DOCS`, a small multilingual text made in this file, with
small vocabularies so that each training takes well under a second.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from plmkit.errors import PlmkitError
from plmkit.tokenization import PRESETS, ROLES, load_tokenizer, resolve_spec, train_tokenizer

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Language models learn the statistics of text from very large corpora.",
    "A tokenizer splits words into pieces that the model can embed.",
    "Training a model takes data, patience, and a good learning rate.",
    "Whole words are masked together when whole-word masking is on.",
    "Sentences are separated by punctuation; paragraphs by blank lines.",
    "The café served crème brûlée and a naïve résumé was read aloud.",
    "Numbers like 3.14159 and 2024 appear in text, too.",
    "Unbelievable! The researchers were surprised by the results.",
    "Encoders read the whole sentence; decoders predict the next token.",
    "Byte-level tokenizers never meet an unknown character.",
    "In the morning the market opens, and in the evening it closes.",
]
CHINESE = [
    "语言模型从大量文本中学习统计规律。",
    "分词器把句子切成小块，模型再把它们变成向量。",
    "今天天气很好，我们去公园散步吧！",
    "红楼梦是中国古典小说的代表作之一。",
    "训练模型需要数据、耐心和合适的学习率。",
    "每个汉字都被当作一个词来处理。",
]
# Documents: deterministic mixtures of the sentences above, one sentence per line.
DOCS = ["\n".join([ENGLISH[i % 12], ENGLISH[(5 * i + 3) % 12], CHINESE[i % 6], ENGLISH[(7 * i + 1) % 12]])
        for i in range(150)]
# What the parity tests encode: English, Chinese, emoji, accents, runs of spaces/tabs/newlines.
FIXTURE = [
    "Hello world", "The café served crème brûlée.", "Ångström, naïve, façade, ÉCOLE", "语言模型，你好！",
    "emoji 😀🎉 and a family 👨‍👩‍👧", "mixed 中文 and English text 😀", "  leading and trailing spaces  ",
    "tabs\tand\t\ttabs", "new\nlines\n\n\nand\r\nCRLF", "many     spaces   between", "", " ", "\t\n",
    "UPPER lower MiXeD 3.14159 2024", "unbelievably unknown ✓ ☃ ⚡ symbols", "\u00a0non-breaking\u3000space",
]
SIZES = {"wordpiece": 500, "bpe": 600, "unigram": 300, "sp-bpe": 700}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """preset name → trained TOK path (trained once per module, on first use)."""
    cache: dict[str, Path] = {}

    def get(preset: str, **overrides) -> Path:
        key = preset + json.dumps(overrides, sort_keys=True)
        if key not in cache:
            kind = overrides.pop("kind", None) or PRESETS[preset].kind
            spec = resolve_spec(preset=preset, kind=kind, vocab_size=overrides.pop("vocab_size", SIZES[kind]),
                                **overrides)
            out = tmp_path_factory.mktemp("tok") / preset
            train_tokenizer(DOCS, out, spec)
            cache[key] = out
        return cache[key]

    return get


def hf_tokenizer(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path))


# --------------------------------------------------------------------------- presets and roles


def test_flags_win_over_the_preset_and_accents_follow_lowercase():
    assert resolve_spec(preset="bert", vocab_size=500).lowercase is True
    s = resolve_spec(preset="bert", vocab_size=500, lowercase=False)
    assert (s.kind, s.lowercase, s.strip_accents) == ("wordpiece", False, False)
    s = resolve_spec(preset="bert", vocab_size=500, lowercase=False, strip_accents=True)
    assert (s.lowercase, s.strip_accents) == (False, True)
    s = resolve_spec(preset="roberta", kind="unigram", vocab_size=500)
    assert (s.kind, s.preset, s.lowercase) == ("unigram", "roberta", False)
    assert resolve_spec(kind="sp-bpe", vocab_size=500).preset == "llama"


# The ids every preset gives its special tokens: the preset's own order first (as in the
# reference vocabularies), then GLM's four, then the 100 sentinels.
EXPECTED_IDS = {
    "bert": dict(pad=0, unk=1, cls=2, sep=3, mask=4, bos=2, eos=3, gmask=5, smask=6, sop=7, eop=8),
    "roberta": dict(bos=0, pad=1, eos=2, unk=3, mask=4, cls=0, sep=2, gmask=5, smask=6, sop=7, eop=8),
    "albert": dict(pad=0, unk=1, cls=2, sep=3, mask=4, bos=2, eos=3, gmask=5, smask=6, sop=7, eop=8),
    "t5": dict(pad=0, eos=1, unk=2, bos=3, mask=4, cls=3, sep=1, gmask=5, smask=6, sop=7, eop=8),
    "gpt": dict(eos=0, bos=1, pad=2, unk=3, mask=4, cls=1, sep=0, gmask=5, smask=6, sop=7, eop=8),
    "llama": dict(unk=0, bos=1, eos=2, pad=3, mask=4, cls=1, sep=2, gmask=5, smask=6, sop=7, eop=8),
    "glm": dict(pad=0, unk=1, cls=2, sep=3, mask=4, eos=5, bos=2, gmask=6, smask=7, sop=8, eop=9),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_reserves_every_role_with_the_reference_ids(trained, preset):
    tok = load_tokenizer(trained(preset))
    assert tok.roles == EXPECTED_IDS[preset]
    first = max(EXPECTED_IDS[preset].values()) + 1
    assert tok.sentinel_ids == list(range(first, first + 100))
    assert tok.tokens(tok.sentinel_ids[:2]) == ["<extra_id_0>", "<extra_id_1>"]
    assert tok.special_ids.tolist() == list(range(first + 100))
    m = json.loads((trained(preset) / "plmkit.json").read_text())
    assert set(m["special_tokens"]) == set(ROLES)
    assert m["special_tokens"]["mask"] == {"token": PRESETS[preset].names["mask"], "id": tok.id("mask")}
    assert m["params"]["preset"] == preset and m["vocab_size"] == tok.vocab_size == SIZES[PRESETS[preset].kind]
    with pytest.raises(PlmkitError, match="no 'frobnicate' token"):
        tok.id("frobnicate")


@pytest.mark.parametrize("preset", ["bert", "roberta", "t5", "llama"])
def test_special_tokens_are_never_produced_from_plain_text(trained, preset):
    tok = load_tokenizer(trained(preset))
    for ids in tok.encode_batch(FIXTURE + DOCS[:20]):
        assert not np.isin(ids, tok.special_ids[tok.special_ids != tok.id("unk")]).any()


@pytest.mark.parametrize("preset", ["bert", "roberta", "t5", "llama"])
def test_a_special_token_typed_in_the_text_is_that_token_never_split(trained, preset):
    """As in transformers: added special tokens are matched in the raw text, before normalisation."""
    tok = load_tokenizer(trained(preset))
    mask = PRESETS[preset].names["mask"]
    ids = tok.encode(f"fill {mask} here <extra_id_17>!")
    assert tok.id("mask") in ids.tolist() and tok.sentinel_ids[17] in ids.tolist()
    assert (ids == tok.id("mask")).sum() == 1


# --------------------------------------------------------------------------- parity with transformers


@pytest.mark.parametrize("preset", ["bert", "roberta", "albert", "t5", "gpt", "llama", "glm"])
def test_transformers_autotokenizer_loads_tok_and_encodes_identically(trained, preset):
    path = trained(preset)
    tok, hf = load_tokenizer(path), hf_tokenizer(path)
    names = PRESETS[preset].all_names
    for role in ("pad", "unk", "cls", "sep", "bos", "eos", "mask"):
        assert getattr(hf, f"{role}_token") == names[role], role
        assert getattr(hf, f"{role}_token_id") == tok.id(role), role
    assert {"[gMASK]", "[sMASK]", "<|startofpiece|>", "<|endofpiece|>", "<extra_id_0>", "<extra_id_99>"} <= \
        set(hf.all_special_tokens)
    ours = tok.encode_batch(FIXTURE)
    theirs = hf(FIXTURE, add_special_tokens=False)["input_ids"]
    for text, a, b in zip(FIXTURE, ours, theirs, strict=True):
        assert a.tolist() == b, text
    for a in ours:
        assert hf.decode(a.tolist()) == tok.decode(a)


def test_transformers_adds_the_presets_special_tokens_on_request(trained):
    tok, hf = load_tokenizer(trained("bert")), hf_tokenizer(trained("bert"))
    a, b = tok.encode("hello"), tok.encode("world")
    cls, sep = tok.id("cls"), tok.id("sep")
    assert hf("hello")["input_ids"] == [cls, *a.tolist(), sep]
    pair = hf("hello", "world")
    assert pair["input_ids"] == [cls, *a.tolist(), sep, *b.tolist(), sep]
    assert pair["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    t5 = load_tokenizer(trained("t5"))
    assert hf_tokenizer(trained("t5"))("hello")["input_ids"] == [*t5.encode("hello").tolist(), t5.id("eos")]


def test_bert_preset_encodes_like_bert_tokenizer_fast_on_the_same_vocab(trained):
    from transformers import BertTokenizerFast

    path = trained("bert")
    tok = load_tokenizer(path)
    # transformers 4 names the first argument vocab_file, transformers 5 vocab; both read vocab.txt.
    bert = BertTokenizerFast(str(path / "vocab.txt"), do_lower_case=True)
    for text in FIXTURE + ["fill [MASK] here", "UNBELIEVABLE Ünïcödé"]:
        assert tok.encode(text).tolist() == bert(text, add_special_tokens=False)["input_ids"], text
    assert (path / "vocab.txt").read_text().splitlines()[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.mark.parametrize("preset", ["t5", "llama", "albert"])
def test_spm_model_and_tokenizer_json_encode_identically(trained, preset):
    """`spm.model` (the library's file) and the converted `tokenizer.json` give the same ids.

    albert lower-cases and strips accents before SentencePiece (as ALBERT's own code does), so
    its `spm.model` is given the text after those steps.
    """
    import sentencepiece as sp
    from tokenizers import normalizers

    path = trained(preset)
    tok, proc = load_tokenizer(path), sp.SentencePieceProcessor(model_file=str(path / "spm.model"))
    pre = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()])
    texts = FIXTURE + DOCS[:30] + ["x" * 300, "中" * 50, " ".join(ENGLISH)]
    for text in texts:
        seen = pre.normalize_str(text) if preset == "albert" else text
        assert tok.encode(text).tolist() == proc.encode(seen), text
    assert proc.pad_id() == tok.id("pad") and proc.eos_id() == tok.id("eos") and proc.unk_id() == tok.id("unk")


def test_sp_bpe_falls_back_to_bytes_and_byte_level_bpe_round_trips_any_text(trained):
    llama, gpt = load_tokenizer(trained("llama")), load_tokenizer(trained("gpt"))
    ids = llama.encode("⚡")  # U+26A1, not in the training text: three UTF-8 bytes
    assert llama.tokens(ids)[-3:] == ["<0xE2>", "<0x9A>", "<0xA1>"]
    for text in FIXTURE:
        assert gpt.decode(gpt.encode(text)) == text
        assert llama.decode(llama.encode(text)) == text


# --------------------------------------------------------------------------- the interface


def test_encode_batch_gives_int32_arrays_without_special_tokens(trained):
    tok = load_tokenizer(trained("bert"))
    out = tok.encode_batch(["hello world", "", "语言"])
    assert [a.dtype for a in out] == [np.int32] * 3
    assert len(out[1]) == 0 and tok.tokens(out[2]) == ["语", "言"]
    assert tok.encode("hello world").tolist() == out[0].tolist()
    assert tok.decode(out[0]) == "hello world"


def test_word_start_mask_wordpiece(trained):
    tok = load_tokenizer(trained("bert"))
    t = tok.hf.token_to_id
    ids = [t("t"), t("##h"), t("##e"), t("语"), t("言"), t("[MASK]"), t("##e"), t("a")]
    assert tok.word_start_mask(ids).tolist() == [True, False, False, True, True, True, True, True]


def test_word_start_mask_byte_level(trained):
    """Byte-level: Ġ (space), Ċ (newline) start words, and so does what follows them; a CJK lead
    byte (ä = 0xE4) starts a word, a continuation byte (½ = 0xBD) does not."""
    tok = load_tokenizer(trained("roberta"))
    t = tok.hf.token_to_id
    ids = [t("H"), t("i"), t("Ġ"), t("w"), t("!"), t("Ċ"), t("B"), t("ä"), t("½"), t("<mask>"), t("e")]
    assert tok.word_start_mask(ids).tolist() == [True, False, True, True, False, True, True, True, False, True, True]


def test_word_start_mask_sentencepiece(trained):
    tok = load_tokenizer(trained("llama"))
    t = tok.hf.token_to_id
    ids = [t("▁the"), t("e"), t("中"), t("<0xE4>"), t("<0xB8>"), t("<0x0A>"), t("e")]
    assert None not in ids
    assert tok.word_start_mask(ids).tolist() == [True, False, True, True, False, True, True]
    assert tok.word_start_mask([]).tolist() == []


def test_save_copies_the_directory_byte_for_byte(trained, tmp_path):
    tok = load_tokenizer(trained("t5"))
    tok.save(tmp_path / "copy")
    copy = load_tokenizer(tmp_path / "copy")
    assert copy.fingerprint == tok.fingerprint
    for name in ("tokenizer.json", "spm.model", "plmkit.json"):
        assert (tmp_path / "copy" / name).read_bytes() == (trained("t5") / name).read_bytes()


def test_an_edited_tokenizer_json_is_refused(trained, tmp_path):
    load_tokenizer(trained("bert")).save(tmp_path / "tok")
    f = tmp_path / "tok" / "tokenizer.json"
    f.write_text(f.read_text().replace('"[MASK]"', '"[MASQUE]"'))
    with pytest.raises(PlmkitError, match="mask token"):
        load_tokenizer(tmp_path / "tok")


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram", "sp-bpe"])
def test_training_is_deterministic(tmp_path, kind):
    spec = resolve_spec(kind=kind, vocab_size=SIZES[kind], seed=3)
    a = train_tokenizer(DOCS, tmp_path / "a", spec)
    b = train_tokenizer(DOCS, tmp_path / "b", spec)
    assert (tmp_path / "a/tokenizer.json").read_bytes() == (tmp_path / "b/tokenizer.json").read_bytes()
    assert a["fingerprint"] == b["fingerprint"]


@pytest.mark.parametrize("lowercase,strip_accents", [(True, True), (False, False), (True, False)])
def test_wordpiece_alphabet_batched_calls_equal_one_call_per_character(lowercase, strip_accents):
    from plmkit.tokenization import pipelines

    rng = np.random.default_rng(0)  # every BMP character below U+3000, and 3000 from the planes above
    codes = list(range(0x20, 0x3000)) + rng.choice(np.arange(0x3000, 0x2FFFF), 3000, replace=False).tolist()
    chars = [chr(c) for c in codes if not 0xD800 <= c < 0xE000]
    tok = pipelines.wordpiece(lowercase, strip_accents, "[UNK]")
    assert pipelines._normalize_each(tok.normalizer, chars) == [tok.normalizer.normalize_str(c) for c in chars]
    words = [c for c in chars if not c.isspace()]
    assert pipelines._one_word_each(tok.pre_tokenizer, words) == \
        [len(tok.pre_tokenizer.pre_tokenize_str(f"a{c}a")) == 1 for c in words]
    # An alphabet holding every separator candidate: one call per character.
    every = list(pipelines._SEPARATORS) + ["É", "中"]
    assert pipelines._normalize_each(tok.normalizer, every) == [tok.normalizer.normalize_str(c) for c in every]


def reference_wordpiece_alphabet(char_counts, tok, limit):
    """`pipelines.wordpiece_alphabet` by its definition: one character at a time."""
    from plmkit.tokenization import pipelines

    normalized = {}
    for c, n in char_counts.items():
        for d in tok.normalizer.normalize_str(c):
            normalized[d] = normalized.get(d, 0) + n
    chars = sorted((c for c in normalized if not c.isspace()), key=lambda c: (-normalized[c], c))[:limit]
    plain = pipelines.wordpiece(False, False, "[UNK]").normalizer
    cjk = lambda c: plain.normalize_str(c) == f" {c} "  # noqa: E731 (an ideograph: padded with spaces)
    continuing = [c for c in sorted(chars) if not cjk(c) and len(tok.pre_tokenizer.pre_tokenize_str(f"a{c}a")) == 1]
    return sorted(chars), continuing


@pytest.mark.parametrize("lowercase,strip_accents", [(True, True), (False, False)])
def test_wordpiece_alphabet_is_the_most_frequent_normalised_characters(lowercase, strip_accents):
    """Counts merge where normalisation does (A → a, é → e), ties go to the lower code point, CJK
    ideographs and punctuation never continue a word; checked against the per-character definition
    on random counts with many ties, for limits that cut the alphabet anywhere."""
    from plmkit.tokenization import pipelines

    rng = np.random.default_rng(1)
    pool = list("AaBbÉéèe中文字,.!?-_ \t\n\u3000\u0301ßﬁ") + [chr(c) for c in rng.integers(0x21, 0x2FFFF, 400)
                                                          if not 0xD800 <= c < 0xE000]
    tok = pipelines.wordpiece(lowercase, strip_accents, "[UNK]")
    for limit in (1, 3, 10, 50, 10_000):
        counts = {c: int(rng.integers(1, 6)) for c in pool}  # counts 1..5: ties everywhere
        assert pipelines.wordpiece_alphabet(counts, tok, limit) == reference_wordpiece_alphabet(counts, tok, limit)


def test_cjk_ranges_are_the_characters_the_bert_normalizer_pads():
    from plmkit.tokenization import pipelines

    normalizer = pipelines.wordpiece(False, False, "[UNK]").normalizer
    codes = np.array([c for c in range(0x2000, 0x30000) if not 0xD800 <= c < 0xE000])
    chars = [chr(c) for c in codes]
    padded = np.array([f == f" {c} " for c, f in zip(chars, pipelines._normalize_each(normalizer, chars), strict=True)])
    assert (pipelines._is_cjk_code(codes) == padded).all()


@pytest.mark.parametrize("lowercase,strip_accents", [(True, True), (False, False)])
def test_held_out_token_count_counts_ideographs_as_the_library_does(trained, lowercase, strip_accents):
    """`count_tokens` counts CJK ideograph runs itself (one token per ideograph) and leaves the rest
    to the library: the library's own total, on text where ideographs touch Latin letters, special
    tokens, combining marks, controls and compatibility ideographs, and on every BMP ideograph
    (most of them [UNK] here)."""
    from tokenizers import Tokenizer

    from plmkit.tokenization.train import count_tokens

    tok = Tokenizer.from_file(str(trained("bert", lowercase=lowercase, strip_accents=strip_accents) / "tokenizer.json"))
    texts = FIXTURE + DOCS[:20] + [
        "a中b", "中[MASK]文", "x中\u0301文y", "中\x00文", "豈更車 \uf900\ufaff", "AB語言CD模型ef", "中\ufe00文",
        "".join(chr(c) + ("" if c % 7 else "x") for c in range(0x3400, 0x4DC0)),
        "".join(chr(c) + ("" if c % 5 else ", ") for c in range(0x4E00, 0xA000)),
        "".join(map(chr, range(0xF900, 0xFB00))),
        "".join(chr(c) + ("" if c % 3 else "z") for lo, hi in [(0x20000, 0x20100), (0x2A6D0, 0x2A710), (0x2B810, 0x2B930),
                                                           (0x2CEA0, 0x2CEC0), (0x2F7F0, 0x2F810)]
                for c in range(lo, hi)),
    ]
    for batch in (texts, texts[-3:], [""]):
        assert count_tokens(tok, batch, "wordpiece") == \
            sum(len(e.ids) for e in tok.encode_batch(batch, add_special_tokens=False))


@pytest.mark.parametrize("replay_chars", [10**9, 100])
def test_wordpiece_second_pass_replays_a_small_corpus_and_rereads_a_large_one(tmp_path, monkeypatch, replay_chars):
    from plmkit.progress import Progress
    from plmkit.tokenization import train as train_module

    class Advances(Progress):
        def __init__(self):
            self.total = 0.0

        def update(self, advance=0, **fields):
            self.total += advance

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(DOCS), encoding="utf-8")
    reads = []
    import plmkit.corpus

    original = plmkit.corpus.iter_documents
    monkeypatch.setattr(plmkit.corpus, "iter_documents", lambda *a, **k: reads.append(1) or original(*a, **k))
    monkeypatch.setattr(train_module, "REPLAY_CHARS", replay_chars)
    shown = Advances()
    spec = resolve_spec(kind="wordpiece", vocab_size=SIZES["wordpiece"])
    train_module.train_from_corpus([corpus], tmp_path / "tok", spec, progress=shown)
    assert len(reads) == (1 if replay_chars > 100 else 2)
    assert shown.total == pytest.approx(2 * corpus.stat().st_size / 1e6)  # both passes advance the bar
    reference = tmp_path / "ref"
    train_tokenizer(DOCS, reference, spec)
    assert (tmp_path / "tok/tokenizer.json").read_bytes() == (reference / "tokenizer.json").read_bytes()


def test_every_50th_document_is_held_out_to_measure_chars_per_token(trained):
    m = json.loads((trained("bert") / "plmkit.json").read_text())
    assert m["corpus"]["documents"] == 150 and m["corpus"]["held_out_documents"] == 3
    assert m["corpus"]["chars_per_token_on"] == "held-out"
    assert 1.0 < m["corpus"]["chars_per_token"] < 10.0


def test_lowercase_and_accents_follow_the_flags(trained):
    cased = load_tokenizer(trained("bert", lowercase=False))
    uncased = load_tokenizer(trained("bert"))
    assert uncased.decode(uncased.encode("The café")) == "the cafe"
    assert cased.decode(cased.encode("The café")) == "The café"
    assert cased.manifest["params"]["strip_accents"] is False


# --------------------------------------------------------------------------- bad input


def test_vocab_smaller_than_the_special_tokens_is_refused():
    with pytest.raises(PlmkitError, match=r"--vocab-size 100 leaves no room .* 109 special tokens"):
        resolve_spec(preset="bert", vocab_size=100)
    with pytest.raises(PlmkitError, match="256 byte tokens"):
        resolve_spec(preset="gpt", vocab_size=300)


def test_unknown_preset_or_kind_names_the_choices():
    with pytest.raises(PlmkitError, match="unknown --preset 'bart'.*bert, roberta"):
        resolve_spec(preset="bart", vocab_size=1000)
    with pytest.raises(PlmkitError, match="unknown --kind 'char'"):
        resolve_spec(kind="char", vocab_size=1000)
    with pytest.raises(PlmkitError, match="pass --kind or --preset"):
        resolve_spec(vocab_size=1000)


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram", "sp-bpe"])
def test_a_corpus_too_small_for_the_vocabulary_is_an_error_unless_allowed(tmp_path, kind):
    spec = resolve_spec(kind=kind, vocab_size=5000)
    with pytest.raises(PlmkitError, match="too small for --vocab-size 5000.*--allow-smaller-vocab") as e:
        train_tokenizer(DOCS[:40], tmp_path / "tok", spec)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "tok").exists()
    spec = resolve_spec(kind=kind, vocab_size=5000, allow_smaller_vocab=True)
    m = train_tokenizer(DOCS[:40], tmp_path / "tok", spec)
    assert m["params"]["vocab_size"] == 5000 and m["vocab_size"] < 5000
    assert load_tokenizer(tmp_path / "tok").vocab_size == m["vocab_size"]


def test_an_empty_corpus_is_an_error(tmp_path):
    for kind in ("wordpiece", "bpe", "unigram", "sp-bpe"):
        with pytest.raises(PlmkitError, match="no documents"):
            train_tokenizer([], tmp_path / "tok", resolve_spec(kind=kind, vocab_size=500))


def test_an_existing_directory_is_refused_without_force(tmp_path):
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "notes.txt").write_text("mine")
    spec = resolve_spec(kind="wordpiece", vocab_size=500)
    with pytest.raises(PlmkitError, match="already exists.*--force"):
        train_tokenizer(DOCS, tmp_path / "tok", spec)
    assert (tmp_path / "tok" / "notes.txt").read_text() == "mine"
    train_tokenizer(DOCS, tmp_path / "tok", spec, force=True)
    assert not (tmp_path / "tok" / "notes.txt").exists() and load_tokenizer(tmp_path / "tok").vocab_size == 500


class Failing:
    """Documents that fail after 100 of them, as a corpus reader meeting bad bytes (or Ctrl-C) does."""

    def __init__(self, error: BaseException):
        self.error = error

    def __iter__(self):
        yield from DOCS[:100]
        raise self.error


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram", "sp-bpe"])
def test_an_interrupted_training_leaves_nothing_behind_and_keeps_its_error(tmp_path, kind):
    with pytest.raises(KeyboardInterrupt):
        train_tokenizer(Failing(KeyboardInterrupt()), tmp_path / "tok", resolve_spec(kind=kind, vocab_size=500))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PlmkitError, match="byte 123"):
        train_tokenizer(Failing(PlmkitError("a.txt: invalid UTF-8 at byte 123")), tmp_path / "tok",
                        resolve_spec(kind=kind, vocab_size=500))
    assert list(tmp_path.iterdir()) == []
