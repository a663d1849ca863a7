"""`plmkit quickstart`: the plan it makes, the prompts it derives from the corpus, and the whole
pipeline end to end (on `--max-steps 2`: the laptop-sized default schedule is measured by
`bench/quickstart.py`, not here), including the ordinary commands its summary prints."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from train_helpers import one_thread

from plmkit.manifest import read_manifest
from plmkit.quickstart import (
    FAMILIES,
    RECIPES,
    blank,
    bundled_corpus,
    continue_commands,
    lead,
    make_plan,
    parse_families,
    pick_sentences,
)

ROOT = Path(__file__).resolve().parent.parent
SMALL_CORPUS = [str(ROOT / "corpora" / "en" / "01_language.txt"), str(ROOT / "corpora" / "zh" / "01_language.txt")]


# ---------------------------------------------------------------------------------- the plan


def test_one_family_writes_the_ordinary_stage_directories(tmp_path):
    plan = make_plan(["gpt"], tmp_path, ["c.txt"])
    assert [t.path.name for t in plan.tokenizers] == ["tok"]
    assert [d.path.name for d in plan.data] == ["data-clm"]
    assert [(r.path.name, r.config_file.name, r.steps) for r in plan.runs] == [("run-gpt", "run-gpt.toml", RECIPES["gpt"].steps)]


def test_all_families_share_a_tokenizer_per_kind_and_name_clashing_shards_by_kind(tmp_path):
    plan = make_plan(parse_families("all"), tmp_path, ["c.txt"])
    assert {t.path.name: t.families for t in plan.tokenizers} == {
        "tok-bpe": ["gpt", "roberta"], "tok-sp-bpe": ["llama"], "tok-wordpiece": ["bert", "glm"],
        "tok-unigram": ["albert", "t5"]}
    # gpt and llama both train on clm, from different tokenizers: the only name that needs the kind
    assert {r.family: r.data.path.name for r in plan.runs} == {
        "gpt": "data-clm-bpe", "llama": "data-clm-sp-bpe", "bert": "data-nsp", "roberta": "data-mlm",
        "albert": "data-sop", "t5": "data-t5-span", "glm": "data-glm"}
    assert {r.steps for r in plan.runs} == {RECIPES["gpt"].brief_steps}
    assert {r.steps for r in make_plan(["t5", "glm"], tmp_path, ["c.txt"], max_steps=7).runs} == {7}


def test_every_family_has_a_recipe_whose_objective_it_trains_on():
    from plmkit.models import FAMILY_OBJECTIVES

    assert set(RECIPES) == set(FAMILIES)
    for family, recipe in RECIPES.items():
        assert recipe.objective in FAMILY_OBJECTIVES[family]


def test_an_unknown_family_is_refused():
    from plmkit.errors import PlmkitError

    with pytest.raises(PlmkitError, match="--family 'bart' is not a model family"):
        parse_families("bart")


def test_the_bundled_corpus_is_found_beside_the_package():
    assert [p.name for p in bundled_corpus()] == ["en", "zh"]


# ---------------------------------------------------------------------------------- prompts from the corpus


def test_lead_and_blank_on_literal_sentences():
    sentence = "Children learn their first language without formal lessons."
    assert lead(sentence) == "Children learn their"
    assert lead("语言模型可以预测下一个词。") == "语言模型"
    # the longest word that is neither first nor last (ties: the earlier one) and that `fits`
    assert blank(sentence, "[MASK]") == ("Children learn their first [MASK] without formal lessons.", "language")
    assert blank(sentence, "<mask>", lambda before, word: len(word) < 6) == \
        ("Children <mask> their first language without formal lessons.", "learn")
    assert blank(sentence, "<mask>", lambda before, word: before.endswith("without ")) == \
        ("Children learn their first language without <mask> lessons.", "formal")
    # unspaced text: two characters from the middle, one when two do not fit
    assert blank("语言模型可以预测下一个词。", "<extra_id_0>") == ("语言模型可以<extra_id_0>下一个词。", "预测")
    assert blank("语言模型可以预测下一个词。", "[MASK]", lambda before, word: len(word) == 1) == \
        ("语言模型可以[MASK]测下一个词。", "预")
    assert blank("one two", "[MASK]") is None


def test_pick_sentences_spreads_over_the_corpus_and_keeps_both_languages():
    sentences = pick_sentences(SMALL_CORPUS, n=3)
    assert len(sentences) == 3
    assert sentences[0].startswith("Every human language has a way")  # the first document's first sentence
    assert sentences[-1][0] >= "\u4e00"  # the last one comes from the Chinese file
    assert all(len(s.split()) <= 16 for s in sentences)


# ---------------------------------------------------------------------------------- end to end


_RUNS: dict[str, tuple] = {}


@pytest.fixture
def gpt_quickstart(tmp_path_factory, run_cli):
    """`plmkit quickstart --max-steps 2` on the bundled corpus, run once: (exit code, stdout, stderr, OUT)."""
    if "gpt" not in _RUNS:
        out = tmp_path_factory.mktemp("qs") / "quickstart"
        with one_thread():
            _RUNS["gpt"] = (*run_cli("quickstart", "--max-steps", "2", "--out", str(out), "--device", "cpu"), out)
    return _RUNS["gpt"]


def test_quickstart_writes_stage_directories_the_next_stages_accept(gpt_quickstart):
    code, stdout, stderr, out = gpt_quickstart
    assert code == 0, stderr
    tok, data, run = (read_manifest(out / name, stage) for name, stage in
                      (("tok", "tokenizer"), ("data-clm", "data"), ("run-gpt", "run")))
    assert data["upstream"]["fingerprint"] == tok["fingerprint"]
    assert run["upstream"]["fingerprint"] == data["fingerprint"] and run["steps"] == 2
    for stage in ("tokenize", "build-data", "train", "eval", "generate"):
        assert f"{stage}:" in stderr  # each stage announced, its progress shown
    assert "Traceback" not in stderr


def test_the_summary_shows_metrics_samples_and_commands(gpt_quickstart):
    code, stdout, _, out = gpt_quickstart
    assert "validation" in stdout and "perplexity" in stdout
    assert len(re.findall(r"│ gpt +│ clm +│ \d+\.\d{3} +│", stdout)) == 1  # one row of metrics
    for name in ("tok", "data-clm", "run-gpt"):
        assert str(out / name) in stdout
    for command in ("plmkit tokenize", "plmkit build-data", "plmkit inspect", "plmkit train --config",
                    "plmkit eval", "plmkit generate", "plmkit export"):
        assert command in stdout


def test_the_printed_commands_continue_from_the_stage_directories(gpt_quickstart, run_cli):
    """Train further with the printed `plmkit train --config` line, then evaluate with the printed eval line."""
    _, stdout, _, out = gpt_quickstart
    commands = [line.strip() for line in stdout.splitlines() if line.strip().startswith("plmkit ")]
    train = next(c for c in commands if c.startswith("plmkit train"))
    assert train == f"plmkit train --config {out / 'run-gpt.toml'} --max-steps 4"
    with one_thread():
        code, _, err = run_cli(*shlex.split(train)[1:])
    assert code == 0 and "resuming from" in err, err
    assert read_manifest(out / "run-gpt", "run")["steps"] == 4
    evaluate = next(c for c in commands if c.startswith("plmkit eval"))
    with one_thread():
        code, report, err = run_cli(*shlex.split(evaluate)[1:], "--json")
    assert code == 0, err
    assert json.loads(report)["objective"] == "clm"


def test_the_train_config_file_is_the_run_s_own_settings(gpt_quickstart):
    from plmkit.train.config import read_config_file, resolve

    *_, out = gpt_quickstart
    saved = json.loads((out / "run-gpt" / "train_config.json").read_text())["config"]
    from_file = resolve(read_config_file(out / "run-gpt.toml"), {}).to_dict()
    # the steps differ after the resume above; the device is the quickstart's --device
    assert {k: v for k, v in from_file.items() if k not in ("max_steps", "device")} == \
        {k: v for k, v in saved.items() if k not in ("max_steps", "device")}


def test_a_second_quickstart_in_the_same_folder_needs_force(gpt_quickstart, run_cli):
    *_, out = gpt_quickstart
    code, _, err = run_cli("quickstart", "--out", str(out))
    assert code == 1 and "already holds tok, data-clm, run-gpt" in err and "--force" in err


def test_every_family_runs_briefly_on_a_small_corpus(tmp_path, run_cli):
    out = tmp_path / "all"
    args = ["quickstart", "--family", "all", "--max-steps", "1", "--device", "cpu", "--out", str(out)]
    for path in SMALL_CORPUS:
        args += ["--corpus", path]
    with one_thread():
        code, stdout, err = run_cli(*args)
    assert code == 0, err
    for family in FAMILIES:
        run = read_manifest(out / f"run-{family}", "run")
        assert run["objective"] == RECIPES[family].objective and run["steps"] == 1
        assert f"{family} samples" in stdout
    assert sorted(p.name for p in out.glob("tok*")) == ["tok-bpe", "tok-sp-bpe", "tok-unigram", "tok-wordpiece"]
    commands = continue_commands(make_plan(FAMILIES, out, SMALL_CORPUS, max_steps=1))
    assert sum(cmd.startswith("plmkit export") for _, cmd in commands) == 6  # GLM has no transformers class
