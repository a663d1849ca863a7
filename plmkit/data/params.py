"""The parameters of `plmkit build-data`: per-objective options, their defaults and their checks.

Each objective accepts its own options; the others are refused (a flag that would be silently
ignored is a mistake). `resolve_params` fills the defaults and returns the flat dict recorded
in `DATA/plmkit.json` under `params`, the one source of truth for the build, the loader and
`--merge`:

    >>> p = resolve_params("clm", seq_len=64)
    >>> p["objective"], p["seq_len"], p["bos"], p["drop_remainder"], "mask_prob" in p
    ('clm', 64, False, False, False)
    >>> resolve_params("clm", seq_len=64, noise_density=0.2)
    Traceback (most recent call last):
    ...
    plmkit.errors.PlmkitError: --noise-density does not apply to --objective clm (it is an option of t5-span)
"""

from __future__ import annotations

import math
from typing import Any

from plmkit.data.objectives.spans import t5_input_target_lengths, t5_num_noise_spans
from plmkit.data.shards import OBJECTIVES
from plmkit.errors import PlmkitError, check

_MASKING = {"mask_prob": 0.15, "max_predictions": None, "mask_replace": 0.8, "random_replace": 0.1,
            "whole_word": False, "ngram": 1}

# Objective options and their defaults (reference defaults: data-objectives.md §0.1).
OBJECTIVE_OPTIONS: dict[str, dict[str, Any]] = {
    "mlm": {**_MASKING, "dynamic": False, "cross_documents": False},
    "nsp": {**_MASKING, "short_seq_prob": 0.1},
    # ALBERT: whole-word n-grams, n ≤ 3.
    "sop": {**_MASKING, "whole_word": True, "ngram": 3, "short_seq_prob": 0.1},
    "t5-span": {"noise_density": 0.15, "mean_span": 3.0},
    "glm": {"mask_prob": 0.15, "poisson_lambda": 3.0},
    "clm": {"bos": False, "drop_remainder": False},
}

# Special-token roles each objective writes into its rows.
ROLES_NEEDED = {
    "mlm": ("cls", "sep", "mask"), "nsp": ("cls", "sep", "mask"), "sop": ("cls", "sep", "mask"),
    "t5-span": ("eos",), "glm": ("cls", "eos", "mask", "sop", "eop"), "clm": ("eos",),
}

# How work is cut (documents per chunk, characters per chunk, chunks per shard). They decide
# where cross-document packing restarts, so they are parameters of the output, recorded too.
LAYOUT = {"chunk_docs": 256, "chunk_chars": 1 << 17, "shard_chunks": 64}

MAX_SEQ_LEN = 1 << 20


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolve_params(objective: str, *, seq_len: int, seed: int = 0, validation_fraction: float = 0.01,
                   doc_per_line: bool = False, text_field: str = "text", encoding_errors: str = "strict",
                   **options: Any) -> dict[str, Any]:
    """Every parameter of a build, defaults filled; options left None count as not given."""
    check(objective in OBJECTIVES, f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    allowed = OBJECTIVE_OPTIONS[objective]
    given = {k: v for k, v in options.items() if v is not None}
    for name in given:
        if name in LAYOUT:
            continue
        if name not in allowed:
            owners = [o for o, opts in OBJECTIVE_OPTIONS.items() if name in opts]
            check(bool(owners), f"unknown build-data option {flag(name)}")
            raise PlmkitError(f"{flag(name)} does not apply to --objective {objective} "
                              f"(it is an option of {', '.join(owners)})")
    params = {"objective": objective, "seq_len": seq_len, "seed": seed, "validation_fraction": validation_fraction,
              **allowed, **{k: v for k, v in given.items() if k in allowed}}
    params["corpus"] = {"doc_per_line": doc_per_line, "text_field": text_field, "encoding_errors": encoding_errors}
    params["layout"] = {**LAYOUT, **{k: v for k, v in given.items() if k in LAYOUT}}
    check_params(params)
    return params


def _number(name: str, value: Any, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False,
            open_hi: bool = False, integer: bool = False) -> None:
    """One bound check with a message that names the flag and the allowed range."""
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (not integer or float(value).is_integer())
    ok = ok and (lo is None or (value > lo if open_lo else value >= lo))
    ok = ok and (hi is None or (value < hi if open_hi else value <= hi))
    if not ok:
        if hi is None:
            where = f"{'above' if open_lo else 'at least'} {_num(lo)}"
        else:
            where = f"in {'(' if open_lo else '['}{_num(lo)}, {_num(hi)}{')' if open_hi else ']'}"
        raise PlmkitError(f"{flag(name)} must be {'an integer ' if integer else ''}{where}, got {value}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def check_params(p: dict[str, Any]) -> None:
    """Range checks of every numeric option (NaN and infinities included), then the seq-len minimum."""
    _number("seq_len", p["seq_len"], 1, MAX_SEQ_LEN, integer=True)
    _number("seed", p["seed"], 0, 2**63 - 1, integer=True)
    _number("validation_fraction", p["validation_fraction"], 0, 1, open_hi=True)
    _number("mask_prob", p.get("mask_prob"), 0, 1, open_lo=True, open_hi=True)
    _number("max_predictions", p.get("max_predictions"), 1, integer=True)
    _number("mask_replace", p.get("mask_replace"), 0, 1)
    _number("random_replace", p.get("random_replace"), 0, 1)
    if "mask_replace" in p:
        check(p["mask_replace"] + p["random_replace"] <= 1 + 1e-12,
              f"--mask-replace {p['mask_replace']} + --random-replace {p['random_replace']} must not exceed 1",
              "the rest of the selected tokens are kept unchanged")
    _number("ngram", p.get("ngram"), 1, 10, integer=True)
    _number("short_seq_prob", p.get("short_seq_prob"), 0, 1)
    _number("noise_density", p.get("noise_density"), 0, 1, open_lo=True, open_hi=True)
    _number("mean_span", p.get("mean_span"), 1, 1000)
    _number("poisson_lambda", p.get("poisson_lambda"), 0, 100, open_lo=True)
    for name, value in p["layout"].items():
        _number(name, value, 1, integer=True)
    check(p["corpus"]["encoding_errors"] in ("strict", "replace"),
          f"--encoding-errors must be strict or replace, got {p['corpus']['encoding_errors']!r}")
    minimum = min_seq_len(p)
    check(p["seq_len"] >= minimum, f"--seq-len {p['seq_len']} is too short for --objective {p['objective']}: "
          f"the minimum is {minimum}", _MIN_WHY[p["objective"]])


_MIN_WHY = {
    "mlm": "[CLS] + at least one token + [SEP]",
    "nsp": "[CLS] A [SEP] B [SEP] with A and B of at least one token",
    "sop": "[CLS] A [SEP] B [SEP] with A and B of at least one token",
    "t5-span": "inputs of exactly --seq-len tokens need at least one noise span of the given density",
    "glm": "[CLS], a span's [MASK], its <|startofpiece|> piece and the text around it",
    "clm": "a block must hold a token and its successor",
}


def min_seq_len(p: dict[str, Any]) -> int:
    """The shortest `--seq-len` each objective can fill.

    >>> min_seq_len({"objective": "mlm"}), min_seq_len({"objective": "nsp"}), min_seq_len({"objective": "glm"})
    (3, 5, 8)
    >>> min_seq_len({"objective": "t5-span", "noise_density": 0.15, "mean_span": 3.0})
    10
    """
    objective = p["objective"]
    if objective == "t5-span":
        return t5_min_seq_len(p["noise_density"], p["mean_span"])
    return {"mlm": 3, "nsp": 5, "sop": 5, "glm": 8, "clm": 2}[objective]


def t5_min_seq_len(noise_density: float, mean_span: float) -> int:
    """Smallest inputs length whose raw chunk has at least one noise token and one span, so that
    T5's length helper (which rounds those counts) agrees with the corruption itself."""
    for length in range(2, MAX_SEQ_LEN):
        raw, _ = t5_input_target_lengths(length, noise_density, mean_span)
        noise = round(raw * noise_density)
        if 1 <= noise <= raw - 1 and round(noise / mean_span) >= 1:
            return length
    raise PlmkitError(f"--noise-density {noise_density} with --mean-span {mean_span} never yields a noise span")


def t5_spans_per_example(p: dict[str, Any]) -> int:
    """Noise spans in one full T5 chunk: each needs its own sentinel token."""
    raw, _ = t5_input_target_lengths(p["seq_len"], p["noise_density"], p["mean_span"])
    return t5_num_noise_spans(raw, p["noise_density"], p["mean_span"])[1]
