"""One `ModelConfig` for all seven families: sizes with Hugging Face names, plus named switches.

A family is a preset (`presets.py`), never a subclass: BERT and GPT differ only in the values of
the switches below, and the three skeletons (encoder, decoder, encoder-decoder) read them.

Switches (string values, so a config round-trips through JSON):

| field | values | who |
|---|---|---|
| `norm` | `layernorm`, `rmsnorm` | RMSNorm: T5, LLaMA |
| `norm_placement` | `post` (BERT), `pre` (GPT, LLaMA, T5, GLM) | |
| `position` | `learned`, `sinusoidal`, `rope`, `relative` (T5 buckets), `glm2d` (two tables) | |
| `activation` | `gelu` (erf), `gelu_tanh`, `relu`, `swiglu`, `gated-gelu` (tanh GELU gate) | |
| `attention_mask` | `bidirectional`, `causal`, `glm-prefix` (Part A both ways, Part B causal) | |

ALBERT's factorised embeddings are `embedding_size` (E < H) and its cross-layer sharing is
`num_hidden_groups` (1 = one layer set applied `num_hidden_layers` times; 0 = no sharing).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from plmkit.errors import PlmkitError

FAMILIES = ("bert", "roberta", "albert", "t5", "gpt", "llama", "glm")

# Which shard objective(s) each family trains on (the data stage's `params.objective`).
FAMILY_OBJECTIVES = {
    "bert": ("mlm", "nsp"),
    "roberta": ("mlm",),
    "albert": ("sop", "mlm"),
    "t5": ("t5-span",),
    "gpt": ("clm",),
    "llama": ("clm",),
    "glm": ("glm",),
}

# Which skeleton runs each family.
FAMILY_SKELETON = {
    "bert": "encoder", "roberta": "encoder", "albert": "encoder",
    "t5": "encoder-decoder",
    "gpt": "decoder", "llama": "decoder", "glm": "decoder",
}

CHOICES = {
    "family": FAMILIES,
    "norm": ("layernorm", "rmsnorm"),
    "norm_placement": ("pre", "post"),
    "position": ("learned", "sinusoidal", "rope", "relative", "glm2d"),
    "activation": ("gelu", "gelu_tanh", "relu", "swiglu", "gated-gelu"),
    "head_activation": ("gelu", "gelu_tanh", "relu"),
    "attention_mask": ("bidirectional", "causal", "glm-prefix"),
}


@dataclass
class ModelConfig:
    family: str = "gpt"
    # sizes (Hugging Face names)
    vocab_size: int = 256
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 0        # 0 = same as num_attention_heads (no grouping)
    head_dim: int = 0                   # 0 = hidden_size // num_attention_heads (T5: d_kv)
    intermediate_size: int = 256
    max_position_embeddings: int = 128  # GLM: max sequence length + 1 rows per table
    type_vocab_size: int = 0            # 0 = no token-type table
    embedding_size: int = 0             # 0 = hidden_size; ALBERT factorises V×E + E×H
    num_hidden_groups: int = 0          # 0 = every layer its own weights; ALBERT: 1
    num_decoder_layers: int = 0         # T5 decoder depth; 0 = num_hidden_layers
    # switches
    norm: str = "layernorm"
    norm_placement: str = "pre"
    layer_norm_eps: float = 1e-5
    position: str = "learned"
    position_offset: int = 0            # RoBERTa: pad_token_id + 1, pads get pad_token_id
    rope_theta: float = 10000.0
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    activation: str = "gelu"
    head_activation: str = "gelu"       # the MLM head transform (RoBERTa: always exact GELU)
    attention_mask: str = "causal"
    attention_bias: bool = True         # biases on q/k/v/o projections
    mlp_bias: bool = True
    scale_attention: bool = True        # T5: no 1/sqrt(d) on scores (folded into init)
    tie_word_embeddings: bool = True
    scale_decoder_outputs: bool = False  # T5 v1.0: logits of the tied head × d_model**-0.5
    # regularisation and init
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    # special ids the model itself needs (RoBERTa positions, T5 shift-right)
    pad_token_id: int = 0
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    decoder_start_token_id: int | None = None  # T5: None = pad_token_id
    extra: dict = field(default_factory=dict)  # free-form notes (e.g. the preset name)

    def __post_init__(self):
        self.validate()

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def attn_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def embed_dim(self) -> int:
        return self.embedding_size or self.hidden_size

    @property
    def decoder_layers(self) -> int:
        return self.num_decoder_layers or self.num_hidden_layers

    @property
    def groups(self) -> int:
        return self.num_hidden_groups or self.num_hidden_layers

    @property
    def skeleton(self) -> str:
        return FAMILY_SKELETON[self.family]

    @property
    def objectives(self) -> tuple[str, ...]:
        return FAMILY_OBJECTIVES[self.family]

    @property
    def gated(self) -> bool:
        return self.activation in ("swiglu", "gated-gelu")

    # ---- validation and JSON -------------------------------------------------------------
    def validate(self) -> None:
        """Raise PlmkitError naming the first field that cannot work."""
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise PlmkitError(f"model config field {name}={value!r} is not one of {', '.join(allowed)}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise PlmkitError(f"model config field {name} must be a positive integer, got {getattr(self, name)!r}")
        if not self.head_dim and self.hidden_size % self.num_attention_heads:
            raise PlmkitError(
                f"model config field hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}", hint="set head_dim explicitly or change either")
        if self.num_attention_heads % self.kv_heads:
            raise PlmkitError(
                f"model config field num_key_value_heads={self.num_key_value_heads} must divide "
                f"num_attention_heads={self.num_attention_heads}")
        if self.position == "rope" and self.attn_head_dim % 2:
            raise PlmkitError(f"model config field head_dim={self.attn_head_dim} must be even for position='rope'")
        if self.num_hidden_layers % self.groups:
            raise PlmkitError(
                f"model config field num_hidden_groups={self.num_hidden_groups} must divide "
                f"num_hidden_layers={self.num_hidden_layers}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise PlmkitError(f"model config field {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise PlmkitError(f"model config field pad_token_id={self.pad_token_id} is outside the "
                              f"vocabulary (vocab_size={self.vocab_size})")
        if self.skeleton == "encoder-decoder" and self.position != "relative":
            raise PlmkitError("model config field position must be 'relative' for the t5 family")
        if self.family == "glm" and (self.position != "glm2d" or self.attention_mask != "glm-prefix"):
            raise PlmkitError("the glm family needs position='glm2d' and attention_mask='glm-prefix'")
        if self.family in ("gpt", "llama") and self.attention_mask != "causal":
            raise PlmkitError(f"the {self.family} family needs attention_mask='causal'")
        if self.skeleton == "encoder" and self.attention_mask != "bidirectional":
            raise PlmkitError(f"the {self.family} family needs attention_mask='bidirectional'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys are an error naming them (a typo must not pass)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlmkitError(f"unknown model config field(s): {', '.join(unknown)}",
                              hint=f"known fields: {', '.join(sorted(known))}")
        return cls(**data)
