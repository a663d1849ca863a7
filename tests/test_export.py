"""`plmkit export`: a trained run becomes a directory that transformers loads as it is.

For each family transformers has, a run trained for two steps is exported; `AutoModelFor…`
and `AutoTokenizer` load the directory; the logits match plmkit's within 1e-4 (fp32) and the
tokenizer encodes like plmkit's. GLM is refused with the reason.
"""

from __future__ import annotations

import pytest
import torch
from train_helpers import SMALL, data_dir, documents, one_thread

transformers = pytest.importorskip("transformers")

FAMILIES = {  # family: (objective, AutoModel class, the HF output holding the LM logits)
    "bert": ("nsp", "AutoModelForPreTraining", "prediction_logits"),
    "roberta": ("mlm", "AutoModelForMaskedLM", "logits"),
    "albert": ("sop", "AutoModelForPreTraining", "prediction_logits"),
    "t5": ("t5-span", "AutoModelForSeq2SeqLM", "logits"),
    "gpt": ("clm", "AutoModelForCausalLM", "logits"),
    "llama": ("clm", "AutoModelForCausalLM", "logits"),
}


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def trained_run(tmp_path, family: str, objective: str):
    from plmkit.train import TrainConfig, train

    overrides = {**SMALL, **({"num_key_value_heads": 1} if family == "llama" else {}),
                 **({"embedding_size": 16} if family == "albert" else {})}
    out = tmp_path / "run"
    train(TrainConfig(data=str(data_dir(objective)), model=f"{family}:tiny", out=str(out), max_steps=2,
                      batch_size=8, lr=1e-2, eval_every=0, model_overrides=overrides))
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_exported_runs_load_in_transformers_with_the_same_logits_and_tokens(run_cli, tmp_path, family):
    from plmkit.models import load_model
    from plmkit.tokenization import load_tokenizer

    objective, auto_class, logits_name = FAMILIES[family]
    run = trained_run(tmp_path, family, objective)
    code, _, err = run_cli("export", run, "--format", "hf", "--out", tmp_path / "hf")
    assert code == 0, err
    hf_model = getattr(transformers, auto_class).from_pretrained(tmp_path / "hf").eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    ours, _ = load_model(run)
    tok = load_tokenizer(run / "tokenizer")

    text = documents(1, seed=5)[0].replace("\n", " ")
    ids = tok.encode(text)
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == ids.tolist()
    assert hf_tok.pad_token_id == tok.id("pad")

    input_ids = torch.tensor(ids[:20], dtype=torch.long)[None]
    mask = torch.ones_like(input_ids)
    with torch.no_grad():
        if family == "t5":
            labels = input_ids[:, :7]
            expected = ours(input_ids=input_ids, attention_mask=mask, labels=labels).logits
            got = getattr(hf_model(input_ids=input_ids, attention_mask=mask, labels=labels), logits_name)
        else:
            expected = ours(input_ids=input_ids, attention_mask=mask).logits
            got = getattr(hf_model(input_ids=input_ids, attention_mask=mask), logits_name)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_glm_export_is_refused_with_the_reason(run_cli, tmp_path):
    run = trained_run(tmp_path, "glm", "glm")
    code, _, err = run_cli("export", run, "--format", "hf", "--out", tmp_path / "hf")
    assert code == 1 and "GLM" in err and "transformers has no GLM-1 class" in err
    assert not (tmp_path / "hf").exists()


def test_export_needs_a_finished_run_and_a_known_format(run_cli, tmp_path):
    code, _, err = run_cli("export", tmp_path, "--out", tmp_path / "hf")
    assert code == 1 and "plmkit.json" in err
    code, _, err = run_cli("export", tmp_path, "--format", "onnx", "--out", tmp_path / "hf")
    assert code == 1 and "--format 'onnx'" in err
