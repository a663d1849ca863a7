"""Fine-tuned models exported to transformers' AutoModelFor{Sequence,Token}Classification: same logits (1e-4)."""

from __future__ import annotations

import json

import pytest
import torch
from finetune_helpers import random_run, tagging_sentence, write_jsonl

from plmkit.errors import PlmkitError
from plmkit.finetune import FinetuneConfig, export_hf, finetune, load_finetuned
from plmkit.finetune.data import Example, collate

CASES = [("bert", "classify"), ("roberta", "classify"), ("albert", "classify"), ("gpt", "classify"),
         ("llama", "classify"), ("bert", "label-tokens"), ("roberta", "label-tokens"), ("albert", "label-tokens")]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import random

    d = tmp_path_factory.mktemp("hf-files")
    rng = random.Random(3)
    tagged = [tagging_sentence(rng) for _ in range(16)]
    pairs = [{"a": " ".join(w[:3]), "b": " ".join(w[3:]), "label": ["x", "y", "z"][i % 3]}
             for i, (w, _) in enumerate(tagged)]
    return {"classify": write_jsonl(d / "pairs.jsonl", pairs),
            "label-tokens": write_jsonl(d / "tags.jsonl", [{"tokens": w, "tags": t} for w, t in tagged])}


def _finetuned(family: str, task: str, files, out):
    """One optimizer step: the head is random, the weights are what matters for parity, not their quality."""
    pair = "b" if task == "classify" else None
    text = "a" if task == "classify" else None
    finetune(FinetuneConfig(run=str(random_run(family)), task=task, train=str(files[task]),
                            validation=str(files[task]), out=str(out), text_field=text, text_pair_field=pair,
                            epochs=1, batch_size=16, lr=1e-3))
    return out


@pytest.mark.parametrize("family, task", CASES)
def test_exported_model_gives_the_same_logits_in_transformers(family, task, files, tmp_path):
    import transformers

    ft_dir = _finetuned(family, task, files, tmp_path / "ft")
    hf_dir = export_hf(ft_dir, tmp_path / "hf")
    auto = transformers.AutoModelForSequenceClassification if task == "classify" else \
        transformers.AutoModelForTokenClassification
    hf, info = auto.from_pretrained(hf_dir, output_loading_info=True)
    assert type(hf).__name__ == json.loads((hf_dir / "config.json").read_text())["architectures"][0]
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert hf.config.id2label == dict(enumerate(load_finetuned(ft_dir, "cpu").labels))

    ft = load_finetuned(ft_dir, "cpu")
    if task == "classify":   # pairs of unequal lengths: padding, token types (BERT, ALBERT), the last real token
        examples = [Example("the cat sat", "on a mat", "x"), Example("dog", "ran far away from home now", "y")]
    else:
        examples = [Example(["the", "Cat", "sat", "42"], None, ["O"] * 4), Example(["Dog"], None, ["O"])]
    batch = collate(ft.encoder().encode(examples), [0, 1], ft.tokenizer.id("pad"))
    batch.pop("labels")
    with torch.no_grad():
        ours, theirs = ft.model(**batch).logits, hf.eval()(**batch).logits
    if task == "label-tokens":
        real = batch["attention_mask"].bool()
        ours, theirs = ours[real], theirs[real]
    assert ours.shape == theirs.shape
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    assert tok.pad_token_id == ft.tokenizer.id("pad")


@pytest.mark.parametrize("family", ["t5", "glm"])
def test_t5_and_glm_are_refused_with_one_line(family, files, tmp_path):
    ft_dir = _finetuned(family, "classify", files, tmp_path / "ft")
    with pytest.raises(PlmkitError, match=f"a fine-tuned {family} model cannot be exported"):
        export_hf(ft_dir, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_plmkit_export_hands_ft_to_the_classification_export(files, tmp_path, run_cli):
    import transformers

    ft_dir = _finetuned("bert", "classify", files, tmp_path / "ft")
    code, out, err = run_cli("export", str(ft_dir), "--out", str(tmp_path / "hf"))
    assert code == 0, err
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert type(hf).__name__ == "BertForSequenceClassification"
    assert hf.config.id2label == {0: "x", 1: "y", 2: "z"}
    code, out, err = run_cli("export", str(ft_dir), "--out", str(tmp_path / "hf"))  # exists: refused
    assert code == 1 and "--force" in err and len(err.strip().splitlines()) == 1
