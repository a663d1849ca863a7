"""A pretrained plmkit model plus a task head: `FinetuneModel(backbone, cfg, task, num_labels)`.

Shape legend: B batch, T length, C hidden size, K labels, L longest label text (T5).

Which head reads what (the Hugging Face layouts, so BERT/RoBERTa/ALBERT export one-to-one):

| head | families | reads | layers |
|---|---|---|---|
| `pooler` | bert, albert (classify) | h[:, 0] ([CLS]) | the pretrained NSP/SOP pooler (tanh), dropout, classifier |
| `dense-tanh` | roberta, glm (classify) | h[:, 0] (<s> / [CLS]) | dropout, dense, tanh, dropout, out_proj |
| `last-token` | gpt, llama (classify) | h at the last real token | score (no bias), as GPT2/LlamaForSequenceClassification |
| `text` | t5 (classify) | the decoder | none: the target is the label's text; a label's score is log p(text) |
| `token` | bert, roberta, albert (label-tokens) | every h | dropout, classifier |

GLM reads its `[CLS]` with the whole input in Part A (bidirectional), as THUDM's
GLMForSequenceClassification does (a dense-tanh head on position 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plmkit.errors import PlmkitError
from plmkit.models.blocks import build_mask, rope_cos_sin
from plmkit.models.config import ModelConfig
from plmkit.models.heads import IGNORE, ModelOutput, token_loss

HEADS = {
    ("bert", "classify"): "pooler", ("albert", "classify"): "pooler",
    ("roberta", "classify"): "dense-tanh", ("glm", "classify"): "dense-tanh",
    ("gpt", "classify"): "last-token", ("llama", "classify"): "last-token",
    ("t5", "classify"): "text",
    ("bert", "label-tokens"): "token", ("roberta", "label-tokens"): "token", ("albert", "label-tokens"): "token",
}


def head_kind(family: str, task: str) -> str:
    """The head for a family and task; label-tokens on a non-encoder is a PlmkitError."""
    if (family, task) not in HEADS:
        able = sorted({f for f, t in HEADS if t == task})
        raise PlmkitError(f"--task {task} needs a bidirectional encoder, and RUN holds a {family} model",
                          hint=f"label-tokens works with {', '.join(able)} runs; {family} can --task classify")
    return HEADS[(family, task)]


def decoder_hidden(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Final hidden states (B, T, C) of a DecoderModel (gpt, llama, glm): its forward without the LM head.

    GPT/LLaMA attend causally; GLM takes the whole input as Part A (sep = T), which is a
    bidirectional mask. Rows are right-padded, so positions count 0..T-1 from the first token.
    """
    cfg = model.cfg
    B, T = input_ids.shape
    positions = torch.arange(T, device=input_ids.device).expand(B, T)
    x = model.embed(input_ids, positions, None)                                   # (B, T, C)
    rope = rope_cos_sin(positions, cfg.attn_head_dim, cfg.rope_theta, x.dtype) if cfg.position == "rope" else None
    kind = "bidirectional" if cfg.family == "glm" else "causal"
    mask = build_mask(kind, attention_mask, T, T, input_ids.device)
    for i, layer in enumerate(model.layers):
        x = layer(x, mask, False, rope, None, i)
    return model.final_norm(x)


class FinetuneModel(nn.Module):
    """`model(input_ids, attention_mask, token_type_ids, labels)` → ModelOutput(loss, logits).

    logits: classify (B, K) (T5: the K label texts' log-likelihoods, computed in eval mode only);
    label-tokens (B, T, K). labels: classify (B,) label ids; label-tokens (B, T) with -100.
    `targets` (T5 only): the K label texts as token ids + </s>, (K, L) padded with -100.
    """

    def __init__(self, backbone: nn.Module, cfg: ModelConfig, task: str, num_labels: int,
                 targets: torch.Tensor | None = None):
        super().__init__()
        self.backbone, self.cfg, self.task = backbone, cfg, task
        self.kind = head_kind(cfg.family, task)
        C, K = cfg.hidden_size, num_labels
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)
        if self.kind in ("pooler", "token"):
            self.classifier = nn.Linear(C, K)
        elif self.kind == "dense-tanh":
            self.dense, self.out_proj = nn.Linear(C, C), nn.Linear(C, K)
        elif self.kind == "last-token":
            self.score = nn.Linear(C, K, bias=False)
        else:
            assert targets is not None and targets.shape[0] == K, "T5 needs one target text per label"
            self.register_buffer("targets", targets, persistent=False)
        for module in self.head_modules():
            nn.init.normal_(module.weight, std=cfg.initializer_range)      # HF `_init_weights` of a Linear
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def head_modules(self) -> list[nn.Linear]:
        return [m for name, m in self.named_children() if name != "backbone" and isinstance(m, nn.Linear)]

    def hidden(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        if self.cfg.skeleton == "encoder":
            return self.backbone.encode(input_ids, attention_mask, token_type_ids)   # (B, T, C)
        return decoder_hidden(self.backbone, input_ids, attention_mask)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> ModelOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.kind == "text":
            return self._text(input_ids, attention_mask, labels)
        h = self.hidden(input_ids, attention_mask, token_type_ids)                   # (B, T, C)
        if self.kind == "pooler":
            logits = self.classifier(self.drop(self.backbone.pair_head.pool(h)))     # (B, K)
        elif self.kind == "dense-tanh":
            logits = self.out_proj(self.drop(torch.tanh(self.dense(self.drop(h[:, 0])))))
        elif self.kind == "last-token":
            last = attention_mask.sum(dim=1) - 1                                     # (B,)
            logits = self.score(h[torch.arange(h.shape[0], device=h.device), last])
        else:
            logits = self.classifier(self.drop(h))                                   # (B, T, K)
        loss = None if labels is None else token_loss(logits, labels)
        return ModelOutput(loss=loss, logits=logits)

    def _text(self, input_ids, attention_mask, labels) -> ModelOutput:
        """T5: train on the gold label's text; score every label's text when evaluating."""
        memory = self.backbone.encode(input_ids, attention_mask)                    # (B, S, C)
        loss = None
        if labels is not None:
            loss = self.backbone(attention_mask=attention_mask, labels=self.targets[labels],
                                 encoder_outputs=memory).loss
        logits = None if self.training else self.label_scores(memory, attention_mask)
        return ModelOutput(loss=loss, logits=logits)

    def label_scores(self, memory: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, K): log p(label k's text + </s> | input), summed over its tokens (rank classification)."""
        B, K = memory.shape[0], self.targets.shape[0]
        scores = []
        for k in range(K):
            target = self.targets[k].expand(B, -1)                                  # (B, L)
            logits = self.backbone(attention_mask=attention_mask, labels=target, encoder_outputs=memory).logits
            logp = F.log_softmax(logits.float(), dim=-1)                            # (B, L, V)
            real = target != IGNORE
            picked = logp.gather(-1, target.clamp(min=0)[..., None])[..., 0]       # (B, L)
            scores.append((picked * real).sum(dim=1))
        return torch.stack(scores, dim=1)                                            # (B, K)


def label_targets(tok, labels: list[str]) -> torch.Tensor:
    """T5 targets: each label's text as token ids + </s>, (K, L) padded with -100.

    A label whose text encodes to nothing is an error (it could not be told from the others).
    """
    rows = [list(tok.encode(name)) + [tok.id("eos")] for name in labels]
    for name, row in zip(labels, rows, strict=True):
        if len(row) == 1:
            raise PlmkitError(f"label {name!r} has no tokens in RUN's tokenizer, so T5 cannot generate it",
                              hint="rename the label with letters or digits")
    if len({tuple(r) for r in rows}) < len(rows):
        raise PlmkitError("two labels encode to the same tokens in RUN's tokenizer (e.g. labels differing only "
                          "in case with a lower-casing tokenizer)", hint="rename the labels")
    L = max(len(r) for r in rows)
    return torch.tensor([r + [IGNORE] * (L - len(r)) for r in rows], dtype=torch.long)
