"""FastEncoder gives exactly the `tokenizers` library's ids, for every pipeline plmkit trains.

Each tokenizer is trained here (plmkit's trainer, on the bundled corpus) and compared with
`Tokenizer.encode(text, add_special_tokens=False).ids` on a fixture of hostile text, on the
bundled corpus itself, and on random Unicode text (hypothesis). The encoder keeps a table of
units across calls, so every comparison also runs with a warm table and in other batches:
a unit must encode the same whatever text it came from.
"""

from __future__ import annotations

import doctest
import glob
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from plmkit.tokenization import fast, resolve_spec, train_tokenizer
from plmkit.tokenization.fast import FastEncoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, training arguments, expected plan)
PIPELINES = {
    "wordpiece": (dict(kind="wordpiece", vocab_size=2000), "wordpiece"),
    "wordpiece-cased": (dict(kind="wordpiece", vocab_size=2000, lowercase=False), "wordpiece"),
    "bpe": (dict(kind="bpe", vocab_size=1500), "bpe"),
    "bpe-lower-strip": (dict(kind="bpe", vocab_size=1500, lowercase=True, strip_accents=True), "bpe"),
    "unigram": (dict(kind="unigram", vocab_size=2500), "sentencepiece"),
    "unigram-albert": (dict(preset="albert", vocab_size=2500), "sentencepiece"),
    "sp-bpe": (dict(kind="sp-bpe", vocab_size=2500), "sentencepiece"),
}

NASTY = [
    "", " ", "   ", "\n", "\t\t", "\r\n", " \n ", "a", "The quick brown fox jumps over the lazy dog.",
    "  leading and trailing spaces  ", "double  spaces,  tabs\tand\nnewlines\n\nparagraphs\r\nCRLF",
    "Don't you think it's 'quoted'? We'll see... they're OK'D and I'M 'S fine",
    "Numbers: 3.14159, 1,000,000 and 200,000; 10000000000000000; ½ ² ⅷ ٣ १२",
    "Punctuation!!! ??? ... ---- ------------ ====== ***** ,,,, ;;; (([[{{}}]])) @#$%^&*_+=|\\<>/~`",
    "Café naïve résumé façade Ångström ÉCOLE Œuvre ß ẞ ﬁ ﬂ Ǆ ǅ İstanbul ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ",
    "Combining: e\u0301 a\u0300\u0316 o\u0308\u0304 \u0301leading mark, n\u0303 \u0327\u0301 x\u20dd",
    "中文文本，没有空格。《红楼梦》是一部小说！“引号”和（括号）。第一回  甄士隐梦幻识通灵　贾雨村",
    "日本語のテキスト、カタカナとひらがな。ｶﾀｶﾅ ｶﾞ ｷﾞ 漢字かな交じり文です。",
    "한국어 텍스트 한글 각 조합",
    "Emoji 😀😃👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇩🇪 keycap 1️⃣ heart ❤️ ZWJ a\u200db zwnj a\u200cb",
    "Spaces: a\u00a0b c\u2002d e\u2003f g\u2009h i\u200aj k\u202fl m\u205fn o\u3000p q\u1680r s\u2028t u\u2029v",
    "Controls: a\x00b c\x01d e\x0bf g\x0ch i\x1cj k\x1dl m\x1em n\x1fo p\x7fq r\x85s t\u200bu v\ufeffw x\ufffdy",
    "Arabic ؀١٢ مرحبا بالعالم \u0600\u0661 Hebrew שלום Devanagari नमस्ते क्षि Thai สวัสดี กำลัง Lao ກຳ",
    "x" * 150, "supercalifragilisticexpialidocious" * 4, "ab" * 70 + " " + "é" * 120,
    " ".join(["word"] * 200), "a-very-long-hyphenated-compound-word-that-keeps-going-and-going-and-going-on",
    "Special tokens: [MASK] [CLS] [SEP] [PAD] [UNK] <s> </s> <pad> <mask> <unk> <extra_id_0> <extra_id_99>",
    "glued[MASK]text<extra_id_7>more<|startofpiece|>x<|endofpiece|>[gMASK][sMASK]<|endoftext|>",
    "[mask] [ MASK ] <extra_id_> <extra_id_100> [MASK [MASK]]",
    "Metaspace ▁ in text: ▁▁ a▁b ▁leading trailing▁ ▁ ▁",
    "Mixed 中English混合text with 123数字 and ＦＵＬＬＷＩＤＴＨ ａｂｃ １２３ ！？",
    "Math 𝐀𝐁𝐂 𝔘𝔫𝔦 ℌ ℍ ℕ ∑∫∂ ≤≥≠ and astral 𠀀𠀁 𝄞",
    "Line\nbreaks\nin\nevery\nword\n", "   \n\t  mixed \u3000 whitespace \u00a0 only   ",
    "Ends with space ", " starts with space", "'s 't 're 've 'm 'll 'd", " 's", "  'S",
    "Greek final sigma ΟΔΟΣ οδος ὅς", "Soft\u00adhyphen and non\u2011breaking hyphen",
]


@pytest.fixture(scope="module")
def documents() -> list[str]:
    docs: list[str] = []
    for path in sorted(glob.glob(os.path.join(ROOT, "corpora", "*", "*.txt"))):
        with open(path, encoding="utf-8") as f:
            docs += [d for d in f.read().split("\n\n") if d.strip()]
    assert len(docs) > 100
    return docs


@pytest.fixture(scope="module")
def trained(documents, tmp_path_factory) -> dict[str, str]:
    """tokenizer.json text of each pipeline, trained by plmkit on the bundled corpus."""
    out = {}
    for name, (kw, _) in PIPELINES.items():
        d = tmp_path_factory.mktemp(name) / "tok"
        train_tokenizer(documents, d, resolve_spec(**kw, allow_smaller_vocab=True))
        out[name] = (d / "tokenizer.json").read_text(encoding="utf-8")
    return out


def library_ids(tokenizer_json: str, texts: list[str]) -> list[list[int]]:
    tok = Tokenizer.from_str(tokenizer_json)
    return [tok.encode(t, add_special_tokens=False).ids for t in texts]


def assert_same(enc: FastEncoder, tokenizer_json: str, texts: list[str]) -> None:
    got = enc.encode_batch(texts)
    want = library_ids(tokenizer_json, texts)
    assert all(g.dtype == np.int32 for g in got)
    bad = [(t, g.tolist(), w) for t, g, w in zip(texts, got, want, strict=True) if g.tolist() != w]
    assert not bad, f"{len(bad)} texts differ, first: {bad[0]}"


@pytest.mark.parametrize("name", list(PIPELINES))
def test_hostile_fixture_and_corpus_match_the_library(name, trained, documents):
    enc = FastEncoder(trained[name])
    assert enc.plan == PIPELINES[name][1], enc.reason  # the fast path is in use, not the fallback
    assert_same(enc, trained[name], NASTY)  # cold table
    assert_same(enc, trained[name], NASTY[::-1])  # warm table, other neighbours
    assert_same(enc, trained[name], documents)
    for t in NASTY[::3]:
        assert enc.encode(t).tolist() == library_ids(trained[name], [t])[0]
    # English prose stays on the fast path: only literal special tokens and, for Unigram, a few
    # near-tied lattices go to the library (as does text without spaces for the kinds that cannot
    # cut it, whose units are whole lines)
    english = [d for d in documents if d.isascii()]
    before = enc.library_texts
    enc.encode_batch(english)
    assert len(english) > 100 and enc.library_texts - before <= len(english) // 50


@pytest.mark.parametrize("name", ["wordpiece", "bpe", "unigram", "sp-bpe"])
def test_units_cached_in_one_text_are_reused_in_another(name, trained, documents):
    """Encoding the corpus in many small batches (one warm, shared table) equals the library."""
    enc = FastEncoder(trained[name])
    small = [ids.tolist() for i in range(0, len(documents), 7) for ids in enc.encode_batch(documents[i:i + 7])]
    assert small == library_ids(trained[name], documents)
    assert sum(t.size for t in enc._tables) < sum(len(d.split()) for d in documents)  # units were reused


@pytest.mark.parametrize("name", ["wordpiece", "bpe", "unigram", "sp-bpe"])
def test_warming_learns_every_unit_the_texts_need(name, trained, documents):
    """After `warm(texts)`, encoding those texts finds every unit it keeps in the tables (units over
    MAX_KEY_CHARS are never kept), and gives the library's ids."""
    enc = FastEncoder(trained[name])
    enc.warm(documents[:60] + NASTY)
    known = [len(t.index) for t in enc._tables]
    assert sum(known) > 100
    assert_same(enc, trained[name], documents[:60] + NASTY)
    assert [len(t.index) for t in enc._tables] == known


def test_a_literal_special_token_sends_its_text_to_the_library(trained):
    enc = FastEncoder(trained["wordpiece"])
    tok = Tokenizer.from_str(trained["wordpiece"])
    ids = enc.encode_batch(["a [MASK] b", "a [mask] b", "plain text"])
    assert enc.library_texts == 1  # only the first: "[mask]" is not the literal of an added token
    assert tok.token_to_id("[MASK]") in ids[0].tolist()
    assert tok.token_to_id("[MASK]") not in ids[1].tolist()


def test_wordpiece_cuts_at_whitespace_punctuation_and_ideographs(trained):
    enc = FastEncoder(trained["wordpiece"])
    split = enc._plan.split
    assert split("Hello, world!") == (["Hello,", "world!"], 2)  # chunks; refined when unseen
    assert enc._plan.refine("world!") == ["world", "!"]
    assert split("红楼梦，好。") == (["红", "楼", "梦", "，", "好", "。"], 6)
    assert split("a\x0bb c") == (["a\x0bb", "c"], 2)  # \x0b is removed by clean_text: no cut there


def test_byte_level_cuts_before_spaces_that_start_a_word(trained):
    split = FastEncoder(trained["bpe"])._plan.split
    assert split("Hello world, again") == (["Hello", "world,", "again"], 1)  # then " world," …
    assert split("a  b\n c ") == (["a", " ", " b", "\n", " c", " "], 6)  # GPT-2's whitespace rules


def test_sentencepiece_units(trained):
    unigram = FastEncoder(trained["unigram"])._plan.split
    assert unigram("one two\nthree") == (["one", "two", "three"], 3)  # "\n" normalises to a space
    assert unigram("x\x1cy z") == (["x\x1cy", "z"], 2)  # \x1c is removed: no cut
    assert fast._keep_spaces_split("a  b") == ([" a", "  b"], 2)
    sp = FastEncoder(trained["sp-bpe"])._plan.split
    assert sp("a line\nnext") == ([" a", " line", "\n", "next"], 4)  # no piece holds "\n": cut around it


def tie_tokenizer() -> str:
    """A SentencePiece-shaped Unigram where "▁aaa" has two best paths of equal score."""
    vocab = [["<unk>", 0.0], ["▁", -1.0], ["a", -1.0], ["aa", -2.0], ["b", -1.5], ["▁b", -1.0]]
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "pre_tokenizer": None,
           "normalizer": {"type": "Sequence", "normalizers": [
               {"type": "Prepend", "prepend": " "}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
           "post_processor": None, "decoder": None, "model": {"type": "Unigram", "unk_id": 0, "vocab": vocab}}
    return json.dumps(doc)


def test_unigram_ties_go_to_the_library():
    js = tie_tokenizer()
    enc = FastEncoder(js)
    assert enc.plan == "sentencepiece"
    assert fast._Lattice([("<unk>", 0.0), ("a", -1.0), ("aa", -2.0)], 0).gap("aa") == 0.0
    texts = ["b b b", "b aaa b", "aaa"]
    assert_same(enc, js, texts)
    assert enc.library_texts == 2  # a|aa and aa|a tie: rounding in context decides, so the library does


def test_unsupported_pipelines_fall_back_to_the_library(trained):
    cfg = json.loads(trained["unigram"])
    cfg["normalizer"]["normalizers"] = cfg["normalizer"]["normalizers"][:-2]
    cfg["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    truncated = json.loads(trained["wordpiece"])
    truncated["truncation"] = {"direction": "Right", "max_length": 5, "strategy": "LongestFirst", "stride": 0}
    for js in (json.dumps(cfg), json.dumps(truncated)):
        enc = FastEncoder(js)
        assert enc.plan is None and enc.reason
        assert not FastEncoder.supports(js)
        assert_same(enc, js, NASTY)
    assert FastEncoder.supports(Tokenizer.from_str(trained["bpe"]))


def test_other_wordpiece_and_byte_level_settings(trained):
    """BERT without CJK padding / cleaning, with accent stripping only; GPT-2 with a prefix space."""
    bert = json.loads(trained["wordpiece-cased"])
    bert["normalizer"].update(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    gpt = json.loads(trained["bpe"])
    gpt["pre_tokenizer"]["add_prefix_space"] = True
    for cfg, plan in ((bert, "wordpiece"), (gpt, "bpe")):
        js = json.dumps(cfg)
        enc = FastEncoder(js)
        assert enc.plan == plan
        assert_same(enc, js, NASTY)


def test_docstring_examples():
    assert doctest.testmod(fast).failed == 0


FRAGMENTS = ["the", "The", " ", "  ", "\n", "\t", "\r\n", ".", ",", "'s", "'", "-", "--", "----", "...", "!", "0",
             "000", "12", "é", "e\u0301", "\u0301", "中", "文", "，", "。", "日本", "ｶﾞ", "😀", "👍🏽", "\u200d", "\u00a0",
             "\u3000", "\u2009", "▁", "\x00", "\x0b", "\x1c", "\x85", "\u200b", "İ", "Σ", "ﬁ", "[MASK]", "<s>",
             "<extra_id_3>", "aaa", "ab" * 40, "x" * 101, "\u0600", "ำ", "한"]
TEXTS = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=24).map("".join),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf"]), max_size=30),
)


@pytest.mark.parametrize("name", ["wordpiece", "bpe", "unigram-albert", "sp-bpe"])
def test_random_text_matches_the_library(name, trained):
    enc = FastEncoder(trained[name])  # one encoder for all examples: its table keeps growing
    tok = Tokenizer.from_str(trained[name])

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(TEXTS, min_size=1, max_size=4))
    def check(texts):
        got = [ids.tolist() for ids in enc.encode_batch(texts)]
        assert got == [tok.encode(t, add_special_tokens=False).ids for t in texts]

    check()
