"""`plmkit finetune`: learning for every family, FT/ layout, evaluation, prediction, early stopping, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from finetune_helpers import language_task, pretrained_run, random_run, tagging_task, write_jsonl

from plmkit.finetune import FinetuneConfig, evaluate_ft, finetune, predict
from plmkit.manifest import read_manifest


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and CI's two cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_pretrained_bert_learns_which_language_a_sentence_is_in(run_cli, tmp_path):
    run, (train, valid) = pretrained_run(), language_task()
    ft = tmp_path / "ft"
    code, out, err = run_cli("finetune", run, "--task", "classify", "--train", train, "--validation", valid,
                             "--out", ft, "--epochs", "2", "--batch-size", "16", "--lr", "5e-3", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["labels"] == ["en", "zh"] and summary["metric"] == "accuracy"
    assert summary["best"]["value"] >= 0.9

    manifest = read_manifest(ft, "finetune")
    assert manifest["upstream"]["fingerprint"] == read_manifest(run, "run")["fingerprint"]
    assert (manifest["task"], manifest["family"], manifest["head"]) == ("classify", "bert", "pooler")
    assert manifest["fields"] == {"text": "text", "pair": None, "label": "label"}
    assert {p.name for p in ft.iterdir()} == {"plmkit.json", "config.json", "model.safetensors", "tokenizer",
                                              "metrics.jsonl"}
    read_manifest(ft / "tokenizer", "tokenizer")
    records = [json.loads(line) for line in (ft / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "eval_accuracy" in r] == [25, 50]   # 400 rows / 16 = 25 steps an epoch

    # the kept weights score on the validation file exactly what training recorded for them
    result = evaluate_ft(ft, valid)
    assert result["accuracy"] == pytest.approx(summary["best"]["value"])
    assert sum(map(sum, result["confusion"])) == 200 and result["labels"] == ["en", "zh"]

    preds = predict(ft, ["The old dog ran across the green field.", "我们今天去公园散步。"])
    assert [p["label"] for p in preds] == ["en", "zh"]
    assert all(sum(p["probs"].values()) == pytest.approx(1.0) and p["prob"] > 0.5 for p in preds)

    # `plmkit eval FT --data FILE` and `plmkit generate FT --prompt TEXT` hand FT/ to plmkit.finetune
    code, out, err = run_cli("eval", ft, "--data", valid, "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(result["accuracy"])
    code, out, err = run_cli("generate", ft, "--prompt", "我们今天去公园散步。", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["label"] == "zh"
    code, out, err = run_cli("generate", ft, "--prompt", "The old dog ran across the green field.")
    assert code == 0 and "│ en" in out, err


def test_label_tokens_learns_to_tag_numbers_and_capitalised_words(tmp_path):
    train, valid = tagging_task()
    summary = finetune(FinetuneConfig(run=str(random_run("bert")), task="label-tokens", train=str(train),
                                      validation=str(valid), out=str(tmp_path / "ft"), epochs=4, batch_size=16,
                                      lr=3e-3))
    assert summary["labels"] == ["O", "B-CAP", "B-NUM"] and summary["metric"] == "entity_f1"
    best = summary["best"]["eval"]
    assert best["token_f1"] >= 0.9 and best["entity_f1"] >= 0.9, best
    assert best["truncated_words"] == 0
    [pred] = predict(tmp_path / "ft", ["the Dog ran far 42 away"])
    assert pred["words"] == ["the", "Dog", "ran", "far", "42", "away"]
    assert pred["labels"] == ["O", "B-CAP", "O", "O", "B-NUM", "O"]


@pytest.mark.parametrize("family", ["roberta", "albert", "gpt", "llama", "t5", "glm"])
def test_every_family_classifies(family, tmp_path):
    train, valid = language_task()
    summary = finetune(FinetuneConfig(run=str(random_run(family)), task="classify", train=str(train),
                                      validation=str(valid), out=str(tmp_path / "ft"), epochs=2, batch_size=16,
                                      lr=5e-3))
    assert summary["best"]["value"] >= 0.9, (family, summary["best"]["eval"]["confusion"])
    assert evaluate_ft(tmp_path / "ft", valid)["accuracy"] == pytest.approx(summary["best"]["value"])


def test_decoder_hidden_states_are_the_language_models_inputs():
    """`decoder_hidden` re-runs the decoder without its LM head: the LM head on it gives the model's logits."""
    from plmkit.finetune.heads import decoder_hidden
    from plmkit.models import load_model

    ids = torch.tensor([[5, 9, 14, 30, 31], [7, 8, 9, 10, 11]])
    for family in ("gpt", "llama", "glm"):
        model, cfg = load_model(random_run(family))
        h = decoder_hidden(model, ids, torch.ones_like(ids))
        kw = {"sep": torch.tensor([5, 5]), "full_logits": True} if family == "glm" else {}
        expected = model(ids, **kw).logits                         # GLM: everything in Part A (sep = T)
        torch.testing.assert_close(model.lm_head(h, model.word.weight), expected, atol=1e-5, rtol=1e-5)


def test_early_stopping_keeps_the_first_best_and_runs_are_reproducible(tmp_path):
    """A validation file with one text under both labels scores 0.5 whatever the model does, so nothing
    ever improves on the first evaluation: with --patience 2 the run stops at the third."""
    train, _ = language_task()
    valid = write_jsonl(tmp_path / "dev.jsonl", [{"text": "the cat", "label": "en"}, {"text": "the cat", "label": "zh"}])
    outs = []
    for name in ("a", "b"):
        cfg = FinetuneConfig(run=str(random_run("bert")), task="classify", train=str(train), validation=str(valid),
                             out=str(tmp_path / name), epochs=2, batch_size=16, lr=1e-3, eval_every=2, patience=2)
        outs.append(finetune(cfg))
    assert outs[0]["stopped_early"] and outs[0]["steps"] == 6
    assert (outs[0]["best"]["step"], outs[0]["best"]["value"]) == (2, 0.5)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


# ---- bad input ----------------------------------------------------------------------------------

def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    flat = " ".join(err.split())
    for needle in needles:
        assert needle in flat, (needle, err)


def test_label_tokens_on_a_decoder_is_refused(run_cli, tmp_path):
    train, valid = tagging_task()
    code, _, err = run_cli("finetune", random_run("gpt"), "--task", "label-tokens", "--train", train,
                           "--validation", valid, "--out", tmp_path / "ft")
    _one_line_error(code, err, "--task label-tokens needs a bidirectional encoder", "gpt")
    assert not (tmp_path / "ft").exists()


def test_missing_field_unseen_label_and_ragged_rows_are_one_line_errors(run_cli, tmp_path):
    run, (train, valid) = random_run("bert"), language_task()
    args = ("finetune", run, "--train", train, "--out", tmp_path / "ft")
    code, _, err = run_cli(*args, "--validation", valid, "--text-field", "sentence")
    _one_line_error(code, err, f"--train {train} line 1 has no field 'sentence'", "--text-field")
    code, _, err = run_cli(*args, "--validation", valid, "--label-field", "y")
    _one_line_error(code, err, "has no field 'y' (its fields: text, label)", "--label-field")
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"text": "a", "label": "en"}, {"text": "b", "label": "fr"}])
    code, _, err = run_cli(*args, "--validation", odd)
    _one_line_error(code, err, f"--validation {odd} line 2: label 'fr' does not occur in the training data")
    ragged = write_jsonl(tmp_path / "ragged.jsonl", [{"tokens": ["a", "b"], "tags": ["O"]}])
    code, _, err = run_cli("finetune", run, "--task", "label-tokens", "--train", ragged, "--validation", ragged,
                           "--out", tmp_path / "ft")
    _one_line_error(code, err, "line 1 has 2 words but 1 tags")
    code, _, err = run_cli(*args, "--validation", valid, "--lr", "0")
    _one_line_error(code, err, "--lr must be a number > 0, got 0.0")
    assert not (tmp_path / "ft").exists()


def test_cli_prints_a_summary_and_the_confusion_matrix(run_cli, tmp_path):
    rows = [{"tokens": ["the", "Cat", "ran", "7"], "tags": ["O", "B-CAP", "O", "B-NUM"]}] * 8
    data = write_jsonl(tmp_path / "tags.jsonl", rows)
    code, out, err = run_cli("finetune", random_run("bert"), "--task", "label-tokens", "--train", data,
                             "--validation", data, "--out", tmp_path / "ft", "--epochs", "1", "--batch-size", "8")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "entity f1" in flat and "token f1" in flat and "truncated words │ 0" in flat
    assert "confusion matrix (words; rows: gold, columns: predicted)" in flat
    assert "┃ gold \\ predicted ┃ O ┃ B-CAP ┃ B-NUM ┃" in flat
    assert "words │ 32" in flat                                         # 8 rows of 4 words
    summary = " ".join(err.split())                                      # the summary goes to stderr
    assert "labels │ O, B-CAP, B-NUM" in summary and "best │ entity_f1" in summary
