"""Checkpoints that resume exactly, with nothing unpickled.

    RUN/checkpoints/step-00000100/
        model.safetensors      weights (tied tensors stored once, aliases in the metadata)
        optimizer.safetensors  AdamW moments and step counts, keyed `state.<param>.<name>`
        rng.safetensors        each rank's torch (and CUDA) generator state
        trainer.json           step, tokens, data position, optimizer groups, schedule length

A checkpoint is written under a temporary name and renamed into place, so a directory named
`step-*` is always complete; a run killed while writing leaves only a `.tmp` directory, which
the next save removes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from plmkit.errors import PlmkitError

STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_dir_name(step: int) -> str:
    """>>> step_dir_name(1200)
    'step-00001200'
    """
    return f"step-{step:08d}"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], **metadata: Any) -> None:
    """safetensors with tensors that share storage written once; the aliases go in the metadata."""
    unique, aliases, seen = {}, {}, {}
    for name, t in tensors.items():
        key = (t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride())) if t.numel() else None
        if key is not None and key in seen:
            aliases[name] = seen[key]
            continue
        if key is not None:
            seen[key] = name
        unique[name] = t.detach().contiguous().cpu()
    meta = {"format": "pt", "aliases": json.dumps(aliases), **{k: json.dumps(v) for k, v in metadata.items()}}
    save_file(unique, str(path), metadata=meta)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Inverse of `save_tensors` (aliases filled back in)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    tensors = load_file(str(path))
    for name, target in aliases.items():
        tensors[name] = tensors[target]
    return tensors


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """A name-keyed optimizer state dict → (tensors, JSON-able param groups).

    >>> t, g = flatten_optimizer({"state": {"w": {"step": torch.tensor(2.0)}}, "param_groups": [{"lr": 0.1, "params": ["w"]}]})
    >>> list(t), g
    (['state.w.step'], [{'lr': 0.1, 'params': ['w']}])
    """
    tensors = {f"state.{param}.{key}": value for param, entries in state["state"].items()
               for key, value in entries.items() if isinstance(value, torch.Tensor)}
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, groups


def unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    state: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        param, key = name[len("state."):].rsplit(".", 1)
        state.setdefault(param, {})[key] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in groups]
    return {"state": state, "param_groups": groups}


@dataclass
class Checkpoint:
    path: Path
    model: dict[str, torch.Tensor]
    optimizer: dict
    rng: dict[str, torch.Tensor]
    trainer: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.trainer["step"])


def save_checkpoint(run: Path, step: int, *, model: dict, optimizer: dict, rng: list[dict[str, torch.Tensor]],
                    trainer: dict[str, Any], keep_last: int = 0) -> Path:
    """Write `run/checkpoints/step-XXXXXXXX/` atomically; keep only the newest `keep_last` (0 = all)."""
    root = Path(run) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tensors(tmp / "model.safetensors", model)
    tensors, groups = flatten_optimizer(optimizer)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "optimizer.safetensors"),
              metadata={"format": "pt"})
    save_file({f"rank{r}.{k}": v for r, states in enumerate(rng) for k, v in states.items()},
              str(tmp / "rng.safetensors"), metadata={"format": "pt"})
    (tmp / "trainer.json").write_text(json.dumps({**trainer, "step": step, "param_groups": groups}, indent=1) + "\n")
    if final.exists():  # the same step saved again (Ctrl-C right after a periodic save)
        shutil.rmtree(final)
    os.replace(tmp, final)
    prune(root, keep_last)
    for stale in root.glob(".step-*.tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    return final


def checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / "trainer.json").is_file()]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)))


def prune(root: Path, keep_last: int) -> None:
    if keep_last <= 0:
        return
    for old in checkpoints(root.parent)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (safetensors and JSON only)."""
    path = Path(path)
    try:
        trainer = json.loads((path / "trainer.json").read_text())
        model = load_tensors(path / "model.safetensors")
        optimizer = unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), trainer.pop("param_groups"))
        rng = load_file(str(path / "rng.safetensors"))
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise PlmkitError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e})",
                          hint="delete it to resume from the one before, or pass --force to start over") from e
    return Checkpoint(path=path, model=model, optimizer=optimizer, rng=rng, trainer=trainer)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's random generator states (dropout draws from them)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(rng: dict[str, torch.Tensor], rank: int, device: torch.device) -> bool:
    """Restore this rank's generator states; False when the checkpoint has none for this rank."""
    if f"rank{rank}.cpu" not in rng:
        return False
    torch.set_rng_state(rng[f"rank{rank}.cpu"])
    if device.type == "cuda" and f"rank{rank}.cuda" in rng:
        torch.cuda.set_rng_state(rng[f"rank{rank}.cuda"], device)
    return True
