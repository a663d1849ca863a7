"""The seven model families from one configuration.

    cfg = get_config("llama", "tiny", vocab_size=tok.vocab_size, pad_token_id=tok.id("pad"))
    model = build_model(cfg)
    out = model(**batch)            # shard columns + attention_mask -> ModelOutput(loss, logits, losses, extra)
    save_model(model, cfg, "RUN")   # RUN/config.json + RUN/model.safetensors
    model, cfg = load_model("RUN")

Skeletons: `EncoderModel` (bert, roberta, albert), `DecoderModel` (gpt, llama, glm),
`EncoderDecoderModel` (t5). Decoders and T5 have `new_cache(batch_size, max_length)` for
incremental decoding (see `decoder.py` / `encoder_decoder.py` docstrings). Hugging Face
interop lives in `plmkit.models.hf` (`export_hf`, `import_hf`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from plmkit.errors import PlmkitError
from plmkit.models.blocks import KVCache
from plmkit.models.config import FAMILIES, FAMILY_OBJECTIVES, ModelConfig
from plmkit.models.decoder import DecoderModel
from plmkit.models.encoder import EncoderModel
from plmkit.models.encoder_decoder import EncoderDecoderModel
from plmkit.models.heads import ModelOutput
from plmkit.models.presets import PUBLISHED, get_config

SKELETONS = {"encoder": EncoderModel, "decoder": DecoderModel, "encoder-decoder": EncoderDecoderModel}

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def build_model(cfg: ModelConfig) -> nn.Module:
    """A freshly initialised model of `cfg`'s family (on the current default device)."""
    return SKELETONS[cfg.skeleton](cfg)


def count_parameters(model: nn.Module) -> int:
    """Distinct parameters (tied tensors once); works on the meta device."""
    return sum(p.numel() for p in model.parameters())


def save_model(model: nn.Module, cfg: ModelConfig, out_dir: str | Path) -> None:
    """Write `config.json` (plmkit's config) and `model.safetensors` (tied tensors stored once)."""
    from safetensors.torch import save_model as st_save_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    st_save_model(model, str(out / WEIGHTS_NAME), metadata={"format": "pt"})


def load_config(model_dir: str | Path, flag: str = "RUN") -> ModelConfig:
    path = Path(model_dir) / CONFIG_NAME
    if not path.is_file():
        raise PlmkitError(f"{flag}: {path} is missing", hint="point at a directory written by plmkit train")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PlmkitError(f"{flag}: {path} is not valid JSON ({e})") from None
    if "model_type" in data and "family" not in data:
        raise PlmkitError(f"{flag}: {path} is a Hugging Face config, not a plmkit one",
                          hint="import it with plmkit.models.hf.import_hf")
    return ModelConfig.from_dict(data)


def load_weights(model: nn.Module, path: str | Path, flag: str = "RUN") -> None:
    """Load safetensors weights into `model`, with a PlmkitError naming any missing/extra/misshaped tensor."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise PlmkitError(f"{flag}: {path} is missing", hint="the run has no final weights; train it or pick a checkpoint")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise PlmkitError(f"{flag}: {path} is not a readable safetensors file ({e})") from None
    load_state(model, state, f"{flag}: {path}")


def load_state(model: nn.Module, state: dict, where: str) -> None:
    """Copy `state` into `model`; tensors tied inside the model may appear once under any of their names."""
    own = model.state_dict(keep_vars=True)
    by_storage = {}
    for name, t in own.items():
        by_storage.setdefault(id(t), []).append(name)
    for names in by_storage.values():      # fill aliases of tied tensors stored under one name
        present = [n for n in names if n in state]
        for n in names:
            if present and n not in state:
                state[n] = state[present[0]]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise PlmkitError(f"{where} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}",
                          hint="the weights belong to a different configuration")
    for name, t in own.items():
        if tuple(state[name].shape) != tuple(t.shape):
            raise PlmkitError(f"{where}: tensor {name} has shape {tuple(state[name].shape)}, "
                              f"the model expects {tuple(t.shape)}")
    with torch.no_grad():
        for name, t in own.items():
            t.copy_(state[name])


def load_model(model_dir: str | Path, flag: str = "RUN") -> tuple[nn.Module, ModelConfig]:
    """Inverse of `save_model`: (model in eval mode, its config)."""
    cfg = load_config(model_dir, flag)
    model = build_model(cfg)
    load_weights(model, Path(model_dir) / WEIGHTS_NAME, flag)
    return model.eval(), cfg


__all__ = [
    "FAMILIES", "FAMILY_OBJECTIVES", "PUBLISHED", "DecoderModel", "EncoderDecoderModel", "EncoderModel", "KVCache",
    "ModelConfig", "ModelOutput", "build_model", "count_parameters", "get_config", "load_config", "load_model",
    "load_state", "load_weights", "save_model",
]
