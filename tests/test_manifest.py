"""Stage manifests: written atomically, validated on read, refused when they do not fit."""

import json

import pytest

from plmkit.errors import PlmkitError
from plmkit.manifest import read_manifest, staging_dir, write_manifest


def test_round_trip_and_fingerprint_is_stable(tmp_path):
    m = write_manifest(tmp_path, "tokenizer", {"vocab_size": 100}, inputs=[{"path": "a", "sha256": "x"}])
    back = read_manifest(tmp_path, "tokenizer")
    assert back["fingerprint"] == m["fingerprint"] and back["params"] == {"vocab_size": 100}
    m2 = write_manifest(tmp_path, "tokenizer", {"vocab_size": 100}, inputs=[{"path": "a", "sha256": "x"}])
    assert m2["fingerprint"] == m["fingerprint"]  # timestamps do not enter the fingerprint


def test_missing_directory_names_the_producing_command(tmp_path):
    with pytest.raises(PlmkitError, match=r"--tokenizer .*does not exist.*plmkit tokenize"):
        read_manifest(tmp_path / "nope", "tokenizer", flag="--tokenizer")


def test_wrong_stage_is_refused(tmp_path):
    write_manifest(tmp_path, "data", {})
    with pytest.raises(PlmkitError, match="is a plmkit data directory, expected a tokenizer"):
        read_manifest(tmp_path, "tokenizer")


def test_unknown_format_version_is_refused(tmp_path):
    write_manifest(tmp_path, "tokenizer", {})
    p = tmp_path / "plmkit.json"
    content = json.loads(p.read_text())
    content["format"] = 99
    p.write_text(json.dumps(content))
    with pytest.raises(PlmkitError, match="format 99"):
        read_manifest(tmp_path, "tokenizer")


def test_hand_edited_manifest_is_refused(tmp_path):
    write_manifest(tmp_path, "tokenizer", {"vocab_size": 100})
    p = tmp_path / "plmkit.json"
    p.write_text(p.read_text().replace("100", "200"))
    with pytest.raises(PlmkitError, match="fingerprint mismatch"):
        read_manifest(tmp_path, "tokenizer")


def test_staging_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "TOK"
    with pytest.raises(RuntimeError), staging_dir(out) as tmp:
        (tmp / "half.json").write_text("{")
        raise RuntimeError("killed")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_staging_dir_refuses_existing_output_without_force(tmp_path):
    out = tmp_path / "TOK"
    out.mkdir()
    (out / "x").write_text("mine")
    with pytest.raises(PlmkitError, match="--out .* already exists .*--force"), staging_dir(out):
        pass
    with staging_dir(out, force=True) as tmp:
        (tmp / "y").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["y"]
