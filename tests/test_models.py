"""Model specifications: config, presets, masks, positions, losses, KV cache, save/load."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from plmkit.errors import PlmkitError
from plmkit.models import (
    FAMILY_OBJECTIVES,
    ModelConfig,
    build_model,
    count_parameters,
    get_config,
    load_model,
    save_model,
)
from plmkit.models.blocks import (
    RMSNorm,
    build_mask,
    decoding_layout,
    relative_buckets,
    rope_cos_sin,
    sinusoidal_table,
)
from plmkit.models.presets import PUBLISHED, SIZES

FAMILIES = list(FAMILY_OBJECTIVES)


def tiny(family: str, **kw):
    torch.manual_seed(0)
    cfg = get_config(family, "tiny", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **kw)
    return build_model(cfg).eval(), cfg


# ---- config ---------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trips_through_json(family):
    cfg = get_config(family, "small", vocab_size=300)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.vocab_size == 300 and again.family == family


@pytest.mark.parametrize("overrides, field", [
    (dict(hidden_size=65), "hidden_size"),
    (dict(num_key_value_heads=3), "num_key_value_heads"),
    (dict(norm="batchnorm"), "norm"),
    (dict(position="alibi"), "position"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
    (dict(pad_token_id=999), "pad_token_id"),
    (dict(attention_mask="bidirectional"), "attention_mask"),
])
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(PlmkitError, match=field):
        get_config("llama", "tiny", **overrides)


def test_unknown_family_size_and_field_are_user_errors():
    with pytest.raises(PlmkitError, match="unknown model family 'bart'"):
        get_config("bart")
    with pytest.raises(PlmkitError, match="unknown model size 'huge'"):
        get_config("gpt", "huge")
    with pytest.raises(PlmkitError, match="hiden_size"):
        ModelConfig.from_dict({"family": "gpt", "hiden_size": 32})


@pytest.mark.parametrize("name, expected", [("bert-base", 110e6), ("gpt2", 124e6)])
def test_published_parameter_counts_within_one_percent(name, expected):
    with torch.device("meta"):
        model = build_model(get_config(name))
    assert abs(count_parameters(model) - expected) / expected < 0.01


def test_published_shapes_count_exactly_like_transformers():
    """BertForPreTraining 110,106,428; GPT2LMHeadModel 124,439,808; t5-small 60,506,624 (tied)."""
    counts = {}
    for name in ("bert-base", "gpt2", "t5-small"):
        with torch.device("meta"):
            counts[name] = count_parameters(build_model(get_config(name)))
    assert counts == {"bert-base": 110_106_428, "gpt2": 124_439_808, "t5-small": 60_506_624}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", list(SIZES))
def test_every_family_and_size_builds(family, size):
    with torch.device("meta"):
        model = build_model(get_config(family, size))
    assert count_parameters(model) > 0


def test_every_published_shape_builds():
    for name in PUBLISHED:
        with torch.device("meta"):
            assert count_parameters(build_model(get_config(name))) > 0


def test_albert_shares_one_layer_set_across_depth():
    with torch.device("meta"):
        n4 = count_parameters(build_model(get_config("albert", "tiny", num_hidden_layers=4)))
        n8 = count_parameters(build_model(get_config("albert", "tiny", num_hidden_layers=8)))
        b4 = count_parameters(build_model(get_config("bert", "tiny", num_hidden_layers=4)))
        b8 = count_parameters(build_model(get_config("bert", "tiny", num_hidden_layers=8)))
    assert n4 == n8 and b8 > b4


# ---- positions and masks --------------------------------------------------------------------
def test_t5_relative_buckets_match_the_reference_values():
    """32 buckets, max distance 128: 0–7 exact, 8–127 log-binned into 8–15, +16 to the right.

    The expected lists are what transformers' T5Attention._relative_position_bucket returns.
    """
    rel = torch.tensor([-200, -128, -20, -8, -7, -1, 0, 1, 7, 8, 20, 127, 128])
    assert relative_buckets(rel, True, 32, 128).tolist() == [15, 15, 10, 8, 7, 1, 0, 17, 23, 24, 26, 31, 31]
    # decoder (causal): only the past counts, 32 buckets for it; the future maps to 0
    assert relative_buckets(torch.tensor([-200, -20, -16, -1, 0, 5]), False, 32, 128).tolist() == \
        [31, 17, 16, 1, 0, 0]


def test_glm_prefix_mask_literal():
    mask = build_mask("glm-prefix", None, 5, 5, "cpu", sep=torch.tensor([2]))
    assert mask[0, 0].int().tolist() == [
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
    ]


def test_sinusoidal_table_values():
    table = sinusoidal_table(3, 4)
    expected = torch.tensor([[0.0, 1.0, 0.0, 1.0],
                             [0.841471, 0.540302, 0.0099998, 0.99995],
                             [0.909297, -0.416147, 0.019999, 0.9998]])
    torch.testing.assert_close(table, expected, atol=1e-5, rtol=0)


def test_rms_norm_is_the_same_with_and_without_autograd():
    """[3, 4]: rms = sqrt((9 + 16) / 2) = 3.5355, so y = [0.8485, 1.1314]; the no-grad CPU path
    (one layer_norm over [x, -x]) must agree with F.rms_norm's."""
    norm = RMSNorm(2, eps=0.0)
    literal = torch.tensor([[3.0, 4.0]])
    with torch.no_grad():
        torch.testing.assert_close(norm(literal), torch.tensor([[0.8485, 1.1314]]), atol=1e-4, rtol=0)
    norm = RMSNorm(256, eps=1e-5)
    nn.init.normal_(norm.weight)
    x = torch.randn(3, 5, 256, generator=torch.Generator().manual_seed(0)) * 3 + 0.5
    with torch.no_grad():
        fast = norm(x)
    torch.testing.assert_close(fast, norm(x), atol=1e-5, rtol=1e-6)


def test_roberta_positions_skip_padding():
    model, _ = tiny("roberta")
    ids = torch.tensor([[5, 6, 7, 1, 1]])   # pad id 1
    assert model.positions(ids).tolist() == [[2, 3, 4, 1, 1]]


def test_t5_shift_right_uses_pad_and_drops_ignored():
    model, _ = tiny("t5")
    assert model.shift_right(torch.tensor([[5, 6, 1, -100]])).tolist() == [[0, 5, 6, 1]]


def glm_batch(ids_b=None):
    """Part A = 6 tokens (sep=6), Part B = [sop] x x [sop] x (5 tokens), like the data notes' example."""
    ids = torch.tensor([[2, 10, 11, 3, 12, 3, 4, 20, 21, 4, 22]])
    if ids_b is not None:
        ids[0, 6:] = torch.tensor(ids_b)
    pos = torch.tensor([[0, 1, 2, 3, 4, 5, 5, 5, 5, 3, 3]])
    block = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 2, 3, 1, 2]])
    return dict(input_ids=ids, position_ids=pos, block_position_ids=block, sep=torch.tensor([6]))


@pytest.mark.parametrize("placement", ["pre", "post"])
def test_glm_part_a_never_sees_part_b(placement):
    model, _ = tiny("glm", norm_placement=placement)
    with torch.no_grad():
        base = model(**glm_batch(), full_logits=True).logits
        for i in range(5):
            ids_b = [4, 20, 21, 4, 22]
            ids_b[i] = 99
            changed = model(**glm_batch(ids_b), full_logits=True).logits
            torch.testing.assert_close(changed[:, :6], base[:, :6], atol=0, rtol=0)
            assert not torch.allclose(changed[:, 6 + i], base[:, 6 + i])


def test_glm_part_b_is_causal():
    model, _ = tiny("glm")
    with torch.no_grad():
        base = model(**glm_batch(), full_logits=True).logits
        changed = model(**glm_batch([4, 20, 21, 4, 99]), full_logits=True).logits   # the last Part B token
        torch.testing.assert_close(changed[:, :10], base[:, :10], atol=0, rtol=0)
        changed = model(**glm_batch([4, 99, 21, 4, 22]), full_logits=True).logits   # an early one
        torch.testing.assert_close(changed[:, :7], base[:, :7], atol=0, rtol=0)
        assert not torch.allclose(changed[:, 8:], base[:, 8:])


# ---- losses -------------------------------------------------------------------------------------
def test_clm_padding_never_counts():
    model, _ = tiny("gpt")
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    padded = torch.tensor([[5, 6, 7, 8, 9, 0, 0], [5, 6, 7, 8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0]] * 2)
    with torch.no_grad():
        alone = model(ids).loss
        batch = model(padded, attention_mask=mask).loss
    torch.testing.assert_close(batch, alone)


def test_mlm_loss_on_labelled_positions_equals_full_logits_loss():
    model, _ = tiny("bert")
    ids = torch.randint(5, 256, (2, 10), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(ids, -100)
    labels[0, 3], labels[1, 7] = 11, 12
    with torch.no_grad():
        fast = model(ids, labels=labels, next_sentence_label=torch.tensor([0, 1]))
        full = model(ids, labels=labels, next_sentence_label=torch.tensor([0, 1]), full_logits=True)
    assert fast.logits.shape == (2, 256) and full.logits.shape == (2, 10, 256)
    torch.testing.assert_close(fast.logits, full.logits[labels != -100])
    torch.testing.assert_close(fast.loss, full.loss)
    assert set(fast.losses) == {"mlm", "nsp"} and fast.extra["nsp_logits"].shape == (2, 2)
    torch.testing.assert_close(fast.loss, fast.losses["mlm"] + fast.losses["nsp"])


def test_albert_reports_sop_and_mlm():
    model, _ = tiny("albert")
    ids = torch.randint(5, 256, (2, 8), generator=torch.Generator().manual_seed(0))
    out = model(ids, labels=ids, sentence_order_label=torch.tensor([1, 0]), token_type_ids=torch.zeros_like(ids))
    assert set(out.losses) == {"mlm", "sop"} and out.extra["sop_logits"].shape == (2, 2)


def test_loss_is_zero_not_nan_without_labelled_tokens():
    model, _ = tiny("roberta")
    ids = torch.randint(5, 256, (1, 6), generator=torch.Generator().manual_seed(0))
    out = model(ids, labels=torch.full_like(ids, -100))
    assert out.loss.item() == 0.0
    out.loss.backward()   # still part of the graph


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_trains_one_step(family):
    """One AdamW step on a fixed batch lowers that batch's loss (the gradient reaches the weights)."""
    model, cfg = tiny(family)
    model.train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 256, (2, 12), generator=g)
    batch = {"input_ids": ids}
    if family in ("bert", "roberta", "albert"):
        batch["labels"] = ids.masked_fill(torch.rand(ids.shape, generator=g) > 0.3, -100)
        batch.update({"bert": {"next_sentence_label": torch.tensor([0, 1])},
                      "albert": {"sentence_order_label": torch.tensor([0, 1])}}.get(family, {}))
    elif family == "t5":
        batch["labels"] = torch.randint(5, 256, (2, 5), generator=g)
    elif family == "glm":
        batch = glm_batch()
        batch["labels"] = torch.tensor([[-100] * 6 + [20, 21, 5, 22, 5]])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2 if family != "t5" else 1e-3)
    first = model(**batch).loss
    first.backward()
    opt.step()
    assert model(**batch).loss.item() < first.item()


# ---- KV cache -------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_cached_decoding_equals_full_forward(family):
    model, _ = tiny(family)
    ids = torch.randint(5, 256, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(ids).logits
        cache = model.new_cache(batch_size=2, max_length=9)
        steps = [model(ids[:, :5], cache=cache).logits]
        steps += [model(ids[:, t:t + 1], cache=cache).logits for t in range(5, 9)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    assert cache.length == 9


def test_cached_decoding_with_left_padding():
    """Left-padded row: pass attention_mask over past+new tokens and position_ids = cumsum(mask) - 1."""
    model, _ = tiny("llama")
    ids = torch.tensor([[7, 8, 9, 10, 11], [0, 0, 8, 9, 10]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    with torch.no_grad():
        alone = model(ids[1:, 2:]).logits[:, -1]
        cache = model.new_cache(2, 6)
        model(ids[:, :4], attention_mask=mask[:, :4], position_ids=pos[:, :4], cache=cache)
        last = model(ids[:, 4:], attention_mask=mask, position_ids=pos[:, 4:], cache=cache).logits[:, -1]
    torch.testing.assert_close(last[1:], alone, atol=1e-5, rtol=0)


def test_glm_incremental_part_b_equals_full_forward():
    model, _ = tiny("glm")
    b = glm_batch()
    with torch.no_grad():
        full = model(**b, full_logits=True).logits
        cache = model.new_cache(1, 11)
        first = model(b["input_ids"][:, :7], position_ids=b["position_ids"][:, :7],
                      block_position_ids=b["block_position_ids"][:, :7], sep=b["sep"], cache=cache,
                      full_logits=True).logits
        steps = [model(b["input_ids"][:, t:t + 1], position_ids=b["position_ids"][:, t:t + 1],
                       block_position_ids=b["block_position_ids"][:, t:t + 1], cache=cache).logits
                 for t in range(7, 11)]
    torch.testing.assert_close(torch.cat([first, *steps], dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt", "glm"])
def test_num_last_logits_keeps_only_the_last_positions(family):
    model, _ = tiny(family)
    b = glm_batch() if family == "glm" else dict(input_ids=glm_batch()["input_ids"])
    with torch.no_grad():
        full = model(**b, full_logits=True).logits                                    # (1, 11, V)
        last = model(**b, num_last_logits=2).logits
    assert last.shape == (1, 2, 256)
    torch.testing.assert_close(last, full[:, -2:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_t5_cached_decoding_equals_full_forward(version):
    kw = dict(activation="relu", tie_word_embeddings=True, scale_decoder_outputs=True) if version == "1.0" else {}
    model, _ = tiny("t5", **kw)
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randint(5, 256, (2, 10), generator=g), torch.randint(5, 256, (2, 6), generator=g)
    src_mask = torch.ones_like(src)
    src_mask[1, 7:] = 0
    with torch.no_grad():
        full = model(src, attention_mask=src_mask, decoder_input_ids=tgt).logits
        enc = model.encode(src, src_mask)
        cache = model.new_cache(2, 6)
        steps = [model(decoder_input_ids=tgt[:, t:t + 1], encoder_outputs=enc, attention_mask=src_mask,
                       cache=cache).logits for t in range(6)]
    # v1.1's untied head is N(0, 1) (HF init), so logits are ~10: compare relative to that size
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_decoding_layout_moves_only_wide_weights_and_changes_no_value(family, tmp_path):
    """tiny: qkv (192|128, 64), up (128|344, 64) and the LM head (256, 64) are wider than tall and
    become (in, out) in memory; o (64, 64) and down (64, 128|172) stay (out, in)."""
    model, cfg = tiny(family)
    ids = torch.randint(5, 256, (2, 7), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        expected = model(ids).logits
    decoding_layout(model)
    layer = model.layers[0]
    for wide in (layer.attn.qkv.weight, layer.mlp.up.weight, model.output_weight):
        assert wide.t().is_contiguous() and not wide.is_contiguous()
    for narrow in (layer.attn.o.weight, layer.mlp.down.weight):
        assert narrow.is_contiguous()
    assert (model.output_weight is model.word.weight) == (family == "gpt")    # ties survive
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in before.items())
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, expected, atol=1e-5, rtol=0)
    save_model(model, cfg, tmp_path)
    again, _ = load_model(tmp_path)
    assert all(torch.equal(t, before[k]) for k, t in again.state_dict().items())
    decoding_layout(model, enable=False)
    assert all(p.is_contiguous() for p in model.parameters())


def test_rope_table_equals_the_direct_computation():
    """The cached table gives rope_cos_sin's values, also past max_position_embeddings (128 in tiny)."""
    model, cfg = tiny("llama")
    positions = torch.tensor([[0, 5, 127], [3, 150, 199]])
    cos, sin = model.rope(positions, 200, "cpu", torch.float32)
    want_cos, want_sin = rope_cos_sin(positions, cfg.attn_head_dim, cfg.rope_theta, torch.float32)
    assert cos.shape == (2, 1, 3, cfg.attn_head_dim)
    torch.testing.assert_close(cos, want_cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin, want_sin, atol=1e-6, rtol=0)
    cos, sin = model.rope(slice(3, 5), 5, "cpu", torch.float32)                # every row at positions 3, 4
    want_cos, want_sin = rope_cos_sin(torch.tensor([[3, 4]]), cfg.attn_head_dim, cfg.rope_theta, torch.float32)
    torch.testing.assert_close(cos.expand_as(want_cos), want_cos, atol=1e-6, rtol=0)
    torch.testing.assert_close(sin.expand_as(want_sin), want_sin, atol=1e-6, rtol=0)


# ---- save / load ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["bert", "t5", "llama"])
def test_save_load_round_trip(family, tmp_path):
    model, cfg = tiny(family, tie_word_embeddings=True) if family == "llama" else tiny(family)
    save_model(model, cfg, tmp_path)
    again, cfg2 = load_model(tmp_path)
    assert cfg2 == cfg
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


def test_load_errors_name_the_problem(tmp_path):
    model, cfg = tiny("gpt")
    save_model(model, cfg, tmp_path)
    bigger = get_config("gpt", "tiny", hidden_size=128)
    (tmp_path / "config.json").write_text(json.dumps(bigger.to_dict()))
    with pytest.raises(PlmkitError, match="has shape"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(PlmkitError, match="model.safetensors is missing"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(PlmkitError, match="Hugging Face config"):
        load_model(tmp_path)
