"""FT/ → a Hugging Face directory for `AutoModelFor{Sequence,Token}Classification.from_pretrained`.

The backbone's tensors come from the pretraining export's key tables (`plmkit.models.hf`),
keeping only the base model (`bert.*`, `roberta.*`, `albert.*`, `transformer.*`, `model.*`); the
pretraining heads (MLM, NSP/SOP, LM) are dropped and the task head is added under the names of
the Hugging Face class:

| family, task | class | head keys |
|---|---|---|
| bert, albert · classify | …ForSequenceClassification | the pooler (`bert.pooler.dense` / `albert.pooler`), `classifier` |
| roberta · classify | RobertaForSequenceClassification | `classifier.dense`, `classifier.out_proj` |
| bert, roberta, albert · label-tokens | …ForTokenClassification | `classifier` (no pooler) |
| gpt, llama · classify | GPT2/LlamaForSequenceClassification | `score` (reads the last non-pad token) |

T5 (a label is a generated text) and GLM (no transformers class) are refused with a one-line error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from plmkit.errors import PlmkitError
from plmkit.finetune.heads import FinetuneModel

CLASSES = {
    ("bert", "classify"): "BertForSequenceClassification", ("bert", "label-tokens"): "BertForTokenClassification",
    ("roberta", "classify"): "RobertaForSequenceClassification",
    ("roberta", "label-tokens"): "RobertaForTokenClassification",
    ("albert", "classify"): "AlbertForSequenceClassification",
    ("albert", "label-tokens"): "AlbertForTokenClassification",
    ("gpt", "classify"): "GPT2ForSequenceClassification", ("llama", "classify"): "LlamaForSequenceClassification",
}
BASE_PREFIX = {"bert": "bert.", "roberta": "roberta.", "albert": "albert.", "gpt": "transformer.", "llama": "model."}
POOLER_PREFIX = ("bert.pooler.", "albert.pooler.")
HEAD_NAMES = {"pooler": {"classifier": "classifier"}, "token": {"classifier": "classifier"},
              "dense-tanh": {"dense": "classifier.dense", "out_proj": "classifier.out_proj"},
              "last-token": {"score": "score"}}
# What transformers' AutoTokenizer reads (the tokenizer's plmkit.json stays behind).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "spm.model")


def hf_state(model: FinetuneModel) -> dict[str, torch.Tensor]:
    """The HF state dict of a fine-tuned model: base-model tensors + the head under HF names."""
    from plmkit.models.hf import to_hf_state

    family = model.cfg.family
    base = to_hf_state(model.backbone, model.cfg)
    state = {k: v for k, v in base.items() if k.startswith(BASE_PREFIX[family])
             and not (model.kind == "token" and k.startswith(POOLER_PREFIX))}
    for ours, theirs in HEAD_NAMES[model.kind].items():
        for name, tensor in getattr(model, ours).named_parameters():
            state[f"{theirs}.{name}"] = tensor.detach().contiguous().clone()
    return state


def hf_classification_config(model: FinetuneModel, labels: list[str]) -> dict:
    from plmkit.models.hf import hf_config

    cfg = model.cfg
    out = hf_config(cfg)
    out.update(architectures=[CLASSES[(cfg.family, model.task)]], id2label={str(i): n for i, n in enumerate(labels)},
               label2id={n: i for i, n in enumerate(labels)})
    if model.task == "classify":
        out["problem_type"] = "single_label_classification"
    return out


def export_hf(ft: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write FT/ as a Hugging Face directory (config.json, model.safetensors, tokenizer files) at `out`."""
    from safetensors.torch import save_file

    from plmkit.finetune.inference import load_finetuned
    from plmkit.manifest import read_manifest, staging_dir

    manifest = read_manifest(ft, "finetune", flag="FT")
    key = (manifest["family"], manifest["task"])
    if key not in CLASSES:
        why = ("its classifier scores each label's text with the seq2seq model" if key[0] == "t5"
               else "transformers has no GLM-1 class")
        raise PlmkitError(f"FT {ft}: a fine-tuned {key[0]} model cannot be exported to Hugging Face format ({why})",
                          hint="use FT with plmkit eval / plmkit generate, or fine-tune bert, roberta, albert, "
                               "gpt or llama for export")
    loaded = load_finetuned(ft, device="cpu")
    state = hf_state(loaded.model)
    config = hf_classification_config(loaded.model, loaded.labels)
    with staging_dir(out, force=force, flag="--out") as tmp:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for name in TOKENIZER_FILES:
            if (loaded.path / "tokenizer" / name).is_file():
                shutil.copy2(loaded.path / "tokenizer" / name, tmp / name)
    return Path(out)
