"""Hugging Face interop: `export_hf(model, cfg, out_dir)` and `import_hf(hf_dir) -> (model, cfg)`.

Families and classes: bert → BertForPreTraining, roberta → RobertaForMaskedLM, albert →
AlbertForPreTraining, t5 → T5ForConditionalGeneration (v1.0 tied + scaled, v1.1 untied),
gpt → GPT2LMHeadModel (a sinusoidal table is written as `wpe`), llama → LlamaForCausalLM.
GLM has no built-in transformers class (`model_type "glm"` there is GLM-4, a different model),
so it keeps plmkit's own format.

Each family has one key table used in both directions: a rule says which HF tensor is which
rows of which plmkit tensor, and whether it is transposed (GPT-2's Conv1D stores [in, out]).
plmkit fuses q/k/v (and gate/up) into one Linear, so export splits rows and import concatenates
them back. Tied tensors are written once (the embedding, plus the MLM head's own bias);
`config.json` carries v4-style keys that v5 also reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from plmkit.errors import PlmkitError
from plmkit.models.config import ModelConfig


@dataclass(frozen=True)
class Rule:
    hf: str              # key in the HF state dict
    ours: str            # key in the plmkit state dict
    rows: tuple | None = None   # (start, stop) rows of ours, or None for the whole tensor
    transpose: bool = False


ACT_TO_HF = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
ACT_FROM_HF = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
               "gelu_fast": "gelu_tanh"}


def _parts(ours: str, hf_names: list[str], sizes: list[int], transpose: bool = False) -> list[Rule]:
    """Rules splitting rows of `ours` into consecutive HF tensors of the given sizes."""
    rules, start = [], 0
    for name, n in zip(hf_names, sizes, strict=True):
        rules.append(Rule(name, ours, (start, start + n), transpose))
        start += n
    return rules


def _linear(hf: str, ours: str, bias: bool = True) -> list[Rule]:
    rules = [Rule(f"{hf}.weight", f"{ours}.weight")]
    return rules + ([Rule(f"{hf}.bias", f"{ours}.bias")] if bias else [])


def _qkv(cfg: ModelConfig, ours: str, hf_names: list[str], bias: bool) -> list[Rule]:
    A, K, D = cfg.num_attention_heads, cfg.kv_heads, cfg.attn_head_dim
    sizes = [A * D, K * D, K * D]
    rules = _parts(f"{ours}.weight", [f"{n}.weight" for n in hf_names], sizes)
    return rules + (_parts(f"{ours}.bias", [f"{n}.bias" for n in hf_names], sizes) if bias else [])


# ---- key tables -----------------------------------------------------------------------------
def _bert_like_rules(cfg: ModelConfig, prefix: str) -> list[Rule]:
    """Embeddings and post-LN layers shared by BERT and RoBERTa."""
    r = [Rule(f"{prefix}.embeddings.word_embeddings.weight", "word.weight"),
         Rule(f"{prefix}.embeddings.position_embeddings.weight", "position.weight"),
         Rule(f"{prefix}.embeddings.token_type_embeddings.weight", "token_type.weight"),
         *_linear(f"{prefix}.embeddings.LayerNorm", "embed_norm")]
    for i in range(cfg.num_hidden_layers):
        h, o = f"{prefix}.encoder.layer.{i}", f"layers.{i}"
        r += _qkv(cfg, f"{o}.attn.qkv", [f"{h}.attention.self.{n}" for n in ("query", "key", "value")], True)
        r += _linear(f"{h}.attention.output.dense", f"{o}.attn.o")
        r += _linear(f"{h}.attention.output.LayerNorm", f"{o}.attn_norm")
        r += _linear(f"{h}.intermediate.dense", f"{o}.mlp.up")
        r += _linear(f"{h}.output.dense", f"{o}.mlp.down")
        r += _linear(f"{h}.output.LayerNorm", f"{o}.mlp_norm")
    return r


def bert_rules(cfg: ModelConfig) -> list[Rule]:
    return [*_bert_like_rules(cfg, "bert"),
            *_linear("bert.pooler.dense", "pair_head.pooler"),
            *_linear("cls.seq_relationship", "pair_head.classifier"),
            *_linear("cls.predictions.transform.dense", "mlm_head.dense"),
            *_linear("cls.predictions.transform.LayerNorm", "mlm_head.norm"),
            Rule("cls.predictions.bias", "mlm_head.bias")]


def roberta_rules(cfg: ModelConfig) -> list[Rule]:
    return [*_bert_like_rules(cfg, "roberta"),
            *_linear("lm_head.dense", "mlm_head.dense"),
            *_linear("lm_head.layer_norm", "mlm_head.norm"),
            Rule("lm_head.bias", "mlm_head.bias")]


def albert_rules(cfg: ModelConfig) -> list[Rule]:
    r = [Rule("albert.embeddings.word_embeddings.weight", "word.weight"),
         Rule("albert.embeddings.position_embeddings.weight", "position.weight"),
         Rule("albert.embeddings.token_type_embeddings.weight", "token_type.weight"),
         *_linear("albert.embeddings.LayerNorm", "embed_norm"),
         *_linear("albert.encoder.embedding_hidden_mapping_in", "embed_proj")]
    for g in range(cfg.groups):
        h, o = f"albert.encoder.albert_layer_groups.{g}.albert_layers.0", f"layers.{g}"
        r += _qkv(cfg, f"{o}.attn.qkv", [f"{h}.attention.{n}" for n in ("query", "key", "value")], True)
        r += _linear(f"{h}.attention.dense", f"{o}.attn.o")
        r += _linear(f"{h}.attention.LayerNorm", f"{o}.attn_norm")
        r += _linear(f"{h}.ffn", f"{o}.mlp.up")
        r += _linear(f"{h}.ffn_output", f"{o}.mlp.down")
        r += _linear(f"{h}.full_layer_layer_norm", f"{o}.mlp_norm")
    return r + [*_linear("albert.pooler", "pair_head.pooler"),
                *_linear("sop_classifier.classifier", "pair_head.classifier"),
                *_linear("predictions.dense", "mlm_head.dense"),
                *_linear("predictions.LayerNorm", "mlm_head.norm"),
                Rule("predictions.bias", "mlm_head.bias")]


def _mlp_rules(cfg: ModelConfig, ours: str, hf_up: list[str], hf_down: str) -> list[Rule]:
    """Plain MLP: one `up`; gated: `up` rows [gate; up] -> two HF tensors."""
    F_ = cfg.intermediate_size
    up = _parts(f"{ours}.up.weight", hf_up, [F_, F_]) if cfg.gated else [Rule(hf_up[0], f"{ours}.up.weight")]
    return up + [Rule(hf_down, f"{ours}.down.weight")]


def t5_rules(cfg: ModelConfig) -> list[Rule]:
    A, D = cfg.num_attention_heads, cfg.attn_head_dim
    r = [Rule("shared.weight", "shared.weight"),
         Rule("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder_bias.weight"),
         Rule("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "decoder_bias.weight"),
         Rule("encoder.final_layer_norm.weight", "encoder_norm.weight"),
         Rule("decoder.final_layer_norm.weight", "decoder_norm.weight")]
    wi = lambda h: [f"{h}.DenseReluDense.wi_0.weight", f"{h}.DenseReluDense.wi_1.weight"] if cfg.gated \
        else [f"{h}.DenseReluDense.wi.weight"]  # noqa: E731
    for stack, ours, n in (("encoder", "encoder_layers", cfg.num_hidden_layers),
                           ("decoder", "decoder_layers", cfg.decoder_layers)):
        for i in range(n):
            h, o = f"{stack}.block.{i}.layer", f"{ours}.{i}"
            r += _qkv(cfg, f"{o}.attn.qkv", [f"{h}.0.SelfAttention.{n}" for n in "qkv"], False)
            r += [Rule(f"{h}.0.SelfAttention.o.weight", f"{o}.attn.o.weight"),
                  Rule(f"{h}.0.layer_norm.weight", f"{o}.attn_norm.weight")]
            ff = f"{h}.1" if stack == "encoder" else f"{h}.2"
            if stack == "decoder":
                r += [Rule(f"{h}.1.EncDecAttention.q.weight", f"{o}.cross_attn.q.weight"),
                      *_parts(f"{o}.cross_attn.kv.weight", [f"{h}.1.EncDecAttention.{n}.weight" for n in "kv"],
                              [A * D, A * D]),
                      Rule(f"{h}.1.EncDecAttention.o.weight", f"{o}.cross_attn.o.weight"),
                      Rule(f"{h}.1.layer_norm.weight", f"{o}.cross_norm.weight")]
            r += _mlp_rules(cfg, f"{o}.mlp", wi(ff), f"{ff}.DenseReluDense.wo.weight")
            r += [Rule(f"{ff}.layer_norm.weight", f"{o}.mlp_norm.weight")]
    return r + ([] if cfg.tie_word_embeddings else [Rule("lm_head.weight", "lm_head.weight")])


def gpt_rules(cfg: ModelConfig) -> list[Rule]:
    r = [Rule("transformer.wte.weight", "word.weight"),
         Rule("transformer.wpe.weight", "position.weight"),
         *_linear("transformer.ln_f", "final_norm")]
    for i in range(cfg.num_hidden_layers):
        h, o = f"transformer.h.{i}", f"layers.{i}"
        for hf, ours in (("attn.c_attn", "attn.qkv"), ("attn.c_proj", "attn.o"), ("mlp.c_fc", "mlp.up"),
                         ("mlp.c_proj", "mlp.down")):
            r += [Rule(f"{h}.{hf}.weight", f"{o}.{ours}.weight", transpose=True),
                  Rule(f"{h}.{hf}.bias", f"{o}.{ours}.bias")]
        r += _linear(f"{h}.ln_1", f"{o}.attn_norm") + _linear(f"{h}.ln_2", f"{o}.mlp_norm")
    return r + ([] if cfg.tie_word_embeddings else [Rule("lm_head.weight", "lm_head.weight")])


def llama_rules(cfg: ModelConfig) -> list[Rule]:
    r = [Rule("model.embed_tokens.weight", "word.weight"), Rule("model.norm.weight", "final_norm.weight")]
    for i in range(cfg.num_hidden_layers):
        h, o = f"model.layers.{i}", f"layers.{i}"
        r += _qkv(cfg, f"{o}.attn.qkv", [f"{h}.self_attn.{n}_proj" for n in "qkv"], cfg.attention_bias)
        r += _linear(f"{h}.self_attn.o_proj", f"{o}.attn.o", cfg.attention_bias)
        r += _mlp_rules(cfg, f"{o}.mlp", [f"{h}.mlp.gate_proj.weight", f"{h}.mlp.up_proj.weight"],
                        f"{h}.mlp.down_proj.weight")
        if cfg.mlp_bias:
            F_ = cfg.intermediate_size
            r += _parts(f"{o}.mlp.up.bias", [f"{h}.mlp.gate_proj.bias", f"{h}.mlp.up_proj.bias"], [F_, F_])
            r += [Rule(f"{h}.mlp.down_proj.bias", f"{o}.mlp.down.bias")]
        r += [Rule(f"{h}.input_layernorm.weight", f"{o}.attn_norm.weight"),
              Rule(f"{h}.post_attention_layernorm.weight", f"{o}.mlp_norm.weight")]
    return r + ([] if cfg.tie_word_embeddings else [Rule("lm_head.weight", "lm_head.weight")])


RULES = {"bert": bert_rules, "roberta": roberta_rules, "albert": albert_rules, "t5": t5_rules,
         "gpt": gpt_rules, "llama": llama_rules}
ARCHITECTURE = {"bert": "BertForPreTraining", "roberta": "RobertaForMaskedLM", "albert": "AlbertForPreTraining",
                "t5": "T5ForConditionalGeneration", "gpt": "GPT2LMHeadModel", "llama": "LlamaForCausalLM"}
MODEL_TYPE = {"bert": "bert", "roberta": "roberta", "albert": "albert", "t5": "t5", "gpt": "gpt2", "llama": "llama"}


# ---- configs --------------------------------------------------------------------------------
def _require(cfg: ModelConfig, what: str, **expected) -> None:
    for name, value in expected.items():
        if getattr(cfg, name) != value:
            raise PlmkitError(f"cannot export to {what}: this model has {name}={getattr(cfg, name)!r}, "
                              f"{what} needs {value!r}")


def _act(cfg: ModelConfig, what: str) -> str:
    if cfg.activation not in ACT_TO_HF:
        raise PlmkitError(f"cannot export to {what}: activation={cfg.activation!r} has no equivalent there")
    return ACT_TO_HF[cfg.activation]


def _require_mha(cfg: ModelConfig, what: str) -> None:
    if cfg.kv_heads != cfg.num_attention_heads or cfg.attn_head_dim * cfg.num_attention_heads != cfg.hidden_size:
        raise PlmkitError(f"cannot export to {what}: it has neither grouped K/V heads nor a head_dim other than "
                          "hidden_size / num_attention_heads")


def _common(cfg: ModelConfig) -> dict:
    return {"model_type": MODEL_TYPE[cfg.family], "architectures": [ARCHITECTURE[cfg.family]],
            "vocab_size": cfg.vocab_size, "pad_token_id": cfg.pad_token_id, "bos_token_id": cfg.bos_token_id,
            "eos_token_id": cfg.eos_token_id, "tie_word_embeddings": cfg.tie_word_embeddings,
            "initializer_range": cfg.initializer_range}


def _encoder_config(cfg: ModelConfig, what: str) -> dict:
    _require(cfg, what, norm="layernorm", norm_placement="post", position="learned", attention_bias=True,
             mlp_bias=True, scale_attention=True,
             head_activation="gelu" if cfg.family == "roberta" else cfg.activation,
             position_offset=cfg.pad_token_id + 1 if cfg.family == "roberta" else 0)
    _require_mha(cfg, what)
    return {**_common(cfg), "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
            "num_attention_heads": cfg.num_attention_heads, "intermediate_size": cfg.intermediate_size,
            "hidden_act": _act(cfg, what), "max_position_embeddings": cfg.max_position_embeddings,
            "type_vocab_size": max(cfg.type_vocab_size, 1), "layer_norm_eps": cfg.layer_norm_eps,
            "hidden_dropout_prob": cfg.hidden_dropout_prob,
            "attention_probs_dropout_prob": cfg.attention_probs_dropout_prob}


def hf_config(cfg: ModelConfig) -> dict:
    """The HF `config.json` of a plmkit config (PlmkitError when the architecture cannot be expressed)."""
    what = ARCHITECTURE.get(cfg.family)
    if what is None:
        raise PlmkitError(
            "cannot export a glm model to the Hugging Face format: transformers has no built-in GLM-1 class "
            "(its model_type 'glm' is GLM-4, a different architecture)",
            hint="keep plmkit's own format (config.json + model.safetensors in the run directory)")
    if cfg.family in ("bert", "roberta", "albert"):
        out = _encoder_config(cfg, what)
        if cfg.family == "albert":
            if not cfg.embedding_size:
                _require(cfg, what, embedding_size=cfg.hidden_size)
            out.update(embedding_size=cfg.embedding_size, num_hidden_groups=cfg.groups, inner_group_num=1,
                       classifier_dropout_prob=cfg.hidden_dropout_prob)
        return out
    if cfg.family == "t5":
        _require(cfg, what, norm="rmsnorm", norm_placement="pre", attention_bias=False, mlp_bias=False,
                 scale_attention=False, scale_decoder_outputs=cfg.tie_word_embeddings)
        if cfg.kv_heads != cfg.num_attention_heads:
            raise PlmkitError(f"cannot export to {what}: it has no grouped K/V heads")
        proj = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_new", "gated-gelu": "gated-gelu",
                "swiglu": "gated-silu"}[cfg.activation]
        return {**_common(cfg), "d_model": cfg.hidden_size, "d_kv": cfg.attn_head_dim, "d_ff": cfg.intermediate_size,
                "num_layers": cfg.num_hidden_layers, "num_decoder_layers": cfg.decoder_layers,
                "num_heads": cfg.num_attention_heads,
                "relative_attention_num_buckets": cfg.relative_attention_num_buckets,
                "relative_attention_max_distance": cfg.relative_attention_max_distance,
                "dropout_rate": cfg.hidden_dropout_prob, "layer_norm_epsilon": cfg.layer_norm_eps,
                "initializer_factor": cfg.initializer_range, "feed_forward_proj": proj, "is_encoder_decoder": True,
                "decoder_start_token_id": cfg.decoder_start_token_id if cfg.decoder_start_token_id is not None
                else cfg.pad_token_id, "scale_decoder_outputs": cfg.scale_decoder_outputs}
    if cfg.family == "gpt":
        _require(cfg, what, norm="layernorm", norm_placement="pre", attention_bias=True, mlp_bias=True,
                 scale_attention=True)
        _require_mha(cfg, what)
        return {**_common(cfg), "n_embd": cfg.hidden_size, "n_layer": cfg.num_hidden_layers,
                "n_head": cfg.num_attention_heads, "n_inner": cfg.intermediate_size,
                "n_positions": cfg.max_position_embeddings, "activation_function": _act(cfg, what),
                "layer_norm_epsilon": cfg.layer_norm_eps, "resid_pdrop": cfg.hidden_dropout_prob,
                "embd_pdrop": cfg.hidden_dropout_prob, "attn_pdrop": cfg.attention_probs_dropout_prob,
                "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
                "reorder_and_upcast_attn": False}
    _require(cfg, what, norm="rmsnorm", norm_placement="pre", position="rope", activation="swiglu",
             scale_attention=True)
    return {**_common(cfg), "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
            "num_key_value_heads": cfg.kv_heads, "head_dim": cfg.attn_head_dim, "hidden_act": "silu",
            "max_position_embeddings": cfg.max_position_embeddings, "rms_norm_eps": cfg.layer_norm_eps,
            "rope_theta": cfg.rope_theta, "rope_scaling": None,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "attention_bias": cfg.attention_bias, "mlp_bias": cfg.mlp_bias, "pretraining_tp": 1,
            "attention_dropout": cfg.attention_probs_dropout_prob}


def _get(d: dict, *names, default=None):
    for n in names:
        if d.get(n) is not None:
            return d[n]
    return default


def _hf_act(name: str, where: str) -> str:
    if name not in ACT_FROM_HF:
        raise PlmkitError(f"{where}: activation {name!r} is not supported by plmkit",
                          hint=f"supported: {', '.join(ACT_FROM_HF)}")
    return ACT_FROM_HF[name]


def config_from_hf(hf: dict, tied: bool, where: str) -> ModelConfig:
    """A plmkit config from an HF `config.json` dict; `tied` says whether the file has no separate lm_head."""
    from plmkit.models.presets import FAMILY

    kind = hf.get("model_type")
    if kind == "glm" or kind == "chatglm":
        raise PlmkitError(f"{where}: model_type {kind!r} is not importable (GLM-1/ChatGLM use remote code, and "
                          "transformers' built-in 'glm' is GLM-4)", hint="plmkit's GLM uses its own format")
    family = {v: k for k, v in MODEL_TYPE.items()}.get(kind)
    if family is None:
        raise PlmkitError(f"{where}: model_type {kind!r} is not one plmkit imports",
                          hint=f"supported: {', '.join(MODEL_TYPE.values())}")
    c = dict(FAMILY[family], family=family, vocab_size=hf["vocab_size"], initializer_range=_get(
        hf, "initializer_range", "initializer_factor", default=FAMILY[family].get("initializer_range", 0.02)),
        pad_token_id=_get(hf, "pad_token_id", default=0), bos_token_id=hf.get("bos_token_id"),
        eos_token_id=hf.get("eos_token_id"), tie_word_embeddings=tied, extra={"imported_from": kind})
    if isinstance(c["eos_token_id"], list):
        c["eos_token_id"] = c["eos_token_id"][0]
    if family in ("bert", "roberta", "albert"):
        act = _hf_act(hf.get("hidden_act", "gelu"), where)
        c.update(hidden_size=hf["hidden_size"], num_hidden_layers=hf["num_hidden_layers"],
                 num_attention_heads=hf["num_attention_heads"], intermediate_size=hf["intermediate_size"],
                 activation=act, head_activation="gelu" if family == "roberta" else act,
                 max_position_embeddings=hf["max_position_embeddings"], type_vocab_size=hf.get("type_vocab_size", 2),
                 layer_norm_eps=hf.get("layer_norm_eps", 1e-12), hidden_dropout_prob=hf.get("hidden_dropout_prob", 0.0),
                 attention_probs_dropout_prob=hf.get("attention_probs_dropout_prob", 0.0), tie_word_embeddings=True)
        if family == "roberta":
            c["position_offset"] = c["pad_token_id"] + 1
        if family == "albert":
            if hf.get("inner_group_num", 1) != 1:
                raise PlmkitError(f"{where}: ALBERT inner_group_num={hf['inner_group_num']} is not supported (only 1)")
            c.update(embedding_size=hf["embedding_size"], num_hidden_groups=hf.get("num_hidden_groups", 1))
    elif family == "t5":
        proj = hf.get("feed_forward_proj", "relu")
        act = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh", "gated-gelu": "gated-gelu",
               "gated-silu": "swiglu"}.get(proj)
        if act is None:
            raise PlmkitError(f"{where}: T5 feed_forward_proj {proj!r} is not supported")
        scaled = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True) is not False)
        c.update(hidden_size=hf["d_model"], head_dim=hf["d_kv"], intermediate_size=hf["d_ff"],
                 num_hidden_layers=hf["num_layers"], num_decoder_layers=_get(hf, "num_decoder_layers", "num_layers"),
                 num_attention_heads=hf["num_heads"],
                 relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
                 relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
                 hidden_dropout_prob=hf.get("dropout_rate", 0.0), layer_norm_eps=hf.get("layer_norm_epsilon", 1e-6),
                 activation=act, scale_decoder_outputs=bool(scaled) and tied,
                 decoder_start_token_id=hf.get("decoder_start_token_id"),
                 initializer_range=hf.get("initializer_factor", 1.0))
        if tied and not scaled:
            raise PlmkitError(f"{where}: a T5 with a tied but unscaled output layer is not supported")
    elif family == "gpt":
        if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights") is False:
            raise PlmkitError(f"{where}: GPT-2 attention-scaling variants are not supported")
        n_embd = _get(hf, "n_embd", "hidden_size")
        c.update(hidden_size=n_embd, num_hidden_layers=_get(hf, "n_layer", "num_hidden_layers"),
                 num_attention_heads=_get(hf, "n_head", "num_attention_heads"),
                 intermediate_size=hf.get("n_inner") or 4 * n_embd,
                 max_position_embeddings=_get(hf, "n_positions", "max_position_embeddings"),
                 activation=_hf_act(hf.get("activation_function", "gelu_new"), where),
                 layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5), hidden_dropout_prob=hf.get("resid_pdrop", 0.0),
                 attention_probs_dropout_prob=hf.get("attn_pdrop", 0.0))
    else:
        rope = hf.get("rope_parameters") or {}
        scaling = hf.get("rope_scaling") or {}
        if rope.get("rope_type", "default") != "default" or scaling.get("rope_type", scaling.get("type", "default")) \
                not in ("default", None):
            raise PlmkitError(f"{where}: LLaMA rope scaling ({rope or scaling}) is not supported by plmkit")
        if hf.get("hidden_act", "silu") != "silu":
            raise PlmkitError(f"{where}: LLaMA hidden_act {hf.get('hidden_act')!r} is not supported (only silu)")
        c.update(hidden_size=hf["hidden_size"], intermediate_size=hf["intermediate_size"],
                 num_hidden_layers=hf["num_hidden_layers"], num_attention_heads=hf["num_attention_heads"],
                 num_key_value_heads=_get(hf, "num_key_value_heads", "num_attention_heads"),
                 head_dim=hf.get("head_dim") or 0, max_position_embeddings=hf.get("max_position_embeddings", 2048),
                 layer_norm_eps=hf.get("rms_norm_eps", 1e-6),
                 rope_theta=float(_get(rope, "rope_theta") or _get(hf, "rope_theta", default=10000.0)),
                 attention_bias=bool(hf.get("attention_bias", False)), mlp_bias=bool(hf.get("mlp_bias", False)),
                 attention_probs_dropout_prob=hf.get("attention_dropout", 0.0))
    return ModelConfig.from_dict(c)


# ---- weights --------------------------------------------------------------------------------
def to_hf_state(model: nn.Module, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """plmkit state dict -> HF state dict (each tensor once, contiguous, no shared storage)."""
    ours = {k: v.detach() for k, v in model.state_dict().items()}
    if cfg.family == "gpt" and cfg.position == "sinusoidal":
        ours["position.weight"] = model.position_table.detach()
    if cfg.family in ("bert", "roberta") and "token_type.weight" not in ours:
        ours["token_type.weight"] = torch.zeros(1, cfg.embed_dim)   # no token types == one all-zero row
    out = {}
    for rule in RULES[cfg.family](cfg):
        t = ours[rule.ours]
        if rule.rows is not None:
            t = t[rule.rows[0]:rule.rows[1]]
        out[rule.hf] = (t.T if rule.transpose else t).contiguous().clone()
    return out


def from_hf_state(hf_state: dict[str, torch.Tensor], cfg: ModelConfig, where: str) -> dict[str, torch.Tensor]:
    """HF state dict -> plmkit state dict; keys may lack the base-model prefix (`wte.weight`)."""
    prefix = {"bert": "bert.", "roberta": "roberta.", "albert": "albert.", "gpt": "transformer.",
              "llama": "model.", "t5": ""}[cfg.family]
    pieces: dict[str, list] = {}
    for rule in RULES[cfg.family](cfg):
        key = rule.hf
        if key not in hf_state and prefix and key.startswith(prefix) and key[len(prefix):] in hf_state:
            key = key[len(prefix):]
        if key not in hf_state:
            raise PlmkitError(f"{where}: tensor {rule.hf} is missing", hint="is this a complete checkpoint?")
        t = hf_state[key]
        pieces.setdefault(rule.ours, []).append((rule.rows[0] if rule.rows else 0, t.T if rule.transpose else t))
    return {k: torch.cat([t for _, t in sorted(v, key=lambda p: p[0])]) for k, v in pieces.items()}


def _read_hf_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    single, index = hf_dir / "model.safetensors", hf_dir / "model.safetensors.index.json"
    if single.is_file():
        return load_file(str(single))
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state = {}
        for f in files:
            state.update(load_file(str(hf_dir / f)))
        return state
    if any((hf_dir / n).exists() for n in ("pytorch_model.bin", "model.bin")):
        raise PlmkitError(f"{hf_dir} holds only pickled weights (pytorch_model.bin), which plmkit never loads",
                          hint="convert it to model.safetensors first (transformers: save_pretrained)")
    raise PlmkitError(f"{hf_dir} has no model.safetensors", hint="point at a Hugging Face model directory")


# ---- public API -----------------------------------------------------------------------------
def export_hf(model: nn.Module, cfg: ModelConfig, out_dir: str | Path) -> Path:
    """Write `config.json` + `model.safetensors` ({"format": "pt"}) that `AutoModelFor….from_pretrained` loads."""
    from safetensors.torch import save_file

    hf = hf_config(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = to_hf_state(model, cfg)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf, indent=2, sort_keys=True) + "\n")
    return out


def import_hf(hf_dir: str | Path, flag: str = "--init-from") -> tuple[nn.Module, ModelConfig]:
    """(plmkit model in eval mode, its config) from a Hugging Face directory of a supported family."""
    from plmkit.models import build_model, load_state

    hf_dir = Path(hf_dir)
    where = f"{flag} {hf_dir}"
    cfg_path = hf_dir / "config.json"
    if not cfg_path.is_file():
        raise PlmkitError(f"{where}: config.json is missing", hint="point at a Hugging Face model directory")
    hf = json.loads(cfg_path.read_text())
    state = _read_hf_weights(hf_dir)
    tied = _is_tied(hf, state)
    cfg = config_from_hf(hf, tied, where)
    model = build_model(cfg)
    load_state(model, from_hf_state(state, cfg, where), where)
    return model.eval(), cfg


def _is_tied(hf: dict, state: dict) -> bool:
    """Tied unless the file carries its own lm_head that differs from the embedding."""
    if hf.get("model_type") in ("bert", "roberta", "albert"):
        return True
    head = state.get("lm_head.weight")
    if head is None:
        return True
    emb = next((state[k] for k in ("shared.weight", "transformer.wte.weight", "wte.weight",
                                   "model.embed_tokens.weight", "embed_tokens.weight") if k in state), None)
    return emb is not None and emb.shape == head.shape and bool(torch.equal(emb, head)) \
        and hf.get("tie_word_embeddings", True) is not False
