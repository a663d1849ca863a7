"""Tokenizer presets: the kind, normalisation and special-token names of each model family.

A preset is data. `--preset` picks the kind and names; explicit flags (`--kind`, `--lowercase`,
`--strip-accents`) win over it. A bare `--kind` uses `DEFAULT_PRESET[kind]` for the names.
`single`/`pair` are the post-processing templates (tokenizers `TemplateProcessing` syntax) that
`transformers` applies when asked to add special tokens; plmkit's own `encode_batch` never
adds them (the objectives place special tokens themselves).

References for the names and order: bert-base-uncased `vocab.txt`, roberta-base `vocab.json`,
albert-base-v2 and t5-base `spiece.model`, gpt2 `vocab.json`, Llama-2 `tokenizer.model`,
THUDM glm-large (BERT WordPiece vocab with GLM's tokens appended).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from plmkit.tokenization.roles import GLM_TOKENS

KINDS = ("wordpiece", "bpe", "unigram", "sp-bpe")
SENTENCEPIECE_KINDS = ("unigram", "sp-bpe")


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str
    lowercase: bool
    strip_accents: bool  # BERT/ALBERT strip accents exactly when they lowercase
    names: dict[str, str]  # role -> token, in id order; GLM's four are appended
    single: str | None  # post-processing template for one text, None: add nothing
    pair: str | None
    all_names: dict[str, str] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "all_names", {**self.names, **GLM_TOKENS})


def _names(**kw: str) -> dict[str, str]:
    return kw


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("bert", "wordpiece", True, True,
               _names(pad="[PAD]", unk="[UNK]", cls="[CLS]", sep="[SEP]", mask="[MASK]", bos="[CLS]", eos="[SEP]"),
               "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"),
        Preset("roberta", "bpe", False, False,
               _names(bos="<s>", pad="<pad>", eos="</s>", unk="<unk>", mask="<mask>", cls="<s>", sep="</s>"),
               "<s> $A </s>", "<s> $A </s> </s> $B </s>"),
        Preset("albert", "unigram", True, True,
               _names(pad="<pad>", unk="<unk>", cls="[CLS]", sep="[SEP]", mask="[MASK]", bos="[CLS]", eos="[SEP]"),
               "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"),
        # T5 has no CLS/BOS/MASK of its own; plmkit reserves them anyway (see roles.py).
        Preset("t5", "unigram", False, False,
               _names(pad="<pad>", eos="</s>", unk="<unk>", bos="<s>", mask="<mask>", cls="<s>", sep="</s>"),
               "$A </s>", "$A </s> $B </s>"),
        # GPT-2 uses <|endoftext|> for everything; plmkit keeps the roles apart.
        Preset("gpt", "bpe", False, False,
               _names(eos="<|endoftext|>", bos="<|startoftext|>", pad="<|pad|>", unk="<|unk|>", mask="<|mask|>",
                      cls="<|startoftext|>", sep="<|endoftext|>"),
               None, None),
        Preset("llama", "sp-bpe", False, False,
               _names(unk="<unk>", bos="<s>", eos="</s>", pad="<pad>", mask="<mask>", cls="<s>", sep="</s>"),
               "<s> $A", "<s> $A <s> $B:1"),
        Preset("glm", "wordpiece", True, True,
               _names(pad="[PAD]", unk="[UNK]", cls="[CLS]", sep="[SEP]", mask="[MASK]", eos="<|endoftext|>",
                      bos="[CLS]"),
               "[CLS] $A <|endoftext|>", "[CLS] $A [SEP] $B:1 <|endoftext|>:1"),
    )
}

DEFAULT_PRESET = {"wordpiece": "bert", "bpe": "roberta", "unigram": "t5", "sp-bpe": "llama"}
