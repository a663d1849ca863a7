"""`plmkit eval`: the metrics of each objective, by literal examples, and the command around them."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_helpers import SMALL, data_dir, one_thread

from plmkit.evaluate import batch_sums, finish
from plmkit.models import ModelOutput


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    from plmkit.train import TrainConfig, train

    out = tmp_path_factory.mktemp("eval") / "run"
    with one_thread():
        summary = train(TrainConfig(data=str(data_dir("clm")), model="gpt:tiny", out=str(out), max_steps=3,
                                    batch_size=8, lr=3e-3, model_overrides=dict(SMALL)))
    return out, summary


def one_hot_logits(ids: list[int], vocab: int = 16, scale: float = 20.0) -> torch.Tensor:
    """Logits that predict `ids` with near certainty (one row per id)."""
    return torch.nn.functional.one_hot(torch.tensor(ids), vocab).float() * scale


# ---- the metrics, literally -----------------------------------------------------------------------

def test_uniform_predictions_have_the_vocabulary_size_as_perplexity():
    batch = {"input_ids": torch.tensor([[5, 6, 7, 0]]), "labels": torch.tensor([[5, 6, 7, -100]]),
             "attention_mask": torch.tensor([[1, 1, 1, 0]])}
    result = finish("clm", batch_sums("clm", batch, ModelOutput(logits=torch.zeros(1, 4, 8))))
    assert result["tokens"] == 2  # positions 0 and 1 predict 6 and 7; padding predicts nothing
    assert result["loss"] == pytest.approx(math.log(8)) and result["perplexity"] == pytest.approx(8.0)


def test_clm_accuracy_compares_position_t_with_token_t_plus_1():
    batch = {"input_ids": torch.tensor([[5, 6, 7]]), "labels": torch.tensor([[5, 6, 7]]),
             "attention_mask": torch.tensor([[1, 1, 1]])}
    logits = one_hot_logits([6, 0, 3]).unsqueeze(0)  # right about 6, wrong about 7, the last one predicts nothing
    assert finish("clm", batch_sums("clm", batch, ModelOutput(logits=logits)))["next_token_accuracy"] == 0.5


def test_mlm_accuracy_counts_masked_positions_only_and_nsp_accuracy_counts_rows():
    batch = {"input_ids": torch.tensor([[1, 4, 9, 4, 2], [1, 4, 9, 2, 0]]),
             "labels": torch.tensor([[-100, 3, -100, 5, -100], [-100, 6, -100, -100, -100]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]),
             "next_sentence_label": torch.tensor([1, 0])}
    # encoder logits hold the labelled positions only, in row-major order: 3, 5, 6
    out = ModelOutput(logits=one_hot_logits([3, 1, 6]), extra={"nsp_logits": torch.tensor([[0.0, 5.0], [0.0, 5.0]])})
    result = finish("nsp", batch_sums("nsp", batch, out))
    assert result["mlm_accuracy"] == pytest.approx(2 / 3) and result["nsp_accuracy"] == 0.5
    nsp_loss = (math.log(1 + math.exp(-5)) + math.log(1 + math.exp(5))) / 2
    assert result["nsp_loss"] == pytest.approx(nsp_loss)
    assert result["loss"] == pytest.approx(result["mlm_loss"] + nsp_loss) and result["examples"] == 2


def test_t5_accuracy_is_over_target_tokens_and_glm_over_part_b_tokens():
    t5 = {"input_ids": torch.tensor([[7, 9, 1]]), "attention_mask": torch.tensor([[1, 1, 1]]),
          "labels": torch.tensor([[9, 4, 1, -100]])}
    t5_result = finish("t5-span", batch_sums("t5-span", t5, ModelOutput(logits=one_hot_logits([9, 4, 2, 0])[None])))
    assert t5_result["token_accuracy"] == pytest.approx(2 / 3) and t5_result["tokens"] == 3
    glm = {"input_ids": torch.tensor([[1, 4, 7, 5]]), "attention_mask": torch.tensor([[1, 1, 1, 1]]),
           "labels": torch.tensor([[-100, -100, 5, 6]])}
    glm_result = finish("glm", batch_sums("glm", glm, ModelOutput(logits=one_hot_logits([5, 5]))))
    assert glm_result["span_accuracy"] == 0.5 and glm_result["tokens"] == 2


# ---- the command ----------------------------------------------------------------------------------

def test_eval_json_reports_what_training_reported_at_its_last_step(run_cli, gpt_run):
    run, summary = gpt_run
    code, out, err = run_cli("eval", run, "--data", data_dir("clm"), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["objective"] == "clm" and result["split"] == "validation"
    for key in ("loss", "perplexity", "next_token_accuracy", "tokens", "examples"):
        assert result[key] == pytest.approx(summary["eval"][key], rel=1e-6)


def test_eval_prints_a_table_and_reads_any_split(run_cli, gpt_run):
    from plmkit.data.loader import ShardSplit

    run, _ = gpt_run
    code, out, err = run_cli("eval", run, "--data", data_dir("clm"), "--split", "train", "--batch-size", "64")
    assert code == 0, err
    assert "perplexity" in out and "next token accuracy" in out
    rows = len(ShardSplit(data_dir("clm") / "train"))
    assert f"{rows:,}" in out  # every training row was evaluated
    code, _, err = run_cli("eval", run, "--data", data_dir("clm"), "--split", "test")
    assert code == 1 and "--split test" in err


def test_eval_refuses_shards_of_another_tokenizer_or_objective(run_cli, gpt_run):
    run, _ = gpt_run
    code, _, err = run_cli("eval", run, "--data", data_dir("clm", vocab_size=250))
    assert code == 1 and "different tokenizer" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("eval", run, "--data", data_dir("mlm"))
    assert code == 1 and "a gpt model trains on clm shards" in err
