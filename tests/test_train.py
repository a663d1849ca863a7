"""`plmkit train`: settings, schedule, data order, collation, checkpoints and the RUN directory.

Resume after a kill, torchrun and "learning happens" have their own files (test_train_*.py).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from train_helpers import SMALL, data_dir, one_thread, read_metrics

from plmkit.data.collate import Collator
from plmkit.data.loader import Batches, DataPosition, ShardSplit, epoch_order
from plmkit.data.objectives import SpecialIds
from plmkit.data.objectives.mlm import MaskSpec
from plmkit.train import checkpoint as ckpt
from plmkit.train.optim import lr_at, param_groups


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def small_overrides(tmp_path, **extra) -> str:
    """A --config file with the 32-wide model and any extra settings."""
    path = tmp_path / "small.toml"
    lines = [f"{k.replace('_', '-')} = {json.dumps(v)}" for k, v in extra.items()]
    lines += ["[model-overrides]"] + [f"{k} = {v}" for k, v in SMALL.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def train_args(tmp_path, data, out, *extra):
    return ("train", "--data", data, "--model", "gpt:tiny", "--out", out, "--config", small_overrides(tmp_path),
            "--batch-size", "8", "--log-every", "1", *extra)


# ---- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix, body", [
    (".toml", 'model = "gpt:tiny"\nlr = 0.01\nbatch-size = 8\nmax_steps = 2\n[model-overrides]\nhidden_size = 32\n'
              "num_attention_heads = 2\nintermediate_size = 64\n"),
    (".yaml", "model: gpt:tiny\nlr: 1e-2\nbatch-size: 8\nmax_steps: 2\nmodel-overrides:\n  hidden_size: 32\n"
              "  num_attention_heads: 2\n  intermediate_size: 64\n"),
])
def test_flags_typed_win_over_the_config_file_which_wins_over_defaults(run_cli, tmp_path, suffix, body):
    config = tmp_path / f"run{suffix}"
    config.write_text(body)
    out = tmp_path / "run"
    code, _, err = run_cli("train", "--config", config, "--data", data_dir("clm"), "--out", out, "--lr", "0.005",
                           "--eval-every", "0")
    assert code == 0, err
    saved = json.loads((out / "train_config.json").read_text())["config"]
    assert saved["lr"] == 0.005  # flag over file
    assert saved["batch_size"] == 8 and saved["max_steps"] == 2  # file over default
    assert saved["warmup"] == 0 and saved["schedule"] == "cosine"  # defaults
    assert json.loads((out / "config.json").read_text())["hidden_size"] == 32


def test_an_unknown_config_key_is_an_error_that_suggests_the_right_one(run_cli, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text("max_step = 10\n")
    code, _, err = run_cli("train", "--config", config, "--data", "D", "--model", "gpt", "--out", "O")
    assert code == 1
    assert "unknown key 'max_step'" in err and "max-steps" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, value", [
    ("--lr", "-1"), ("--lr", "nan"), ("--lr", "0"), ("--batch-size", "0"), ("--grad-accum", "-2"),
    ("--max-steps", "0"), ("--max-tokens", "-3"), ("--epochs", "0"), ("--epochs", "inf"), ("--warmup", "-1"),
    ("--min-lr", "-1"), ("--weight-decay", "-0.1"), ("--clip", "nan"), ("--eval-every", "-5"),
    ("--save-every", "-1"), ("--keep-last", "-1"), ("--log-every", "0"), ("--seed", "-1"), ("--num-workers", "-1"),
])
def test_every_bad_number_is_a_one_line_error_naming_its_flag(run_cli, tmp_path, flag, value):
    code, _, err = run_cli("train", "--data", tmp_path, "--model", "gpt", "--out", tmp_path / "o", flag, value)
    assert code == 1, err
    assert flag in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag, value, needle", [
    ("--schedule", "step", "--schedule must be one of cosine, linear, constant"),
    ("--precision", "fp16", "--precision must be one of fp32, bf16"),
])
def test_choices_are_checked(run_cli, tmp_path, flag, value, needle):
    code, _, err = run_cli("train", "--data", tmp_path, "--model", "gpt", "--out", tmp_path / "o", flag, value)
    assert code == 1 and needle in err


def test_a_model_that_does_not_train_on_the_shards_objective_is_refused(run_cli, tmp_path):
    code, _, err = run_cli("train", "--data", data_dir("mlm"), "--model", "gpt:tiny", "--out", tmp_path / "o")
    assert code == 1
    assert "a gpt model trains on clm shards, but --data holds mlm shards" in err
    assert not (tmp_path / "o").exists()
    code, _, err = run_cli("train", "--data", data_dir("mlm"), "--model", "gpt2", "--out", tmp_path / "o")
    assert code == 1 and "a gpt model trains on clm shards" in err  # a published shape names its family
    code, _, err = run_cli("train", "--data", data_dir("mlm"), "--model", "bort:tiny", "--out", tmp_path / "o")
    assert code == 1 and "unknown model family 'bort'" in err


# ---- learning rate and weight decay ------------------------------------------------------------

def test_learning_rate_warms_up_linearly_then_decays_to_min_lr():
    kw = dict(lr=1.0, min_lr=0.1, warmup=4, total=8)
    assert [lr_at(s, schedule="linear", **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert [round(lr_at(s, schedule="linear", **kw), 3) for s in range(4, 9)] == [1.0, 0.775, 0.55, 0.325, 0.1]
    # cosine: halfway through the decay it is exactly between lr and min_lr
    assert lr_at(6, schedule="cosine", **kw) == pytest.approx(0.55)
    assert lr_at(8, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_at(7, schedule="constant", **kw) == 1.0


def test_weight_decay_skips_biases_norms_and_position_tables():
    model = nn.ModuleDict({"fc": nn.Linear(4, 4), "norm": nn.LayerNorm(4), "position_embeddings": nn.Embedding(8, 4),
                           "word": nn.Embedding(10, 4)})
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decay["params"]) == ["fc.weight", "word.weight"]
    assert sorted(names[id(p)] for p in no_decay["params"]) == ["fc.bias", "norm.bias", "norm.weight",
                                                                 "position_embeddings.weight"]
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)


# ---- data order and collation --------------------------------------------------------------------

class FakeSplit:
    """A split of `n` rows whose row i is [i]; `rows` is what ShardSplit.rows returns."""

    path = "fake"
    columns = ["input_ids"]

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def rows(self, indices):
        return {"input_ids": [np.array([i]) for i in indices]}


def indices_of(batches: Batches, steps: int, position=DataPosition()) -> list[list[int]]:
    stream = batches(position)
    return [[int(i) for micro in next(stream)[1] for i in micro] for _ in range(steps)]


def test_one_process_with_accumulation_reads_what_two_ranks_read_together():
    def collate(rows, indices, epoch):
        return indices.tolist()

    single = indices_of(Batches(FakeSplit(20), collate, batch_size=8, grad_accum=2), 4)
    ranks = [indices_of(Batches(FakeSplit(20), collate, batch_size=8, rank=r, world_size=2), 4) for r in (0, 1)]
    assert single == [a + b for a, b in zip(*ranks, strict=True)]
    # each epoch (2 steps of 8 of the 20 rows) is a fresh permutation; steps never repeat a row
    assert len(set(single[0] + single[1])) == 16 and single[:2] != single[2:]
    assert single[0] + single[1] == epoch_order(20, 0, 0)[:16].tolist()


def test_a_resumed_position_gives_the_batches_an_uninterrupted_stream_gives():
    def collate(rows, indices, epoch):
        return (indices.tolist(), epoch)

    batches = Batches(FakeSplit(10), collate, batch_size=3, seed=7)  # 3 steps per epoch
    straight = [next(s) for s in [batches(DataPosition())] for _ in range(7)]
    resumed = batches(straight[3][0])  # the position after step 4 (epoch 1, step 1)
    assert [next(resumed) for _ in range(3)] == straight[4:]
    assert [p for p, _ in straight] == [DataPosition(0, 1), DataPosition(0, 2), DataPosition(0, 3),
                                        DataPosition(1, 1), DataPosition(1, 2), DataPosition(1, 3), DataPosition(2, 1)]


SP = SpecialIds(pad=0, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=50)


def test_collation_pads_each_column_with_its_own_value_and_masks_padding():
    rows = {"input_ids": [np.array([1, 10, 11, 2]), np.array([1, 12, 2])],
            "labels": [np.array([-100, 10, -100, -100]), np.array([-100, 12, -100])],
            "token_type_ids": [np.array([0, 0, 1, 1]), np.array([0, 0, 1])],
            "special_tokens_mask": [np.array([1, 0, 0, 1]), np.array([1, 0, 1])],
            "next_sentence_label": np.array([1, 0])}
    batch = Collator("nsp", SP)(rows, np.array([0, 1]), 0)
    assert batch["input_ids"].tolist() == [[1, 10, 11, 2], [1, 12, 2, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 10, -100, -100], [-100, 12, -100, -100]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 1, 1], [0, 0, 1, 0]]
    assert batch["next_sentence_label"].tolist() == [1, 0]
    assert "special_tokens_mask" not in batch and batch["input_ids"].dtype == torch.int64


def test_clm_labels_are_the_real_tokens_even_when_eos_is_the_pad_id():
    sp = SpecialIds(pad=2, cls=1, sep=2, mask=3, eos=2, bos=1, vocab_size=50)  # pad == eos, as GPT-2 tokenizers
    batch = Collator("clm", sp)({"input_ids": [np.array([7, 8, 2]), np.array([9])]}, np.array([0, 1]), 0)
    assert batch["input_ids"].tolist() == [[7, 8, 2], [9, 2, 2]]
    assert batch["labels"].tolist() == [[7, 8, 2], [9, -100, -100]]  # the real EOS keeps its label


def test_dynamic_masking_depends_on_seed_epoch_and_row_only():
    collate = Collator("mlm", SP, mask_spec=MaskSpec(), seed=5)
    row = np.array([1, *range(10, 40), 2])
    rows = {"input_ids": [row, row[:9]], "special_tokens_mask": [SP.is_special(row), SP.is_special(row[:9])]}
    alone = collate({k: v[:1] for k, v in rows.items()}, np.array([17]), 2)
    together = collate(rows, np.array([17, 3]), 2)
    assert torch.equal(alone["labels"][0], together["labels"][0, : len(row)])  # batch mates do not matter
    masked = (together["labels"][0] != -100).sum()
    assert masked == round(0.15 * 30)  # BERT's count over the 30 maskable tokens
    next_epoch = collate({k: v[:1] for k, v in rows.items()}, np.array([17]), 3)
    # a different epoch draws a different set of 4 from 30 positions: equal with probability 1/C(30,4) ≈ 4e-5
    assert not torch.equal(alone["labels"], next_epoch["labels"])
    assert int(alone["labels"][0, 0]) == -100 and int(alone["labels"][0, -1]) == -100  # [CLS], [SEP] never masked


def test_dynamic_whole_word_masking_never_splits_a_word():
    """[CLS] w ##x ##y v [SEP] at 50%: 2 of the 4 maskable tokens; the 3-token word overflows, v is taken."""
    row = np.array([1, 20, 21, 22, 30, 2])
    starts = lambda ids: np.array([True, True, False, False, True, True])  # noqa: E731
    collate = Collator("mlm", SP, mask_spec=MaskSpec(mask_prob=0.5, mask_replace=1.0, random_replace=0.0),
                       word_starts=starts)
    for index in range(20):  # whatever the generator draws
        batch = collate({"input_ids": [row], "special_tokens_mask": [SP.is_special(row)]}, np.array([index]), 0)
        assert batch["labels"].tolist() == [[-100, -100, -100, -100, 30, -100]]
        assert batch["input_ids"].tolist() == [[1, 20, 21, 22, 3, 2]]


def test_shard_rows_come_back_as_arrays_in_the_order_asked(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"input_ids": [[1, 2], [3], [4, 5, 6]], "sep": [2, 1, 3]}).save_to_disk(str(tmp_path))
    split = ShardSplit(tmp_path)
    rows = split.rows(np.array([2, 0]))
    assert [r.tolist() for r in rows["input_ids"]] == [[4, 5, 6], [1, 2]] and rows["sep"].tolist() == [3, 2]
    assert split.num_tokens() == 6 and len(split) == 3


# ---- checkpoints ---------------------------------------------------------------------------------

def test_optimizer_state_survives_a_checkpoint_without_pickle(tmp_path):
    from plmkit.train import distributed

    def make():
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
        return model, torch.optim.AdamW(param_groups(model, 0.1), lr=0.01)

    def step(model, opt):
        model(torch.ones(2, 3)).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()

    model, opt = make()
    step(model, opt)
    path = ckpt.save_checkpoint(tmp_path, 1, model=model.state_dict(),
                                optimizer=distributed.full_optimizer_state(model, opt, distributed.Dist()),
                                rng=[ckpt.rng_state(torch.device("cpu"))], trainer={"tokens": 5})
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "optimizer.safetensors",
                                                      "rng.safetensors", "trainer.json"]
    loaded = ckpt.load_checkpoint(path)
    model2, opt2 = make()
    model2.load_state_dict(loaded.model)
    distributed.load_optimizer_state(model2, opt2, loaded.optimizer)
    step(model, opt)
    step(model2, opt2)
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert loaded.step == 1 and loaded.trainer["tokens"] == 5


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in (2, 4, 6):
        ckpt.save_checkpoint(tmp_path, step, model={"w": torch.zeros(1)}, optimizer={"state": {}, "param_groups": []},
                             rng=[], trainer={}, keep_last=2)
    assert [p.name for p in ckpt.checkpoints(tmp_path)] == ["step-00000004", "step-00000006"]


# ---- the RUN directory ---------------------------------------------------------------------------

def test_a_run_directory_holds_everything_later_stages_need(run_cli, tmp_path):
    from plmkit.manifest import read_manifest
    from plmkit.models import load_model

    data, out = data_dir("clm"), tmp_path / "run"
    code, _, err = run_cli(*train_args(tmp_path, data, out, "--max-steps", "4", "--save-every", "2",
                                       "--eval-every", "2", "--keep-last", "1"))
    assert code == 0, err
    manifest = read_manifest(out, "run")
    assert manifest["upstream"]["fingerprint"] == read_manifest(data, "data")["fingerprint"]
    assert manifest["steps"] == 4 and manifest["objective"] == "clm"
    model, cfg = load_model(out)
    assert cfg.family == "gpt" and cfg.vocab_size == json.loads((data / "tokenizer/plmkit.json").read_text())["vocab_size"]
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == (data / "tokenizer" / "tokenizer.json").read_bytes()
    assert [p.name for p in ckpt.checkpoints(out)] == ["step-00000004"]
    final = ckpt.load_checkpoint(ckpt.checkpoints(out)[-1]).model
    assert all(torch.equal(final[k], v) for k, v in model.state_dict().items())
    records = read_metrics(out)
    train_lines = [r for r in records if "loss" in r]
    assert [r["step"] for r in train_lines] == [1, 2, 3, 4]
    assert set(train_lines[0]) == {"step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"}
    assert [r["step"] for r in records if "eval_loss" in r] == [2, 4]
    assert {"eval_perplexity", "eval_next_token_accuracy"} <= set(records[-1])
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerunning_resumes_refuses_changed_settings_and_continues_past_the_old_end(run_cli, tmp_path):
    data, out = data_dir("clm"), tmp_path / "run"
    args = train_args(tmp_path, data, out, "--max-steps", "3", "--eval-every", "0")
    assert run_cli(*args)[0] == 0
    code, _, err = run_cli(*args)
    assert code == 0 and "already complete (3 steps)" in err
    code, _, err = run_cli(*args, "--lr", "0.1")
    assert code == 1 and "--lr 0.1 differs from 0.0003" in err
    code, _, err = run_cli(*train_args(tmp_path, data, out, "--max-steps", "5", "--eval-every", "0"))
    assert code == 0, err
    assert "resuming from" in err and [r["step"] for r in read_metrics(out) if "loss" in r] == [1, 2, 3, 4, 5]
    code, _, err = run_cli(*args, "--force")
    assert code == 0 and [r["step"] for r in read_metrics(out) if "loss" in r] == [1, 2, 3]


def test_resume_needs_a_checkpoint_and_out_must_be_a_run(run_cli, tmp_path):
    data = data_dir("clm")
    code, _, err = run_cli(*train_args(tmp_path, data, tmp_path / "new", "--max-steps", "1", "--resume"))
    assert code == 1 and "has no checkpoint to resume from" in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, _, err = run_cli(*train_args(tmp_path, data, tmp_path / "other", "--max-steps", "1"))
    assert code == 1 and "already exists and is not a plmkit run" in err
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_stop_conditions_tokens_and_epochs(run_cli, tmp_path):
    data = data_dir("clm")
    rows = len(ShardSplit(data / "train"))
    code, _, err = run_cli(*train_args(tmp_path, data, tmp_path / "epochs", "--epochs", "1", "--eval-every", "0"))
    assert code == 0, err
    assert read_metrics(tmp_path / "epochs")[-1]["step"] == rows // 8
    code, _, err = run_cli(*train_args(tmp_path, data, tmp_path / "tokens", "--max-tokens", "600", "--eval-every", "0"))
    assert code == 0, err
    tokens = [r["tokens"] for r in read_metrics(tmp_path / "tokens") if "loss" in r]
    assert tokens[-1] >= 600 > tokens[-2]  # stops at the first step that reaches the budget


def test_data_workers_and_bf16(run_cli, tmp_path):
    """Workers collate the same batches (same weights); bf16 autocast trains on CPU with a finite loss."""
    data = data_dir("mlm", dynamic=True)
    common = ("--model", "roberta:tiny", "--batch-size", "8", "--max-steps", "3", "--eval-every", "0",
              "--config", small_overrides(tmp_path))
    for name, extra in (("w0", ()), ("w2", ("--num-workers", "2")), ("bf16", ("--precision", "bf16"))):
        code, _, err = run_cli("train", "--data", data, "--out", tmp_path / name, *common, *extra)
        assert code == 0, err
    assert (tmp_path / "w0/model.safetensors").read_bytes() == (tmp_path / "w2/model.safetensors").read_bytes()
    last = read_metrics(tmp_path / "bf16")
    assert math.isfinite(last[-2]["loss"]) and math.isfinite(last[-1]["eval_loss"])


def test_init_from_a_run_or_a_hugging_face_directory_starts_from_its_weights(run_cli, tmp_path):
    from plmkit.models import load_model

    data = data_dir("clm")
    assert run_cli(*train_args(tmp_path, data, tmp_path / "base", "--max-steps", "3", "--lr", "0.01"))[0] == 0
    assert run_cli("export", tmp_path / "base", "--format", "hf", "--out", tmp_path / "hf")[0] == 0
    source, _ = load_model(tmp_path / "base")
    for init in (tmp_path / "base", tmp_path / "hf"):
        out = tmp_path / f"from-{init.name}"
        # a learning rate of 1e-12 keeps the weights where --init-from put them
        code, _, err = run_cli("train", "--data", data, "--out", out, "--init-from", init, "--max-steps", "1",
                               "--lr", "1e-12", "--batch-size", "8", "--eval-every", "0")
        assert code == 0, err
        model, _ = load_model(out)
        for name, value in source.state_dict().items():
            torch.testing.assert_close(model.state_dict()[name], value, atol=1e-6, rtol=0)
    code, _, err = run_cli("train", "--data", data, "--out", tmp_path / "x", "--init-from", tmp_path / "base",
                           "--model", "llama", "--max-steps", "1")
    assert code == 1 and "does not match --init-from" in err


def test_bert_pretraining_loss_is_the_mlm_plus_the_nsp_loss(tmp_path):
    """The logged loss is what the model optimises; validation reports both parts, and they add up."""
    from plmkit.train import TrainConfig, train

    summary = train(TrainConfig(data=str(data_dir("nsp")), model="bert:tiny", out=str(tmp_path / "run"),
                                max_steps=2, batch_size=8, model_overrides=dict(SMALL)))
    ev = summary["eval"]
    assert ev["loss"] == pytest.approx(ev["mlm_loss"] + ev["nsp_loss"])
    assert 0 <= ev["mlm_accuracy"] <= 1 and 0 <= ev["nsp_accuracy"] <= 1
    assert ev["perplexity"] == pytest.approx(math.exp(ev["mlm_loss"]))
