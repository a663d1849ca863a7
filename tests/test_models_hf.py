"""Parity with Hugging Face transformers, both ways, for every family transformers has.

HF → plmkit: a tiny random transformers model (norm weights and biases perturbed, so eps and
bias bugs cannot hide) is saved with `save_pretrained`, imported with `import_hf`, and must give
the same logits (1e-4, fp32) and the same loss on a batch with padding and -100 labels.
plmkit → HF: a perturbed plmkit model is exported with `export_hf`, loaded with
`AutoModelFor….from_pretrained` with no missing or unexpected keys, and compared the same way.
"""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

from plmkit.errors import PlmkitError  # noqa: E402
from plmkit.models import build_model, get_config  # noqa: E402
from plmkit.models.hf import export_hf, import_hf  # noqa: E402

V = 120

# family -> (HF config class, HF config kwargs, HF model class, Auto class used to load an export)
HF = {
    "bert": ("BertConfig", dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=37, max_position_embeddings=64, type_vocab_size=2),
             "BertForPreTraining", "AutoModelForPreTraining"),
    "roberta": ("RobertaConfig", dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=37, max_position_embeddings=66, type_vocab_size=1,
                                      layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2),
                "RobertaForMaskedLM", "AutoModelForMaskedLM"),
    "albert": ("AlbertConfig", dict(vocab_size=V, embedding_size=16, hidden_size=32, num_hidden_layers=4,
                                    num_hidden_groups=2, num_attention_heads=4, intermediate_size=37,
                                    max_position_embeddings=64, hidden_act="gelu_new"),
               "AlbertForPreTraining", "AutoModelForPreTraining"),
    "t5-v1.0": ("T5Config", dict(vocab_size=V, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                 feed_forward_proj="relu", tie_word_embeddings=True, decoder_start_token_id=0),
                "T5ForConditionalGeneration", "AutoModelForSeq2SeqLM"),
    "t5-v1.1": ("T5Config", dict(vocab_size=V, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_decoder_layers=3,
                                 num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                 feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                 decoder_start_token_id=0),
                "T5ForConditionalGeneration", "AutoModelForSeq2SeqLM"),
    "gpt": ("GPT2Config", dict(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=0,
                               eos_token_id=0), "GPT2LMHeadModel", "AutoModelForCausalLM"),
    "llama-gqa": ("LlamaConfig", dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
                                      rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False),
                  "LlamaForCausalLM", "AutoModelForCausalLM"),
    "llama-mha-tied": ("LlamaConfig", dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                           intermediate_size=64, max_position_embeddings=64, tie_word_embeddings=True),
                       "LlamaForCausalLM", "AutoModelForCausalLM"),
}

# plmkit configs for the export direction (same shapes as above, as plmkit overrides).
PLMKIT = {
    "bert": ("bert", dict(hidden_size=32, num_attention_heads=4, intermediate_size=37)),
    "roberta": ("roberta", dict(hidden_size=32, num_attention_heads=4, intermediate_size=37,
                                max_position_embeddings=66)),
    "albert": ("albert", dict(hidden_size=32, embedding_size=16, num_hidden_layers=4, num_hidden_groups=2,
                              num_attention_heads=4, intermediate_size=37)),
    "t5-v1.0": ("t5", dict(hidden_size=32, head_dim=8, num_attention_heads=4, intermediate_size=37, activation="relu",
                           tie_word_embeddings=True, scale_decoder_outputs=True, relative_attention_num_buckets=8,
                           relative_attention_max_distance=20)),
    "t5-v1.1": ("t5", dict(hidden_size=32, head_dim=8, num_attention_heads=4, intermediate_size=37,
                           num_decoder_layers=3, relative_attention_num_buckets=8,
                           relative_attention_max_distance=20)),
    "gpt": ("gpt", dict(hidden_size=32, num_attention_heads=4, intermediate_size=128)),
    "gpt-sinusoidal": ("gpt", dict(hidden_size=32, num_attention_heads=4, intermediate_size=128,
                                   position="sinusoidal")),
    "llama-gqa": ("llama", dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                                rope_theta=500000.0)),
    "llama-mha-tied": ("llama", dict(hidden_size=32, num_attention_heads=4, num_key_value_heads=0,
                                     intermediate_size=64, tie_word_embeddings=True)),
}


def perturb(model: torch.nn.Module, seed: int = 1) -> None:
    """Move 1-D parameters (norm weights, biases) and tables away from their init values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            scale = 0.1 if p.ndim == 1 else 0.02
            p.add_(torch.randn(p.shape, generator=g) * scale)


def batch_for(case: str, pad_id: int) -> dict:
    """B=2, T=12 with the second row right-padded to 8 real tokens; labels -100 on padding."""
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(3, V, (2, 12), generator=g)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, 8:] = 0
    ids[1, 8:] = pad_id
    if case.startswith("t5"):
        labels = torch.randint(3, V, (2, 7), generator=g)
        labels[1, 5:] = -100
        return dict(input_ids=ids, attention_mask=mask, labels=labels)
    if case.startswith(("gpt", "llama")):
        return dict(input_ids=ids, attention_mask=mask)
    labels = torch.full_like(ids, -100)
    labels[0, [1, 4, 9]] = ids[0, [1, 4, 9]]
    labels[1, [2, 5]] = ids[1, [2, 5]]
    batch = dict(input_ids=ids, attention_mask=mask, labels=labels)
    if case == "bert":
        batch.update(token_type_ids=(torch.arange(12) >= 6).long().expand(2, 12).clone(),
                     next_sentence_label=torch.tensor([0, 1]))
    if case == "albert":
        batch.update(token_type_ids=(torch.arange(12) >= 5).long().expand(2, 12).clone(),
                     sentence_order_label=torch.tensor([1, 0]))
    return batch


def hf_run(model, case: str, batch: dict):
    """(logits, loss) of an HF model on the plmkit batch."""
    kw = dict(batch)
    if case.startswith(("gpt", "llama")):
        kw["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    out = model(**kw)
    logits = out.prediction_logits if hasattr(out, "prediction_logits") else out.logits
    return logits, out.loss


def ours_run(model, batch: dict):
    full = {"full_logits": True} if model.cfg.skeleton == "encoder" else {}   # HF predicts every position
    out = model(**batch, **full)
    return out.logits, out.loss


def assert_same(ours, theirs, case: str, batch: dict) -> None:
    (lo, so), (lt, st) = ours, theirs
    keep = batch["attention_mask"].bool() if lo.shape[:2] == batch["attention_mask"].shape else slice(None)
    if case.startswith("t5"):
        keep = slice(None)
    torch.testing.assert_close(lo[keep], lt[keep], atol=1e-4, rtol=0)
    torch.testing.assert_close(so, st, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", list(HF))
def test_hf_model_imports_with_equal_logits_and_loss(case, tmp_path):
    cfg_cls, kwargs, model_cls, _ = HF[case]
    torch.manual_seed(0)
    theirs = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**kwargs)).eval()
    if case == "t5-v1.1":   # v5 builds a fresh v1.1 tied; a real v1.1 checkpoint has its own lm_head
        theirs.lm_head.weight = torch.nn.Parameter(torch.randn(V, 32))
    perturb(theirs)
    theirs.save_pretrained(tmp_path)
    ours, cfg = import_hf(tmp_path)
    batch = batch_for(case, cfg.pad_token_id)
    with torch.no_grad():
        assert_same(ours_run(ours, batch), hf_run(theirs, case, batch), case, batch)


@pytest.mark.parametrize("case", list(PLMKIT))
def test_plmkit_model_exports_and_transformers_loads_it_equal(case, tmp_path):
    family, overrides = PLMKIT[case]
    torch.manual_seed(0)
    cfg = get_config(family, "tiny", vocab_size=V, max_position_embeddings=overrides.pop("max_position_embeddings", 64),
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)
    ours = build_model(cfg).eval()
    perturb(ours)
    export_hf(ours, cfg, tmp_path)
    auto = getattr(transformers, HF.get(case, HF["gpt"])[3])
    theirs, info = auto.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    theirs.eval()
    batch = batch_for(case, cfg.pad_token_id)
    with torch.no_grad():
        assert_same(ours_run(ours, batch), hf_run(theirs, case, batch), case, batch)


def test_export_writes_tied_tensors_once_with_pt_metadata(tmp_path):
    from safetensors import safe_open

    cfg = get_config("bert", "tiny", vocab_size=V)
    export_hf(build_model(cfg), cfg, tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert meta == {"format": "pt"}
    assert "bert.embeddings.word_embeddings.weight" in keys and "cls.predictions.bias" in keys
    assert "cls.predictions.decoder.weight" not in keys and "cls.predictions.decoder.bias" not in keys
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == ["BertForPreTraining"]


def test_glm_export_refuses_with_the_reason(tmp_path):
    cfg = get_config("glm", "tiny")
    with pytest.raises(PlmkitError, match="no built-in GLM-1 class"):
        export_hf(build_model(cfg), cfg, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


def test_import_refuses_pickled_weights(tmp_path):
    cfg = get_config("gpt", "tiny", vocab_size=V)
    export_hf(build_model(cfg), cfg, tmp_path)
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(PlmkitError, match="pickled weights"):
        import_hf(tmp_path)


def test_import_accepts_keys_without_the_base_model_prefix(tmp_path):
    """The original hub gpt2 files use bare keys (`wte.weight`, `h.0.…`)."""
    from safetensors.torch import load_file, save_file

    cfg = get_config("gpt", "tiny", vocab_size=V)
    model = build_model(cfg).eval()
    export_hf(model, cfg, tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    save_file({k.removeprefix("transformer."): v for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    again, _ = import_hf(tmp_path)
    ids = torch.randint(0, V, (1, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, atol=0, rtol=0)


def test_glm_matches_the_gpt2_emulation_of_glm1():
    """GLM-1 == GPT-2 driven with word + block-position embeddings and the sep mask (reference notes §8a).

    plmkit's GLM keeps the same parameter names as its GPT, so the GPT-2 key table maps it; the
    block-position table has no GPT-2 slot and is added to `inputs_embeds` by hand.
    """
    from plmkit.models.hf import hf_config, to_hf_state

    torch.manual_seed(0)
    cfg = get_config("glm", "tiny", vocab_size=V, max_position_embeddings=17)
    glm = build_model(cfg).eval()
    perturb(glm)
    as_gpt = get_config("gpt", "tiny", vocab_size=V, activation="gelu", max_position_embeddings=17)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(**hf_config(as_gpt))).eval()
    gpt2.load_state_dict(to_hf_state(glm, as_gpt), strict=False)
    ids = torch.tensor([[2, 10, 11, 3, 12, 3, 4, 20, 21, 4, 22]])
    pos = torch.tensor([[0, 1, 2, 3, 4, 5, 5, 5, 5, 3, 3]])
    block = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 2, 3, 1, 2]])
    T, sep = 11, 6
    allowed = (torch.arange(T)[None] <= torch.arange(T)[:, None]) | (torch.arange(T)[None] < sep)
    mask = torch.zeros(1, 1, T, T).masked_fill(~allowed, torch.finfo(torch.float32).min)
    with torch.no_grad():
        ours = glm(ids, position_ids=pos, block_position_ids=block, sep=torch.tensor([sep]), full_logits=True).logits
        embeds = gpt2.transformer.wte(ids) + glm.block_position(block)
        theirs = gpt2(inputs_embeds=embeds, position_ids=pos, attention_mask=mask).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
