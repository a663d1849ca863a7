"""Family presets and published shapes, as plain data.

`get_config("bert", "tiny", vocab_size=300)` = FAMILY["bert"] | SIZES["tiny"] | overrides.
Published shapes (`get_config("gpt2")`) are complete presets named after the released models;
each comment names the Hugging Face config it follows.
"""

from __future__ import annotations

from plmkit.errors import PlmkitError
from plmkit.models.config import FAMILIES, ModelConfig

# What makes each family itself (size-independent switches).
FAMILY = {
    "bert": dict(norm="layernorm", norm_placement="post", layer_norm_eps=1e-12, position="learned",
                 activation="gelu", head_activation="gelu", attention_mask="bidirectional",
                 type_vocab_size=2, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
    "roberta": dict(norm="layernorm", norm_placement="post", layer_norm_eps=1e-5, position="learned",
                    position_offset=2, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                    activation="gelu", head_activation="gelu", attention_mask="bidirectional",
                    type_vocab_size=1, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1),
    "albert": dict(norm="layernorm", norm_placement="post", layer_norm_eps=1e-12, position="learned",
                   activation="gelu_tanh", head_activation="gelu_tanh", attention_mask="bidirectional",
                   type_vocab_size=2, num_hidden_groups=1),
    # T5 v1.1 recipe (gated GELU, untied, no logit scaling); the published t5-small/base are v1.0.
    "t5": dict(norm="rmsnorm", norm_placement="pre", layer_norm_eps=1e-6, position="relative",
               activation="gated-gelu", attention_mask="bidirectional", attention_bias=False,
               mlp_bias=False, scale_attention=False, tie_word_embeddings=False,
               scale_decoder_outputs=False, pad_token_id=0, eos_token_id=1, initializer_range=1.0),
    "gpt": dict(norm="layernorm", norm_placement="pre", layer_norm_eps=1e-5, position="learned",
                activation="gelu_tanh", attention_mask="causal", tie_word_embeddings=True),
    "llama": dict(norm="rmsnorm", norm_placement="pre", layer_norm_eps=1e-5, position="rope",
                  rope_theta=10000.0, activation="swiglu", attention_mask="causal",
                  attention_bias=False, mlp_bias=False, tie_word_embeddings=False),
    # GLM-1 as in THUDM/GLM (Megatron pre-LN); exact GELU as in the hub modeling_glm.py.
    "glm": dict(norm="layernorm", norm_placement="pre", layer_norm_eps=1e-5, position="glm2d",
                activation="gelu", attention_mask="glm-prefix", tie_word_embeddings=True),
}

SIZES = {
    "tiny": dict(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, max_position_embeddings=128),
    "small": dict(vocab_size=8000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                  intermediate_size=1024, max_position_embeddings=512),
    "base": dict(vocab_size=32000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512),
}

# Per-family adjustments of a size (ALBERT's E, LLaMA's 8/3·H SwiGLU width and GQA, T5's d_ff).
SIZE_TWEAKS = {
    ("albert", "tiny"): dict(embedding_size=32),
    ("albert", "small"): dict(embedding_size=128),
    ("albert", "base"): dict(embedding_size=128),
    ("llama", "tiny"): dict(num_key_value_heads=2, intermediate_size=172),
    ("llama", "small"): dict(num_key_value_heads=2, intermediate_size=688),
    ("llama", "base"): dict(num_key_value_heads=4, intermediate_size=2048),
    ("t5", "tiny"): dict(intermediate_size=128),
    ("t5", "small"): dict(intermediate_size=682),
    ("t5", "base"): dict(intermediate_size=2048),
}

PUBLISHED = {
    # https://huggingface.co/google-bert/bert-base-uncased/blob/main/config.json
    "bert-base": ("bert", dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                               intermediate_size=3072, max_position_embeddings=512)),
    # https://huggingface.co/FacebookAI/roberta-base/blob/main/config.json
    "roberta-base": ("roberta", dict(vocab_size=50265, hidden_size=768, num_hidden_layers=12,
                                     num_attention_heads=12, intermediate_size=3072,
                                     max_position_embeddings=514)),
    # https://huggingface.co/albert/albert-base-v2/blob/main/config.json
    "albert-base": ("albert", dict(vocab_size=30000, embedding_size=128, hidden_size=768, num_hidden_layers=12,
                                   num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512,
                                   pad_token_id=0, bos_token_id=2, eos_token_id=3)),
    # https://huggingface.co/google-t5/t5-small/blob/main/config.json (v1.0: ReLU, tied, scaled logits)
    "t5-small": ("t5", dict(vocab_size=32128, hidden_size=512, head_dim=64, intermediate_size=2048,
                            num_hidden_layers=6, num_attention_heads=8, max_position_embeddings=512,
                            activation="relu", tie_word_embeddings=True, scale_decoder_outputs=True,
                            hidden_dropout_prob=0.1)),
    # https://huggingface.co/google-t5/t5-base/blob/main/config.json
    "t5-base": ("t5", dict(vocab_size=32128, hidden_size=768, head_dim=64, intermediate_size=3072,
                           num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=512,
                           activation="relu", tie_word_embeddings=True, scale_decoder_outputs=True,
                           hidden_dropout_prob=0.1)),
    # https://huggingface.co/openai-community/gpt2/blob/main/config.json (124M)
    "gpt2": ("gpt", dict(vocab_size=50257, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=1024, bos_token_id=50256,
                         eos_token_id=50256, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)),
    # https://huggingface.co/meta-llama/Llama-3.2-1B/blob/main/config.json (shape only: the llama3
    # rope_scaling frequency remap is not implemented, so positions beyond 8192 differ)
    "llama-1b": ("llama", dict(vocab_size=128256, hidden_size=2048, num_hidden_layers=16, num_attention_heads=32,
                               num_key_value_heads=8, intermediate_size=8192, max_position_embeddings=8192,
                               rope_theta=500000.0, tie_word_embeddings=True, bos_token_id=128000,
                               eos_token_id=128001)),
}


def get_config(family: str, size: str = "tiny", **overrides) -> ModelConfig:
    """A family preset in one size (or a published shape, e.g. `get_config("gpt2")`), with overrides.

    >>> get_config("llama", "tiny", vocab_size=300).num_key_value_heads
    2
    """
    if family in PUBLISHED:
        base_family, shape = PUBLISHED[family]
        fields = {**FAMILY[base_family], **shape, "family": base_family}
        preset = family
    elif family in FAMILY:
        if size not in SIZES:
            raise PlmkitError(f"unknown model size {size!r}", hint=f"use one of {', '.join(SIZES)}")
        fields = {**FAMILY[family], **SIZES[size], **SIZE_TWEAKS.get((family, size), {}), "family": family}
        preset = f"{family}:{size}"
    else:
        raise PlmkitError(f"unknown model family {family!r}",
                          hint=f"use one of {', '.join(FAMILIES)} or a published shape: {', '.join(PUBLISHED)}")
    fields.update(overrides)
    fields.setdefault("extra", {})
    fields["extra"] = {"preset": preset, **fields["extra"]}
    return ModelConfig.from_dict(fields)
