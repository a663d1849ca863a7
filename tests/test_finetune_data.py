"""Fine-tuning data and metrics: readers, label maps, framing, word-label alignment, scores, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from finetune_helpers import tokenizer_dir

from plmkit.errors import PlmkitError
from plmkit.finetune import metrics as m
from plmkit.finetune.data import (
    Example,
    Features,
    TextEncoder,
    check_known,
    collate,
    label_names,
    pair_lengths,
    read_examples,
)

CLS_FIELDS = ("text", None, "label")
TAG_FIELDS = ("tokens", None, "tags")


# ---- metrics ------------------------------------------------------------------------------------

def test_accuracy_macro_f1_and_confusion_on_a_literal_example():
    gold, pred = [0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]
    assert m.accuracy(gold, pred) == pytest.approx(4 / 6)
    assert m.confusion_matrix(gold, pred, 3) == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # label 0: P 1, R 2/3 → 0.8; label 1: P 1/2, R 1/2 → 0.5; label 2: P 1/2, R 1 → 2/3
    assert m.macro_f1(gold, pred, 3) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # a label that occurs nowhere does not dilute the mean (scikit-learn's convention)
    assert m.macro_f1(gold, pred, 5) == pytest.approx(m.macro_f1(gold, pred, 3))


def test_entity_spans_follow_conlleval():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER", "NUM", "NUM", "O", "B-X"]
    assert m.entity_spans(tags) == [("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("PER", 5, 6),
                                    ("NUM", 6, 8), ("X", 9, 10)]


def test_token_and_entity_f1_on_a_literal_example():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-NUM"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-NUM", "B-NUM"]]
    # words not O: gold 5 (P P L N + …), predicted 4; correct non-O words: B-PER, B-LOC, B-NUM = 3
    tok = m.token_prf(gold, pred)
    assert (tok["precision"], tok["recall"]) == (pytest.approx(3 / 4), pytest.approx(3 / 4))
    # spans: gold {PER 0-2, LOC 3-4, NUM 1-2}, predicted {PER 0-1, LOC 3-4, NUM 0-1, NUM 1-2}: 2 match
    ent = m.entity_prf(gold, pred)
    assert (ent["precision"], ent["recall"]) == (pytest.approx(2 / 4), pytest.approx(2 / 3))
    assert ent["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_token_f1_without_an_outside_tag_is_accuracy():
    assert m.token_prf([["A", "B", "A"]], [["A", "A", "A"]])["f1"] == pytest.approx(2 / 3)


# ---- readers ------------------------------------------------------------------------------------

def test_csv_tsv_jsonl_read_the_same_rows(tmp_path):
    (tmp_path / "a.csv").write_text('text,label\n"Hello, world",pos\nbad day,neg\n', encoding="utf-8")
    (tmp_path / "a.tsv").write_text("label\ttext\npos\tHello, world\nneg\tbad day\n", encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"text": "Hello, world", "label": "pos"}\n\n{"text": "bad day", "label": "neg"}\n',
                                      encoding="utf-8")
    for name in ("a.csv", "a.tsv", "a.jsonl"):
        rows = read_examples(tmp_path / name, task="classify", fields=CLS_FIELDS, flag="--train")
        assert [(e.text, e.label) for e in rows] == [("Hello, world", "pos"), ("bad day", "neg")]
    assert [e.line for e in read_examples(tmp_path / "a.jsonl", task="classify", fields=CLS_FIELDS,
                                          flag="--train")] == [1, 3]


def test_pairs_and_integer_labels(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"q": "a", "d": "b", "y": 1}\n{"q": "c", "d": "d", "y": 0}\n')
    rows = read_examples(path, task="classify", fields=("q", "d", "y"), flag="--train")
    assert [(e.text, e.pair, e.label) for e in rows] == [("a", "b", "1"), ("c", "d", "0")]


def test_conll_columns_and_jsonl_lists_give_the_same_sentences(tmp_path):
    (tmp_path / "a.conll").write_text("-DOCSTART- O\n\nJohn\tNNP\tB-PER\nran\tVBD\tO\n\n\n42 CD B-NUM\n",
                                      encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"tokens": ["John", "ran"], "tags": ["B-PER", "O"]}\n'
                                      '{"tokens": "42", "tags": "B-NUM"}\n', encoding="utf-8")
    for name in ("a.conll", "a.jsonl"):
        rows = read_examples(tmp_path / name, task="label-tokens", fields=TAG_FIELDS, flag="--train")
        assert [(e.text, e.label) for e in rows] == [(["John", "ran"], ["B-PER", "O"]), (["42"], ["B-NUM"])]
    # a .tsv of word labels is CoNLL columns
    (tmp_path / "b.tsv").write_text("John\tB-PER\nran\tO\n", encoding="utf-8")
    assert read_examples(tmp_path / "b.tsv", task="label-tokens", fields=TAG_FIELDS, flag="--train")[0].text == \
        ["John", "ran"]


def test_label_names_order():
    assert label_names([Example("a", label="pos"), Example("b", label="neg")]) == ["neg", "pos"]
    assert label_names([Example("a", label="10"), Example("b", label="9"), Example("c", label="-1")]) == \
        ["-1", "9", "10"]
    assert label_names([Example(["x"] * 3, label=["I-X", "O", "B-X"])]) == ["O", "B-X", "I-X"]


@pytest.mark.parametrize("content, fields, task, message", [
    ('{"sentence": "a", "label": "x"}\n', CLS_FIELDS, "classify",
     "line 1 has no field 'text' (its fields: sentence, label) (name the field with --text-field)"),
    ('{"text": "a", "y": "x"}\n', CLS_FIELDS, "classify", "has no field 'label' (its fields: text, y) "
                                                            "(name the field with --label-field)"),
    ('{"text": "a", "label": ""}\n', CLS_FIELDS, "classify", "line 1: the label is empty"),
    ('{"tokens": ["a", "b"], "tags": ["O"]}\n', TAG_FIELDS, "label-tokens", "line 1 has 2 words but 1 tags"),
    ('{"text": "a", "label": "x"}\n[1]\n', CLS_FIELDS, "classify", "line 2 is a JSON list, not an object"),
    ('{"text": "a", "label": "x"\n', CLS_FIELDS, "classify", "line 1 is not JSON"),
])
def test_bad_rows_are_one_line_errors_naming_file_line_and_flag(tmp_path, content, fields, task, message):
    path = tmp_path / "train.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PlmkitError) as e:
        read_examples(path, task=task, fields=fields, flag="--train")
    assert str(e.value).startswith(f"--train {path}") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    cases = {"missing.csv": None, "latin1.csv": "text,label\ncaf\xe9,x\n".encode("latin-1"), "empty.csv": b"text,label\n",
             "data.xml": b"<a/>"}
    messages = {"missing.csv": "does not exist", "latin1.csv": "is not UTF-8 text", "empty.csv": "has no rows",
                "data.xml": "cannot tell its format from the extension '.xml'"}
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(PlmkitError, match=messages[name]):
            read_examples(tmp_path / name, task="classify", fields=CLS_FIELDS, flag="--validation")
    (tmp_path / "w.conll").write_text("a\tO\n")
    with pytest.raises(PlmkitError, match="which label words, not texts"):
        read_examples(tmp_path / "w.conll", task="classify", fields=CLS_FIELDS, flag="--train")


def test_a_label_unseen_in_training_is_an_error():
    rows = [Example("a", label="pos", line=1), Example("b", label="neutral", line=2)]
    with pytest.raises(PlmkitError, match=r"--validation dev.csv line 2: label 'neutral' does not occur in the "
                                          r"training data \(labels: neg, pos\)"):
        check_known(rows, ["neg", "pos"], "dev.csv", "--validation")


# ---- framing and alignment ----------------------------------------------------------------------

def test_pair_lengths_cut_the_longer_text_first():
    assert pair_lengths(3, 10, 8) == (3, 5)
    assert pair_lengths(10, 3, 8) == (5, 3)
    assert pair_lengths(10, 10, 8) == (4, 4)
    assert pair_lengths(10, 10, 7) == (4, 3)
    assert pair_lengths(2, 3, 8) == (2, 3)


@pytest.fixture(scope="module")
def tok():
    from plmkit.tokenization import load_tokenizer

    return load_tokenizer(tokenizer_dir())


def test_bert_pair_framing_and_token_types(tok):
    enc = TextEncoder(tok, "bert", "classify", ["neg", "pos"], max_len=64, token_types=True)
    f = enc.encode([Example("the cat", "the dog ran", "pos")])
    assert tok.tokens(f.input_ids[0]) == ["[CLS]", "the", "cat", "[SEP]", "the", "dog", "ran", "[SEP]"]
    assert f.token_type_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert f.labels == [1]


def test_roberta_glm_and_decoder_framing(tok):
    ex = [Example("the cat", "the dog", "neg")]
    assert tok.tokens([tok.id("eos")]) == ["[SEP]"]   # the BERT preset's eos (GLM's preset: <|endoftext|>)
    frames = {"roberta": ["[CLS]", "the", "cat", "[SEP]", "[SEP]", "the", "dog", "[SEP]"],   # cls sep sep … sep
              "glm": ["[CLS]", "the", "cat", "[SEP]", "the", "dog", "[SEP]"],                # cls … sep … eos
              "gpt": ["the", "cat", "[SEP]", "the", "dog", "[SEP]"]}                         # … eos … eos
    for family, expected in frames.items():
        f = TextEncoder(tok, family, "classify", ["neg"], max_len=64, token_types=False).encode(ex)
        assert tok.tokens(f.input_ids[0]) == expected
        assert f.token_type_ids is None


def test_truncation_keeps_the_special_tokens(tok):
    enc = TextEncoder(tok, "bert", "classify", ["x"], max_len=6, token_types=True)
    f = enc.encode([Example("the cat sat on the mat", "the dog ran far away", "x")])
    assert tok.tokens(f.input_ids[0]) == ["[CLS]", "the", "cat", "[SEP]", "the", "[SEP]"]


def test_word_labels_go_to_the_first_sub_token_only(tok):
    words, tags = ["the", "Riverbirds", "ran", "48213"], ["O", "B-CAP", "O", "B-NUM"]
    enc = TextEncoder(tok, "bert", "label-tokens", ["O", "B-CAP", "B-NUM"], max_len=64, token_types=True)
    pieces = enc.word_pieces(words)
    assert len(pieces[1]) > 1 and len(pieces[3]) > 1       # both split into several sub-tokens
    f = enc.encode([Example(words, None, tags)])
    n1, n3 = len(pieces[1]), len(pieces[3])
    expected = [-100, 0, 1] + [-100] * (n1 - 1) + [0, 2] + [-100] * (n3 - 1) + [-100]
    assert f.labels[0].tolist() == expected
    assert f.word_positions[0].tolist() == [1, 2, 2 + n1, 3 + n1]
    assert tok.tokens(f.input_ids[0])[0] == "[CLS]" and tok.tokens(f.input_ids[0])[-1] == "[SEP]"


def test_words_cut_by_max_len_lose_their_labels(tok):
    enc = TextEncoder(tok, "bert", "label-tokens", ["O"], max_len=4, token_types=False)
    f = enc.encode([Example(["the", "cat", "sat", "on"], None, ["O"] * 4)])
    assert tok.tokens(f.input_ids[0]) == ["[CLS]", "the", "cat", "[SEP]"]
    assert f.word_positions[0].tolist() == [1, 2] and f.num_words == [4]


def test_word_pieces_encode_like_the_sentence_for_wordpiece_and_byte_level_bpe(tok, tmp_path):
    from finetune_helpers import tagging_sentences

    from plmkit.tokenization import load_tokenizer, resolve_spec, train_tokenizer

    train_tokenizer(tagging_sentences(200, seed=5), tmp_path / "bpe",
                    resolve_spec(preset="roberta", vocab_size=400, allow_smaller_vocab=True))
    words = ["the", "Old", "dog", "ran", "away", "1234"]
    for t, family in ((tok, "bert"), (load_tokenizer(tmp_path / "bpe"), "roberta")):
        enc = TextEncoder(t, family, "label-tokens", ["O"], max_len=64, token_types=False)
        assert np.concatenate(enc.word_pieces(words)).tolist() == t.encode(" ".join(words)).tolist(), t.kind


def test_collate_pads_right_and_masks_labels():
    f = Features([np.array([5, 6, 7]), np.array([5, 8])], [np.array([0, 0, 1]), np.array([0, 0])],
                 [np.array([-100, 2, -100]), np.array([-100, 1])], [np.array([1]), np.array([1])], [1, 1])
    b = collate(f, [0, 1], pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7], [5, 8, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b["token_type_ids"].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert b["labels"].tolist() == [[-100, 2, -100], [-100, 1, -100]]
    c = collate(Features([np.array([5]), np.array([6, 7])], None, [1, 0]), [1, 0], pad_id=3)
    assert c["input_ids"].tolist() == [[6, 7], [5, 3]] and c["labels"].tolist() == [0, 1]
