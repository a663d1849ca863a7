"""The blocks every skeleton shares: norm, MLP, attention, the transformer block, masks, positions, KV cache.

Shape legend (this file): B batch, T query length, S key length (past + new), C channels
(hidden size), A query heads, K key/value heads, D head dim, N cache capacity.

Attention always goes through `F.scaled_dot_product_attention`. Masks are boolean (True = may
attend) except for T5, whose relative-position bias makes the mask an additive float tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.models.config import ModelConfig


# ---- norms and activations ----------------------------------------------------------------
class RMSNorm(nn.Module):
    """y = w ⊙ x / sqrt(mean(x²) + eps): no mean, no bias (T5, LLaMA)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # LLaMA's cast order: normalise in fp32, cast back, then scale (matters in bf16 only).
        h, C = x.float(), x.shape[-1]
        if torch.is_grad_enabled() or not h.is_cpu:
            y = F.rms_norm(h, (C,), eps=self.eps)
        else:
            # F.rms_norm is ~8 small kernels on the CPU, a sixth of a LLaMA decode step's own cost;
            # layer_norm of [h, -h] (mean 0, variance mean(h²)) is one, and equal to ~1e-7.
            # Not under autograd: there the concatenation makes a training step ~7% slower.
            y = F.layer_norm(torch.cat([h, -h], dim=-1), (2 * C,), eps=self.eps)[..., :C]
        return y.to(x.dtype) * self.weight


def maybe_dropout(drop: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """`drop(x)`, skipped when it would return x (eval, or p = 0): a decode step makes a dozen of these calls."""
    return drop(x) if drop.training and drop.p > 0 else x


def make_norm(cfg: ModelConfig, dim: int | None = None) -> nn.Module:
    dim = dim or cfg.hidden_size
    if cfg.norm == "rmsnorm":
        return RMSNorm(dim, cfg.layer_norm_eps)
    return nn.LayerNorm(dim, eps=cfg.layer_norm_eps)


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "swiglu": F.silu,          # the gate's activation
    "gated-gelu": lambda x: F.gelu(x, approximate="tanh"),
}


class MLP(nn.Module):
    """Plain: down(act(up(x))). Gated (SwiGLU, GEGLU): down(act(gate(x)) ⊙ up(x)).

    Gated MLPs fuse gate and up into one matmul (`gate_up`, rows [gate; up]) because one large
    GEMM is faster on CPU than two; the HF converter splits it.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        C, F_, bias = cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias
        self.gated = cfg.gated
        self.act = ACTIVATIONS[cfg.activation]
        self.up = nn.Linear(C, 2 * F_ if self.gated else F_, bias=bias)
        self.down = nn.Linear(F_, C, bias=bias)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x):
        h = self.up(x)
        if self.gated:
            gate, up = h.chunk(2, dim=-1)
            h = self.act(gate) * up
        else:
            h = self.act(h)
        return self.down(maybe_dropout(self.drop, h) if self.gated else h)


# ---- positions ----------------------------------------------------------------------------
def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (B, 1, T, D) for the rotate-half layout (HF LLaMA), computed in fp32.

    inv_freq_j = theta^(-2j/D) for j < D/2; the half table is concatenated with itself.
    """
    inv_freq = theta ** -(torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angle = positions.float()[..., None] * inv_freq          # (B, T, D/2)
    angle = torch.cat((angle, angle), dim=-1)[:, None]      # (B, 1, T, D)
    return angle.cos().to(dtype), angle.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x·cos + rotate_half(x)·sin with rotate_half(x) = [-x2, x1]. x: (B, H, T, D)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def sinusoidal_table(num_positions: int, dim: int) -> torch.Tensor:
    """Vaswani et al.: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same). (P, dim)."""
    pos = torch.arange(num_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


def relative_buckets(rel: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5's bucket of each relative position rel = key - query.

    Bidirectional: half the buckets per sign (+num_buckets/2 when the key is to the right).
    Within n buckets, distances < n/2 are exact; larger ones are log-binned up to max_distance.
    >>> relative_buckets(torch.tensor([-1, 0, 1, 200]), True, 32, 128).tolist()
    [1, 0, 17, 31]
    """
    bucket = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        bucket = (rel > 0).long() * num_buckets
        dist = rel.abs()
    else:
        dist = -torch.clamp(rel, max=0)
    exact = num_buckets // 2
    log_bucket = exact + (
        torch.log(dist.float().clamp(min=1) / exact) / math.log(max_distance / exact) * (num_buckets - exact)
    ).long()
    log_bucket = torch.clamp(log_bucket, max=num_buckets - 1)
    return bucket + torch.where(dist < exact, dist, log_bucket)


# ---- masks ----------------------------------------------------------------------------------
def build_mask(kind: str, attention_mask, T: int, S: int, device, sep=None) -> torch.Tensor | None:
    """Boolean (B or 1, 1, T, S) mask, True = may attend; None when no masking is needed.

    Queries are the last T of S positions (S - T tokens are in the KV cache).
    - bidirectional: padding keys only.
    - causal: key j <= query i (absolute positions), and not padding.
    - glm-prefix: key j < sep (Part A, seen by all) or j <= i (Part B is causal).
      e.g. T=S=4, sep=2: rows [1100] [1100] [1110] [1111].
    A row with nothing to attend to (a padding query in a left-padded batch) attends everywhere,
    so SDPA never returns NaN; its output is ignored by the loss anyway.
    """
    q_pos = torch.arange(S - T, S, device=device)[:, None]   # (T, 1)
    k_pos = torch.arange(S, device=device)[None, :]           # (1, S)
    mask = None
    if kind == "causal":
        mask = (k_pos <= q_pos)[None, None]                   # (1, 1, T, S)
    elif kind == "glm-prefix":
        sep = torch.as_tensor(sep, device=device).reshape(-1, 1, 1, 1)
        mask = (k_pos <= q_pos)[None, None] | (k_pos[None, None] < sep)   # (B, 1, T, S)
    if attention_mask is not None and not bool(attention_mask.all()):
        keys = attention_mask[:, None, None, :].bool()        # (B, 1, 1, S)
        mask = keys if mask is None else mask & keys
        if kind != "bidirectional":
            mask = mask | ~mask.any(dim=-1, keepdim=True)
    return mask


def additive(mask: torch.Tensor | None, dtype) -> torch.Tensor | None:
    """Boolean mask -> additive float mask (0 where allowed, dtype's minimum where not)."""
    if mask is None:
        return None
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


# ---- KV cache -----------------------------------------------------------------------------------
class KVCache:
    """Preallocated keys/values for incremental decoding, one slot per layer.

    `cache = model.new_cache(batch_size, max_length)`; each forward with `cache=` writes the new
    tokens' K/V at `cache.length`, attends over everything up to them, and advances `length`
    after the last layer. Cross-attention K/V (T5) are computed once into `cross`.
    keys/values: (L, B, K, N, D).
    """

    def __init__(self, num_layers: int, batch_size: int, kv_heads: int, capacity: int, head_dim: int,
                 dtype=torch.float32, device=None):
        shape = (num_layers, batch_size, kv_heads, capacity, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.capacity = capacity
        self.length = 0
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * num_layers

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, K, T, D) after the cached ones; return all of them (B, K, S, D)."""
        end = self.length + k.shape[2]
        assert end <= self.capacity, f"KV cache full ({end} > {self.capacity}); allocate a larger one"
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def reset(self) -> None:
        self.length = 0
        self.cross = [None] * len(self.cross)


# ---- attention --------------------------------------------------------------------------------
class Attention(nn.Module):
    """Multi-head attention with grouped K/V heads; self-attention (fused qkv) or cross-attention.

    Self: one `qkv` Linear with rows [q (A·D); k (K·D); v (K·D)]. Cross: `q` and fused `kv`.
    K/V heads are repeated per group like HF `repeat_kv`: kv head j serves query heads
    j·(A/K) … (j+1)·(A/K)-1.
    """

    def __init__(self, cfg: ModelConfig, cross: bool = False, kv_heads: int | None = None):
        super().__init__()
        C, self.A, self.D = cfg.hidden_size, cfg.num_attention_heads, cfg.attn_head_dim
        self.K = kv_heads or cfg.kv_heads
        self.cross = cross
        bias = cfg.attention_bias
        if cross:
            self.q = nn.Linear(C, self.A * self.D, bias=bias)
            self.kv = nn.Linear(C, 2 * self.K * self.D, bias=bias)
        else:
            self.qkv = nn.Linear(C, (self.A + 2 * self.K) * self.D, bias=bias)
        self.o = nn.Linear(self.A * self.D, C, bias=bias)
        self.scale = None if cfg.scale_attention else 1.0   # None = SDPA's 1/sqrt(D)
        self.dropout = cfg.attention_probs_dropout_prob

    def forward(self, x, mask=None, is_causal=False, rope=None, cache=None, layer=0, memory=None):
        B, T, _ = x.shape
        if self.cross:
            q = self.q(x).view(B, T, self.A, self.D).transpose(1, 2)              # (B, A, T, D)
            k, v = self._memory_kv(memory, cache, layer)                          # (B, K, S, D)
        else:
            qkv = self.qkv(x).view(B, T, self.A + 2 * self.K, self.D).transpose(1, 2)  # (B, A+2K, T, D)
            if rope is None:
                q, k, v = qkv.split([self.A, self.K, self.K], dim=1)
            else:                   # q and k rotated in one pass: half the small ops of a decode step
                q, k = apply_rope(qkv[:, :self.A + self.K], *rope).split([self.A, self.K], dim=1)
                v = qkv[:, self.A + self.K:]
            if cache is not None:
                k, v = cache.update(layer, k, v)                                  # (B, K, S, D)
        # enable_gqa repeats K/V heads inside SDPA (repeat_interleave order, as HF) without copies
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None,
                                           dropout_p=self.dropout if self.training else 0.0, scale=self.scale,
                                           enable_gqa=self.K != self.A)
        return self.o(y.transpose(1, 2).reshape(B, T, self.A * self.D))                # (B, T, C)

    def _memory_kv(self, memory, cache, layer):
        """Cross-attention K/V of the encoder output, computed once per cache."""
        if cache is not None and cache.cross[layer] is not None:
            return cache.cross[layer]
        B, S, _ = memory.shape
        kv = self.kv(memory).view(B, S, 2 * self.K, self.D).transpose(1, 2)      # (B, 2K, S, D)
        k, v = kv.split([self.K, self.K], dim=1)
        if cache is not None:
            cache.cross[layer] = (k, v)
        return k, v


class Block(nn.Module):
    """One transformer layer: self-attention, optional cross-attention, MLP; pre- or post-norm.

    pre  (GPT, LLaMA, T5, GLM): x = x + f(norm(x)) for each sublayer.
    post (BERT, RoBERTa, ALBERT): x = norm(x + f(x)) for each sublayer.
    """

    def __init__(self, cfg: ModelConfig, cross: bool = False):
        super().__init__()
        self.pre = cfg.norm_placement == "pre"
        self.attn_norm = make_norm(cfg)
        self.attn = Attention(cfg)
        self.cross_norm = make_norm(cfg) if cross else None
        self.cross_attn = Attention(cfg, cross=True, kv_heads=cfg.num_attention_heads) if cross else None
        self.mlp_norm = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x, mask=None, is_causal=False, rope=None, cache=None, layer=0, memory=None, memory_mask=None):
        attn = lambda h: self.attn(h, mask, is_causal, rope, cache, layer)  # noqa: E731
        x = self._residual(x, self.attn_norm, attn)
        if self.cross_attn is not None:
            cross = lambda h: self.cross_attn(h, memory_mask, cache=cache, layer=layer, memory=memory)  # noqa: E731
            x = self._residual(x, self.cross_norm, cross)
        return self._residual(x, self.mlp_norm, self.mlp)

    def _residual(self, x, norm, f):
        if self.pre:
            return x + maybe_dropout(self.drop, f(norm(x)))
        return norm(x + maybe_dropout(self.drop, f(x)))


def decoding_layout(model: nn.Module, enable: bool = True) -> nn.Module:
    """Store each wide weight (more outputs than inputs) as (in, out) in memory, for decoding; returns `model`.

    A decode step multiplies a few token vectors by every weight, so its time goes into reading
    them. MKL's kernel for x·Wᵀ reads a wide weight about twice as fast when it lies (in, out)
    in memory (the 8000×256 LM head of `small`, 1 thread, weights coming from DRAM: 1.4 ms
    instead of 3.0 ms), and a narrow one (the MLP's down projection) more slowly, so only wide
    ones move: qkv, up/gate, the LM head (`output_weight`, tied or not). Each becomes the
    transposed view of a contiguous (in, out) copy: shape, name and values are unchanged, so
    state_dict, `save_model` and `export_hf` work as before. `enable=False` makes every weight
    contiguous again (before training, whose optimizers and DDP buckets expect it).
    """
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    weights.append(getattr(model, "output_weight", None))
    with torch.inference_mode(False), torch.no_grad():     # plain tensors, even when called inside inference mode
        for w in {id(w): w for w in weights if w is not None and w.dim() == 2}.values():
            if enable and w.shape[0] > w.shape[1] and not w.t().is_contiguous():
                w.data = w.data.t().contiguous().t()
            elif not enable and not w.is_contiguous():
                w.data = w.data.contiguous()
    return model


def init_weights(module: nn.Module, std: float) -> None:
    """HF-style init: N(0, std) for Linear and Embedding weights, zero biases, norms 1/0."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.LayerNorm, RMSNorm)):
            nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
