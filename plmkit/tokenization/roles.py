"""Special-token roles: what every plmkit tokenizer reserves, whatever its preset.

Objectives never spell a special token; they ask the tokenizer for a role (`tok.id("mask")`).
Every tokenizer reserves all of them, so any tokenizer can feed any objective:

    pad unk cls sep bos eos mask      the BERT/RoBERTa/T5/GPT/LLaMA set
    gmask smask sop eop               GLM: [gMASK] [sMASK] <|startofpiece|> <|endofpiece|>
    sentinels                         T5: <extra_id_0> … <extra_id_99>, extra_id_0 = first span

A preset names the first seven (`bos` may be the same token as `cls`, and `eos` the same as
`sep`, as in BERT's `[CLS]`/`[SEP]` or RoBERTa's `<s>`/`</s>`); the GLM tokens and the sentinels
have the same names in every preset. Special tokens take the lowest ids, in `special_tokens`
order, so a vocabulary grows at its end.
"""

from __future__ import annotations

ROLES = ("pad", "unk", "cls", "sep", "bos", "eos", "mask", "gmask", "smask", "sop", "eop")
NUM_SENTINELS = 100
GLM_TOKENS = {"gmask": "[gMASK]", "smask": "[sMASK]", "sop": "<|startofpiece|>", "eop": "<|endofpiece|>"}
# The only roles that may share a token, and with which role.
MAY_SHARE = {"bos": "cls", "eos": "sep"}


def sentinel_token(k: int) -> str:
    return f"<extra_id_{k}>"


def check_role_names(names: dict[str, str]) -> None:
    """Every role named once; distinct tokens except bos=cls and eos=sep (an internal invariant)."""
    assert set(names) == set(ROLES), f"roles {sorted(set(ROLES) ^ set(names))} missing or unknown"
    for role, token in names.items():
        for other, other_token in names.items():
            if role < other and token == other_token:
                assert MAY_SHARE.get(role) == other or MAY_SHARE.get(other) == role, (role, other, token)


def special_tokens(names: dict[str, str]) -> list[str]:
    """All special tokens in id order: the preset's, in its order, then GLM's, then the sentinels.

    >>> special_tokens({"pad": "<pad>", "eos": "</s>", "unk": "<unk>", "bos": "<s>", "cls": "<s>",
    ...                 "sep": "</s>", "mask": "<mask>", **GLM_TOKENS})[:6]
    ['<pad>', '</s>', '<unk>', '<s>', '<mask>', '[gMASK]']
    """
    check_role_names(names)
    ordered = list(dict.fromkeys(names.values()))
    return ordered + [sentinel_token(k) for k in range(NUM_SENTINELS)]
