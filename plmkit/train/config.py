"""The training run's settings: one dataclass, its validation, and where values come from.

Precedence is defaults < `--config run.toml|yaml` < flags typed on the command line; the
resolved settings are saved as `RUN/train_config.json` and compared on resume, so a rerun of
the same command continues the run and a changed optimisation setting is refused.

Config files use the flag names, with `-` or `_`:

    data = "DATA"
    model = "gpt:small"
    max-steps = 2000
    lr = 6e-4
    [model-overrides]          # any ModelConfig field, e.g. a custom width
    hidden_size = 384
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plmkit.errors import PlmkitError

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("fp32", "bf16")

# Settings that may change when a run is resumed: when to stop, how often to report, where to
# run. Everything else shapes the trajectory, so changing it on resume would silently make a
# different run.
RESUMABLE_CHANGES = frozenset({
    "max_steps", "max_tokens", "epochs", "eval_every", "save_every", "keep_last", "log_every",
    "num_workers", "device", "compile",
})


@dataclass
class TrainConfig:
    """Everything `plmkit train` needs; field names are the flags with `_` for `-`."""

    data: str | None = None
    model: str | None = None  # FAMILY[:SIZE], e.g. "bert:small"
    out: str | None = None
    max_steps: int | None = None
    max_tokens: int | None = None
    epochs: float | None = None
    batch_size: int = 32  # sequences per optimizer step, over all ranks and micro-batches
    grad_accum: int = 1  # micro-batches per step on each rank
    lr: float = 3e-4
    warmup: int = 0  # steps of linear warm-up from 0 to --lr
    schedule: str = "cosine"
    min_lr: float = 0.0
    weight_decay: float = 0.01
    clip: float = 1.0  # max global gradient norm; 0 = no clipping
    precision: str = "fp32"
    compile: bool = False
    fsdp: bool = False
    eval_every: int = 1000  # steps; 0 = only at the end
    save_every: int = 1000  # steps; 0 = only at the end (and on Ctrl-C)
    keep_last: int = 3  # checkpoints kept; 0 = keep all
    log_every: int = 10  # steps between metrics.jsonl lines
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    init_from: str | None = None
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**{k: v for k, v in d.items() if k in FIELDS})


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _positive(cfg: TrainConfig, name: str, allow_zero: bool = False, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        need = "a number ≥ 0" if allow_zero else "a number > 0"
        raise PlmkitError(f"{flag(name)} must be {need}, got {value!r}")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every setting; raise one `PlmkitError` naming the first bad flag."""
    for name in ("data", "out") if cfg.init_from else ("data", "model", "out"):
        if not getattr(cfg, name):
            raise PlmkitError(f"{flag(name)} is required", hint="pass it on the command line or in --config")
    for name in ("max_steps", "max_tokens", "epochs"):
        _positive(cfg, name, optional=True)
    for name in ("batch_size", "grad_accum", "lr"):
        _positive(cfg, name)
    for name in ("warmup", "min_lr", "weight_decay", "clip", "eval_every", "save_every", "keep_last",
                 "seed", "num_workers"):
        _positive(cfg, name, allow_zero=True)
    _positive(cfg, "log_every")
    if cfg.min_lr > cfg.lr:
        raise PlmkitError(f"--min-lr {cfg.min_lr} is above --lr {cfg.lr}", hint="the schedule decays from --lr to --min-lr")
    if cfg.schedule not in SCHEDULES:
        raise PlmkitError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {cfg.schedule!r}")
    if cfg.precision not in PRECISIONS:
        raise PlmkitError(f"--precision must be one of {', '.join(PRECISIONS)}, got {cfg.precision!r}")
    if not isinstance(cfg.model_overrides, dict):
        raise PlmkitError("model-overrides in --config must be a table of ModelConfig fields")
    return cfg


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or YAML run config into {field: value}; unknown keys are an error."""
    path = Path(path)
    if not path.is_file():
        raise PlmkitError(f"--config {path} does not exist", hint="pass a .toml or .yaml file")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            raw = _toml().loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raise PlmkitError(f"--config {path}: unknown format {suffix!r}", hint="use a .toml, .yaml or .yml file")
    except PlmkitError:
        raise
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError
        raise PlmkitError(f"--config {path} is not valid {suffix[1:].upper()}: {' '.join(str(e).split())}") from e
    if not isinstance(raw, dict):
        raise PlmkitError(f"--config {path} must hold key = value settings, got {type(raw).__name__}")
    return {_field_name(key, path): value for key, value in raw.items()}


def _toml():
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise PlmkitError("TOML config files need Python 3.11 or the tomli package",
                              hint="pip install tomli, or write the config as YAML") from None
    return tomllib


def _field_name(key: str, path: Path) -> str:
    name = str(key).replace("-", "_")
    if name in FIELDS:
        return name
    close = difflib.get_close_matches(name, list(FIELDS), n=1)
    hint = f"did you mean {close[0].replace('_', '-')!r}?" if close else \
        f"known keys: {', '.join(n.replace('_', '-') for n in FIELDS)}"
    raise PlmkitError(f"--config {path}: unknown key {key!r}", hint=hint)


INTS = ("max_steps", "max_tokens", "batch_size", "grad_accum", "warmup", "eval_every", "save_every", "keep_last",
        "log_every", "seed", "num_workers")
FLOATS = ("epochs", "lr", "min_lr", "weight_decay", "clip")
BOOLS = ("compile", "fsdp")


def coerce(name: str, value: Any) -> Any:
    """Turn a config-file value into the field's type (YAML reads `1e-3` as a string).

    >>> coerce("max_steps", 100.0), coerce("lr", "1e-3"), coerce("compile", "true")
    (100, 0.001, True)
    """
    if value is None:
        return None
    try:
        if name in INTS:
            number = float(value)
            if not math.isfinite(number) or number != int(number):
                raise ValueError
            return int(number)
        if name in FLOATS:
            return float(value)
        if name in BOOLS:
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if not isinstance(value, bool):
                raise ValueError
            return value
    except (TypeError, ValueError):
        kind = "a whole number" if name in INTS else "a number" if name in FLOATS else "true or false"
        raise PlmkitError(f"{flag(name)} must be {kind}, got {value!r}") from None
    return value


def resolve(file_values: dict[str, Any], typed: dict[str, Any]) -> TrainConfig:
    """Defaults, overridden by the config file, overridden by flags typed on the command line."""
    values = {name: coerce(name, value) for name, value in {**file_values, **typed}.items()}
    return validate(TrainConfig(**values))


def compare_for_resume(saved: dict[str, Any], now: TrainConfig, where: str) -> list[str]:
    """Refuse a resume whose settings would change the trajectory; return the benign changes."""
    changed = []
    for name, value in now.to_dict().items():
        old = saved.get(name)
        if name in ("data", "out", "init_from"):  # paths: the data fingerprint is checked separately
            continue
        if _same(old, value):
            continue
        if name not in RESUMABLE_CHANGES:
            raise PlmkitError(
                f"{flag(name)} {value!r} differs from {old!r} that the run in {where} was started with",
                hint="rerun with the same settings to resume, pass --force to start over, or choose another --out",
            )
        changed.append(name)
    return changed


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
