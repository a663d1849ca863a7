"""Learning really happens: for every family, a tiny model on the generated template corpus drives
its training loss below half of its first value within a couple of hundred steps (CPU, fp32).

"Below half" is judged on the mean of the last 10 steps' losses, so one noisy batch neither
passes nor fails the test. The first loss is the untrained model's: about ln(vocabulary) ≈ 5.5
for the token objectives, plus ln 2 for NSP/SOP (T5's larger initial scale starts it higher).
Each family gets the steps and learning rate that reach the goal with a margin on this corpus;
what is tested is the loop, not the hyper-parameters.
"""

from __future__ import annotations

import pytest
from train_helpers import SMALL, data_dir, one_thread, read_metrics

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}

CASES = {  # family: (objective, build-data options, model overrides, steps, learning rate, batch size)
    "gpt": ("clm", {}, SMALL, 80, 3e-3, 16),
    "llama": ("clm", {}, {**SMALL, "num_key_value_heads": 1}, 80, 3e-3, 16),
    "t5": ("t5-span", {}, SMALL, 40, 3e-3, 16),
    "glm": ("glm", {}, {}, 200, 3e-3, 16),
    "bert": ("nsp", {}, NO_DROPOUT, 200, 3e-3, 32),
    "roberta": ("mlm", {"dynamic": True}, NO_DROPOUT, 160, 3e-3, 32),
    # single-token masking: ALBERT's whole-word 3-grams make the tiny task slower, not the loop different
    "albert": ("sop", {"ngram": 1, "whole_word": False}, {}, 200, 1e-2, 32),
}


@pytest.mark.parametrize("family", CASES)
def test_training_loss_falls_below_half_its_first_value(tmp_path, family):
    from plmkit.train import TrainConfig, train

    objective, options, overrides, steps, lr, batch_size = CASES[family]
    with one_thread():
        train(TrainConfig(data=str(data_dir(objective, **options)), model=f"{family}:tiny", out=str(tmp_path / "run"),
                          max_steps=steps, batch_size=batch_size, lr=lr, warmup=10, log_every=1, eval_every=0,
                          save_every=0, model_overrides=dict(overrides)))
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert len(losses) == steps
    last = sum(losses[-10:]) / 10
    assert last < losses[0] / 2, f"{family}: first loss {losses[0]:.3f}, mean of the last 10 {last:.3f}"
