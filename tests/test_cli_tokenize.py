"""`plmkit tokenize` and `plmkit inspect TOK` on the bundled corpus: output, manifest, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EN, ZH = str(ROOT / "corpora" / "en"), str(ROOT / "corpora" / "zh")


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    """A BERT WordPiece tokenizer trained on the bundled corpus by the CLI (once per module)."""
    from plmkit.cli import main

    out = tmp_path_factory.mktemp("cli") / "TOK"
    main(["tokenize", EN, ZH, "--preset", "bert", "--vocab-size", "2000", "--out", str(out)])
    return out


def one_line_error(code: int, err: str, *needles: str) -> None:
    """Exit 1 and one error line (progress lines may come before it), naming the fix."""
    assert code == 1, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and sum(line.startswith("error") for line in lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for needle in needles:
        assert needle in lines[-1], (needle, err)


def test_tokenize_prints_vocab_size_special_tokens_chars_per_token_and_time(run_cli, tmp_path):
    code, out, err = run_cli("tokenize", EN, ZH, "--kind", "bpe", "--vocab-size", "1500", "--out", tmp_path / "T")
    assert code == 0, err
    for row in ("vocab size", "1500", "<mask> = 4", "<extra_id_0>…<extra_id_99> = 9…108", "chars / token", "time"):
        assert row in out, row
    m = json.loads((tmp_path / "T" / "plmkit.json").read_text())
    assert m["stage"] == "tokenizer" and m["kind"] == "bpe" and m["params"]["preset"] == "roberta"
    assert [Path(i["path"]).parent.name for i in m["inputs"]][:1] == ["en"] and len(m["inputs"]) >= 2
    assert all(len(i["sha256"]) == 64 for i in m["inputs"])
    assert m["params"]["doc_per_line"] is False and m["params"]["encoding_errors"] == "strict"
    assert sorted(p.name for p in (tmp_path / "T").iterdir()) == [
        "plmkit.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]


def test_the_bert_preset_writes_vocab_txt_and_the_manifest_records_every_role(tok_dir):
    m = json.loads((tok_dir / "plmkit.json").read_text())
    assert m["special_tokens"]["cls"] == {"token": "[CLS]", "id": 2}
    assert m["special_tokens"]["bos"] == {"token": "[CLS]", "id": 2}
    assert m["special_tokens"]["gmask"] == {"token": "[gMASK]", "id": 5}
    assert m["sentinels"] == list(range(9, 109))
    assert m["params"]["lowercase"] is True and m["vocab_size"] == 2000
    assert len((tok_dir / "vocab.txt").read_text().splitlines()) == 2000


def test_inspect_shows_the_manifest_and_how_a_sentence_splits(run_cli, tok_dir):
    code, out, err = run_cli("inspect", tok_dir, "--text", "Tokenizers split text. 分词")
    assert code == 0, err
    assert "wordpiece (preset bert)" in out and "[gMASK] = 5" in out and "fingerprint" in out
    assert "分  词" in out  # each CJK character is a word of its own
    assert "ids: [" in out


def test_inspect_of_a_directory_that_is_not_a_stage_is_one_line(run_cli, tmp_path):
    code, _, err = run_cli("inspect", tmp_path)
    one_line_error(code, err, "plmkit.json")


def test_sentencepiece_kinds_keep_spm_model(run_cli, tmp_path):
    code, out, err = run_cli("tokenize", EN, "--preset", "t5", "--vocab-size", "1000", "--out", tmp_path / "T",
                             "--max-sentences", "500", "--seed", "7")
    assert code == 0, err
    assert (tmp_path / "T" / "spm.model").is_file()
    m = json.loads((tmp_path / "T" / "plmkit.json").read_text())
    assert (m["kind"], m["params"]["max_sentences"], m["params"]["seed"]) == ("unigram", 500, 7)
    assert "</s> = 1" in out


def test_ignored_options_are_warned_about(run_cli, tmp_path):
    code, _, err = run_cli("tokenize", EN, "--kind", "wordpiece", "--vocab-size", "1000", "--max-sentences", "5",
                           "--out", tmp_path / "T")
    assert code == 0 and "--max-sentences applies to SentencePiece kinds only" in err


# --------------------------------------------------------------------------- bad input: one line each


def test_a_missing_corpus_file(run_cli, tmp_path):
    code, _, err = run_cli("tokenize", tmp_path / "nope.txt", "--preset", "bert", "--out", tmp_path / "T")
    one_line_error(code, err, "nope.txt")
    assert not (tmp_path / "T").exists()


def test_an_empty_corpus_file(run_cli, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    code, _, err = run_cli("tokenize", tmp_path / "empty.txt", "--preset", "bert", "--out", tmp_path / "T")
    one_line_error(code, err, "empty.txt")


def test_a_corpus_too_small_for_the_vocabulary(run_cli, tmp_path):
    code, _, err = run_cli("tokenize", ZH, "--preset", "bert", "--vocab-size", "50000", "--out", tmp_path / "T")
    one_line_error(code, err, "--vocab-size 50000", "--allow-smaller-vocab")
    assert not (tmp_path / "T").exists()
    code, out, err = run_cli("tokenize", ZH, "--preset", "bert", "--vocab-size", "50000", "--allow-smaller-vocab",
                             "--out", tmp_path / "T")
    assert code == 0 and "filled only" in err
    m = json.loads((tmp_path / "T" / "plmkit.json").read_text())
    assert m["params"]["vocab_size"] == 50000 and 200 < m["vocab_size"] < 50000
    assert f"{m['vocab_size']} of 50000 asked" in out


def test_a_vocab_size_smaller_than_the_special_tokens(run_cli, tmp_path):
    code, _, err = run_cli("tokenize", EN, "--preset", "llama", "--vocab-size", "300", "--out", tmp_path / "T")
    one_line_error(code, err, "--vocab-size 300", "special tokens", "256 byte tokens")


def test_an_unknown_preset_or_kind(run_cli, tmp_path):
    code, _, err = run_cli("tokenize", EN, "--preset", "bart", "--out", tmp_path / "T")
    one_line_error(code, err, "unknown --preset 'bart'", "bert, roberta, albert, t5, gpt, llama, glm")
    code, _, err = run_cli("tokenize", EN, "--kind", "char", "--out", tmp_path / "T")
    one_line_error(code, err, "unknown --kind 'char'", "wordpiece, bpe, unigram, sp-bpe")


def test_an_output_directory_that_is_not_a_tokenizer_needs_force(run_cli, tmp_path):
    (tmp_path / "T").mkdir()
    (tmp_path / "T" / "thesis.tex").write_text("precious")
    code, _, err = run_cli("tokenize", EN, "--preset", "bert", "--vocab-size", "1000", "--out", tmp_path / "T")
    one_line_error(code, err, "already exists", "--force")
    assert (tmp_path / "T" / "thesis.tex").read_text() == "precious"
    code, _, err = run_cli("tokenize", EN, "--preset", "bert", "--vocab-size", "1000", "--out", tmp_path / "T",
                           "--force")
    assert code == 0, err
    assert not (tmp_path / "T" / "thesis.tex").exists() and (tmp_path / "T" / "plmkit.json").exists()
