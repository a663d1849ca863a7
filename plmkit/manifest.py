"""Stage manifests: every stage directory carries a `plmkit.json`.

A manifest records the stage, the plmkit version, the fully resolved parameters, the inputs
(paths, sizes, content hashes) and the fingerprint of the upstream stage. The next stage reads
it with `read_manifest(dir, stage)`, which refuses anything that does not fit with a one-line
`PlmkitError` naming the command that would fix it.

Directories are built under a temporary sibling name and renamed into place when complete
(`staging_dir`), so an interrupted command never leaves something that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plmkit import __version__
from plmkit.errors import PlmkitError

MANIFEST = "plmkit.json"
FORMAT_VERSION = 1

# What produces each stage: quoted in errors so the user knows the fix.
PRODUCER = {
    "tokenizer": "plmkit tokenize CORPUS --out TOK",
    "data": "plmkit build-data CORPUS --tokenizer TOK --objective OBJ --out DATA",
    "run": "plmkit train --data DATA --model FAMILY --out RUN",
    "finetune": "plmkit finetune RUN --task TASK --train FILE --out FT",
}


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def describe_file(path: str | os.PathLike) -> dict[str, Any]:
    """Path, size and content hash of an input file, as recorded in manifests."""
    p = Path(path)
    return {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": sha256_file(p)}


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint_of(content: dict[str, Any]) -> str:
    """sha256 over everything that defines a stage's output (not timestamps, not the fingerprint)."""
    keep = {k: v for k, v in content.items() if k not in ("fingerprint", "created", "elapsed_s")}
    return hashlib.sha256(canonical_json(keep).encode()).hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_manifest(
    directory: str | os.PathLike,
    stage: str,
    params: dict[str, Any],
    inputs: list[dict[str, Any]] | None = None,
    upstream: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write `directory/plmkit.json` and return its content (with its fingerprint).

    `upstream` is the manifest of the stage this one was made from; only its stage, path and
    fingerprint are kept.
    """
    content: dict[str, Any] = {
        "stage": stage,
        "format": FORMAT_VERSION,
        "plmkit_version": __version__,
        "params": params,
        "inputs": inputs or [],
    }
    if upstream is not None:
        content["upstream"] = {
            "stage": upstream["stage"],
            "fingerprint": upstream["fingerprint"],
            "path": upstream.get("path"),
        }
    content.update(extra)
    content["fingerprint"] = fingerprint_of(content)
    content["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    atomic_write_text(Path(directory) / MANIFEST, json.dumps(content, indent=2, ensure_ascii=False, default=str) + "\n")
    return content


def read_manifest(directory: str | os.PathLike, stage: str | tuple[str, ...], flag: str = "") -> dict[str, Any]:
    """Read and validate the manifest of a stage directory.

    `stage` is the stage (or stages) the caller accepts; `flag` names the option that passed
    the directory, so the error can point at it. The returned dict gains `path`.
    """
    stages = (stage,) if isinstance(stage, str) else tuple(stage)
    where = f"{flag} {directory}" if flag else str(directory)
    fix = " or ".join(f"`{PRODUCER[s]}`" for s in stages if s in PRODUCER)
    d = Path(directory)
    if not d.exists():
        raise PlmkitError(f"{where} does not exist", hint=f"create it with {fix}")
    if not d.is_dir():
        raise PlmkitError(f"{where} is a file, not a {stages[0]} directory", hint=f"create one with {fix}")
    mpath = d / MANIFEST
    if not mpath.exists():
        raise PlmkitError(f"{where} has no {MANIFEST}: it is not a finished plmkit {stages[0]} directory",
                          hint=f"create it with {fix}")
    try:
        content = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PlmkitError(f"{mpath} is not valid JSON ({e})", hint=f"recreate the directory with {fix}") from e
    if not isinstance(content, dict) or "stage" not in content:
        raise PlmkitError(f"{mpath} is not a plmkit manifest", hint=f"recreate the directory with {fix}")
    if content.get("format") != FORMAT_VERSION:
        raise PlmkitError(
            f"{mpath} has manifest format {content.get('format')!r}; this plmkit {__version__} reads format {FORMAT_VERSION}",
            hint=f"recreate the directory with {fix}",
        )
    if content["stage"] not in stages:
        raise PlmkitError(f"{where} is a plmkit {content['stage']} directory, expected a {' or '.join(stages)} directory",
                          hint=f"pass the output of {fix}")
    if content.get("fingerprint") != fingerprint_of(content):
        raise PlmkitError(f"{mpath} was edited after it was written (fingerprint mismatch)",
                          hint=f"recreate the directory with {fix}")
    content["path"] = str(d.resolve())
    return content


def require_upstream(manifest: dict[str, Any], upstream: dict[str, Any], what: str, fix: str) -> None:
    """Refuse a pairing of stage directories that were not made from one another."""
    recorded = manifest.get("upstream", {}).get("fingerprint")
    if recorded != upstream["fingerprint"]:
        raise PlmkitError(
            f"{manifest['path']} was built from a different {upstream['stage']} than {upstream['path']} ({what})",
            hint=fix,
        )


def _is_stage_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike, force: bool = False, flag: str = "--out") -> Iterator[Path]:
    """Build a stage directory under a temporary name; rename it to `out` only on success.

    Refuses an existing `out` that is not empty unless `force`; an existing non-plmkit
    directory is only replaced with `force` too. On any exception (Ctrl-C included) the
    temporary directory is removed and `out` is left as it was.
    """
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise PlmkitError(f"{flag} {out} exists and is a file", hint="choose another path")
        if any(out.iterdir()) and not force:
            kind = "a plmkit stage directory" if _is_stage_dir(out) else "a non-empty directory that plmkit did not make"
            raise PlmkitError(f"{flag} {out} already exists ({kind})", hint="pass --force to overwrite it, or choose another path")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PlmkitError(f"cannot create {flag} {out}: {e.strerror}", hint="choose a writable location") from e
    if not os.access(parent, os.W_OK):
        raise PlmkitError(f"cannot write {flag} {out}: {parent} is not writable", hint="choose a writable location")
    tmp = parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
