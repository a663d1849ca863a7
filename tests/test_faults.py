"""Bad input and faults over the whole CLI: every case is refused in one line, and leaves nothing behind.

Each case below builds a bad input (a corpus, a damaged stage directory, an out-of-range flag) and
names the command that meets it. The matrix test asserts, for every case:

- a non-zero exit: 1 for a user error, 2 for a value the flag parser itself rejects (`nan` for an
  integer flag);
- exactly one error line on stderr, the last one, naming the file or flag at fault (progress
  lines printed before the failure may precede it; a parser error comes after click's two-line
  usage reminder);
- no traceback, and no "internal error": every user mistake is a `PlmkitError`, not a crash that
  the CLI shell happened to catch;
- no half-written output a later stage would accept: the output directory is absent, or its
  manifest does not validate.

Faults covered elsewhere, not repeated here:
- SIGKILL during `build-data`, then a rerun that completes byte-identical to an uninterrupted build:
  `tests/test_build_data.py::test_sigkill_then_rerun_completes_identically` (subprocess, CLI).
- SIGINT then SIGKILL during `train`, then a rerun through the CLI ending with bit-identical weights
  and metrics: `tests/test_train_resume.py::test_interrupted_and_killed_runs_resume_to_the_same_weights_and_metrics`.

Tests run as root, where a read-only folder does not stop a write; an "output inside a read-only
folder" is therefore an output path below a regular file, which no user can create either.
"""

from __future__ import annotations

import errno
import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from train_helpers import SMALL, data_dir, one_thread, tokenizer_dir

from plmkit.errors import PlmkitError
from plmkit.manifest import read_manifest

# ---------------------------------------------------------------------------------- shared fixtures


@dataclass
class World:
    """Read-only stage directories made once per session; copy before damaging them."""

    tok: Path  # a bert-preset tokenizer (vocabulary 260)
    other_tok: Path  # another tokenizer (vocabulary 270)
    clm: Path  # clm shards made with `tok`
    clm_other: Path  # clm shards made with `other_tok`
    run: Path  # a gpt:tiny run trained 2 steps on `clm` (with its checkpoint)
    run_config: Path  # the `--config` the run was trained with
    hf: Path  # the run exported to a Hugging Face directory


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    from plmkit.cli.export import export_run
    from plmkit.train import train
    from plmkit.train.config import read_config_file, resolve

    root = tmp_path_factory.mktemp("faults")
    clm = data_dir("clm")
    run, config = root / "RUN", root / "run.toml"
    config.write_text(f'data = "{clm}"\nmodel = "gpt:tiny"\nbatch-size = 4\nmax-steps = 2\neval-every = 0\n'
                      "save-every = 0\n[model-overrides]\n" + "".join(f"{k} = {v}\n" for k, v in SMALL.items()))
    with one_thread():
        train(resolve(read_config_file(config), {"out": str(run)}))
    export_run(run, root / "HF")
    return World(tokenizer_dir(), tokenizer_dir(vocab_size=270), clm, data_dir("clm", vocab_size=270), run, config,
                 root / "HF")


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def set_json(path: Path, **changes) -> None:
    content = json.loads(path.read_text())
    content.update(changes)
    path.write_text(json.dumps(content))


def first_shard(data: Path, split: str = "train") -> Path:
    state = json.loads((data / split / "state.json").read_text())
    return data / split / state["_data_files"][0]["filename"]


def write_corpus(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class _Trap:
    """Unpickling this creates `marker`: proof that something unpickled the file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def pickle_trap(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"transformer.wte.weight": _Trap(marker)}))
    return path


# ---------------------------------------------------------------------------------- the cases


@dataclass
class Case:
    """A command that meets bad input, and what its error line must name."""

    args: list
    names: tuple[str, ...]  # substrings of the error line: the file, the flag, the reason
    outputs: list[tuple[str, Path]] = field(default_factory=list)  # (stage, dir) that must not validate
    code: int = 1
    patch: list[tuple[object, str, object]] = field(default_factory=list)  # monkeypatch.setattr(*p)
    never: list[Path] = field(default_factory=list)  # files that must not appear (pickle markers)


CASES: dict[str, Callable[[World, Path], Case]] = {}
XFAIL: dict[str, str] = {}  # case id -> why it fails today (a stage to fix; see the closing report)


def case(fn: Callable[[World, Path], Case]) -> Callable[[World, Path], Case]:
    CASES[fn.__name__] = fn
    return fn


def tokenize_args(corpus, out: Path, *extra) -> list:
    return ["tokenize", corpus, "--preset", "bert", "--vocab-size", "300", "--out", out, *extra]


def build_args(w: World, corpus, out: Path, *extra, objective: str = "clm") -> list:
    return ["build-data", corpus, "--tokenizer", w.tok, "--objective", objective, "--out", out, *extra]


def train_args(w: World, out: Path, *extra, data: Path | None = None) -> list:
    return ["train", "--config", w.run_config, "--data", data or w.clm, "--out", out, *extra]


CORPUS_TEXT = "the cat sat on the mat .\nthe dog ran under the old tree .\n\n" * 40


# corpus files -------------------------------------------------------------------------------------

@case
def tokenize_missing_corpus(w, t):
    return Case(tokenize_args(t / "nope.txt", t / "TOK"), ("nope.txt", "does not exist"), [("tokenizer", t / "TOK")])


@case
def tokenize_empty_corpus(w, t):
    return Case(tokenize_args(write_corpus(t / "empty.txt", b""), t / "TOK"), ("empty.txt", "empty"),
                [("tokenizer", t / "TOK")])


@case
def tokenize_binary_corpus(w, t):
    blob = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    return Case(tokenize_args(write_corpus(t / "blob.bin", blob), t / "TOK"), ("blob.bin", "binary"),
                [("tokenizer", t / "TOK")])


@case
def tokenize_non_utf8_corpus(w, t):
    text = CORPUS_TEXT.encode() + "café au lait\n".encode("latin-1")
    return Case(tokenize_args(write_corpus(t / "latin1.txt", text), t / "TOK"), ("latin1.txt", "UTF-8", "byte offset"),
                [("tokenizer", t / "TOK")])


@case
def tokenize_nul_in_corpus(w, t):
    text = CORPUS_TEXT.encode() + b"a NUL\x00 here\n"
    return Case(tokenize_args(write_corpus(t / "nul.txt", text), t / "TOK"), ("nul.txt", "NUL"),
                [("tokenizer", t / "TOK")])


@case
def tokenize_empty_folder(w, t):
    (t / "folder").mkdir()
    return Case(tokenize_args(t / "folder", t / "TOK"), ("folder", "no files"), [("tokenizer", t / "TOK")])


@case
def build_data_missing_corpus(w, t):
    return Case(build_args(w, t / "nope.txt", t / "D"), ("nope.txt",), [("data", t / "D")])


@case
def build_data_non_utf8_corpus(w, t):
    text = CORPUS_TEXT.encode() + b"\xff\xfe broken\n"
    return Case(build_args(w, write_corpus(t / "bad.txt", text), t / "D"), ("bad.txt", "UTF-8"), [("data", t / "D")])


@case
def build_data_nul_in_corpus(w, t):
    text = CORPUS_TEXT.encode() + b"x\x00y\n"
    return Case(build_args(w, write_corpus(t / "nul.txt", text), t / "D"), ("nul.txt", "NUL"), [("data", t / "D")])


# numeric flags out of range ----------------------------------------------------------------------------

def _tokenize_flag(flag, value, code=1, kind="wordpiece"):
    def make(w, t):
        corpus = write_corpus(t / "c.txt", CORPUS_TEXT.encode())
        return Case(["tokenize", corpus, "--kind", kind, "--vocab-size", "300", flag, value, "--out", t / "TOK"],
                    (flag,), [("tokenizer", t / "TOK")], code=code)
    return make


def _build_flag(objective, *flags):
    def make(w, t):
        corpus = write_corpus(t / "c.txt", CORPUS_TEXT.encode())
        return Case(build_args(w, corpus, t / "D", *flags, objective=objective), (flags[-2],), [("data", t / "D")])
    return make


def _train_flag(flag, value):
    def make(w, t):
        return Case(train_args(w, t / "RUN", flag, value), (flag,), [("run", t / "RUN")])
    return make


def _generate_flag(flag, value):
    def make(w, t):
        return Case(["generate", w.run, "--prompt", "the cat", flag, value], (flag,))
    return make


NUMERIC = {
    "tokenize_vocab_size_negative": _tokenize_flag("--vocab-size", "-5"),
    "tokenize_vocab_size_zero": _tokenize_flag("--vocab-size", "0"),
    "tokenize_vocab_size_nan": _tokenize_flag("--vocab-size", "nan", code=2),
    "tokenize_min_frequency_negative": _tokenize_flag("--min-frequency", "-1"),
    "tokenize_max_sentences_negative": _tokenize_flag("--max-sentences", "-1", kind="unigram"),
    "build_seq_len_zero": _build_flag("clm", "--seq-len", "0"),
    "build_seq_len_negative": _build_flag("clm", "--seq-len", "-8"),
    "build_mask_prob_nan": _build_flag("mlm", "--mask-prob", "nan"),
    "build_mask_prob_zero": _build_flag("mlm", "--mask-prob", "0"),
    "build_validation_fraction_negative": _build_flag("clm", "--validation-fraction", "-0.1"),
    "build_num_proc_zero": _build_flag("clm", "--num-proc", "0"),
    "build_noise_density_nan": _build_flag("t5-span", "--noise-density", "nan"),
    "build_poisson_lambda_negative": _build_flag("glm", "--poisson-lambda", "-3"),
    "build_seq_len_below_glm_minimum": _build_flag("glm", "--seq-len", "7"),
    "build_seq_len_below_nsp_minimum": _build_flag("nsp", "--seq-len", "4"),
    "train_max_steps_zero": _train_flag("--max-steps", "0"),
    "train_max_steps_negative": _train_flag("--max-steps", "-3"),
    "train_lr_nan": _train_flag("--lr", "nan"),
    "train_lr_negative": _train_flag("--lr", "-1e-3"),
    "train_batch_size_zero": _train_flag("--batch-size", "0"),
    "train_grad_accum_zero": _train_flag("--grad-accum", "0"),
    "train_warmup_negative": _train_flag("--warmup", "-1"),
    "train_clip_nan": _train_flag("--clip", "nan"),
    "train_epochs_nan": _train_flag("--epochs", "nan"),
    "train_weight_decay_negative": _train_flag("--weight-decay", "-0.1"),
    "generate_max_new_tokens_zero": _generate_flag("--max-new-tokens", "0"),
    "generate_max_new_tokens_negative": _generate_flag("--max-new-tokens", "-5"),
    "generate_temperature_negative": _generate_flag("--temperature", "-1"),
    "generate_temperature_nan": _generate_flag("--temperature", "nan"),
    "generate_top_p_zero": _generate_flag("--top-p", "0"),
    "generate_top_p_nan": _generate_flag("--top-p", "nan"),
    "generate_top_k_negative": _generate_flag("--top-k", "-1"),
    "generate_repetition_penalty_zero": _generate_flag("--repetition-penalty", "0"),
    "generate_num_samples_zero": _generate_flag("--num-samples", "0"),
}
CASES.update(NUMERIC)


@case
def eval_batch_size_zero(w, t):
    return Case(["eval", w.run, "--data", w.clm, "--batch-size", "0"], ("--batch-size",))


@case
def quickstart_max_steps_zero(w, t):
    return Case(["quickstart", "--max-steps", "0", "--out", t / "qs"], ("--max-steps",), [("tokenizer", t / "qs/tok")])


@case
def quickstart_unknown_family(w, t):
    return Case(["quickstart", "--family", "bart", "--out", t / "qs"], ("--family", "bart"),
                [("tokenizer", t / "qs/tok")])


@case
def quickstart_missing_corpus(w, t):
    return Case(["quickstart", "--corpus", t / "nope.txt", "--out", t / "qs"], ("nope.txt",),
                [("tokenizer", t / "qs/tok")])


# damaged shards and manifests ----------------------------------------------------------------------------

@case
def train_on_zero_byte_shard(w, t):
    data = copy(w.clm, t / "D")
    shard = first_shard(data)
    shard.write_bytes(b"")
    return Case(train_args(w, t / "RUN", data=data), ("D/train",), [("run", t / "RUN")])


@case
def train_on_truncated_shard(w, t):
    data = copy(w.clm, t / "D")
    shard = first_shard(data)
    shard.write_bytes(shard.read_bytes()[:-100])
    return Case(train_args(w, t / "RUN", data=data), ("D/train",), [("run", t / "RUN")])


@case
def eval_on_shards_of_another_tokenizer(w, t):
    return Case(["eval", w.run, "--data", w.clm_other], ("--data", "different tokenizer"))


@case
def train_resume_on_shards_of_another_tokenizer(w, t):
    run = copy(w.run, t / "RUN")
    return Case(train_args(w, run, "--max-steps", "4", data=w.clm_other), ("--out", "other shards"))


@case
def train_on_data_whose_tokenizer_was_swapped(w, t):
    data = copy(w.clm, t / "D")
    shutil.rmtree(data / "tokenizer")
    shutil.copytree(w.other_tok, data / "tokenizer")
    return Case(train_args(w, t / "RUN", data=data), ("D", "tokenizer"), [("run", t / "RUN")])


@case
def build_data_with_tokenizer_manifest_of_unknown_version(w, t):
    tok = copy(w.tok, t / "TOK")
    set_json(tok / "plmkit.json", format=99)
    corpus = write_corpus(t / "c.txt", CORPUS_TEXT.encode())
    return Case(["build-data", corpus, "--tokenizer", tok, "--objective", "clm", "--out", t / "D"],
                ("plmkit.json", "format 99"), [("data", t / "D")])


@case
def train_on_data_manifest_of_unknown_version(w, t):
    data = copy(w.clm, t / "D")
    set_json(data / "plmkit.json", format=99)
    return Case(train_args(w, t / "RUN", data=data), ("plmkit.json", "format 99"), [("run", t / "RUN")])


@case
def generate_with_run_manifest_of_unknown_version(w, t):
    run = copy(w.run, t / "RUN")
    set_json(run / "plmkit.json", format=99)
    return Case(["generate", run, "--prompt", "the cat"], ("plmkit.json", "format 99"))


@case
def eval_with_edited_run_manifest(w, t):
    run = copy(w.run, t / "RUN")
    set_json(run / "plmkit.json", steps=10_000)
    return Case(["eval", run, "--data", w.clm], ("plmkit.json", "edited"))


@case
def eval_with_corrupt_run_manifest(w, t):
    run = copy(w.run, t / "RUN")
    (run / "plmkit.json").write_text('{"stage": "run", "format": 1,')
    return Case(["eval", run, "--data", w.clm], ("plmkit.json", "not valid JSON"))


@case
def train_on_a_tokenizer_instead_of_data(w, t):
    return Case(train_args(w, t / "RUN", data=w.tok), ("--data", "tokenizer"), [("run", t / "RUN")])


@case
def train_a_family_on_the_wrong_objective(w, t):
    return Case(train_args(w, t / "RUN", "--model", "bert:tiny"), ("--data", "clm"), [("run", t / "RUN")])


@case
def train_with_unknown_config_key(w, t):
    config = t / "bad.toml"
    config.write_text(w.run_config.read_text().replace("batch-size", "batch-sise"))
    return Case(["train", "--config", config, "--out", t / "RUN"], ("--config", "batch-sise"), [("run", t / "RUN")])


# damaged runs ----------------------------------------------------------------------------------------------

def _reshaped(path: Path) -> str:
    """Rewrite safetensors `path` with its first matrix transposed; returns that tensor's name."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    name = next(n for n, v in tensors.items() if v.dim() == 2 and v.shape[0] != v.shape[1])
    tensors[name] = tensors[name].t().contiguous()
    save_file(tensors, str(path), metadata={"format": "pt"})
    return name


def _checkpoint(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("step-*"))[-1]


@case
def train_resume_from_checkpoint_with_misshaped_tensor(w, t):
    run = copy(w.run, t / "RUN")
    name = _reshaped(_checkpoint(run) / "model.safetensors")
    return Case(train_args(w, run, "--max-steps", "4"), (_checkpoint(run).name, name, "shape"))


@case
def generate_with_misshaped_weights(w, t):
    run = copy(w.run, t / "RUN")
    name = _reshaped(run / "model.safetensors")
    return Case(["generate", run, "--prompt", "the cat"], ("model.safetensors", name, "shape"))


@case
def generate_without_weights(w, t):
    run = copy(w.run, t / "RUN")
    (run / "model.safetensors").unlink()
    return Case(["generate", run, "--prompt", "the cat"], ("model.safetensors",))


@case
def eval_without_weights(w, t):
    run = copy(w.run, t / "RUN")
    (run / "model.safetensors").unlink()
    return Case(["eval", run, "--data", w.clm], ("model.safetensors",))


@case
def export_without_weights(w, t):
    run = copy(w.run, t / "RUN")
    (run / "model.safetensors").unlink()
    return Case(["export", run, "--out", t / "HF"], ("model.safetensors",))


@case
def generate_with_empty_prompt(w, t):
    return Case(["generate", w.run, "--prompt", "  "], ("--prompt", "empty"))


# pickles where plmkit looks for weights (never unpickled) ---------------------------------------------------

@case
def generate_with_pickle_as_weights(w, t):
    run = copy(w.run, t / "RUN")
    pickle_trap(run / "model.safetensors", t / "UNPICKLED")
    return Case(["generate", run, "--prompt", "the cat"], ("model.safetensors",), never=[t / "UNPICKLED"])


@case
def train_init_from_hf_dir_with_pickled_weights(w, t):
    hf = copy(w.hf, t / "HF")
    (hf / "model.safetensors").unlink()
    pickle_trap(hf / "pytorch_model.bin", t / "UNPICKLED")
    return Case(train_args(w, t / "RUN", "--init-from", hf), ("HF", "pytorch_model.bin"), [("run", t / "RUN")],
                never=[t / "UNPICKLED"])


@case
def train_resume_from_pickled_optimizer_state(w, t):
    run = copy(w.run, t / "RUN")
    pickle_trap(_checkpoint(run) / "optimizer.safetensors", t / "UNPICKLED")
    return Case(train_args(w, run, "--max-steps", "4"), (_checkpoint(run).name,), never=[t / "UNPICKLED"])




# outputs that cannot be written (below a regular file: root ignores read-only modes) ------------------------

def _blocker(t: Path) -> Path:
    (t / "file").write_text("not a folder\n")
    return t / "file"


@case
def tokenize_out_below_a_file(w, t):
    corpus = write_corpus(t / "c.txt", CORPUS_TEXT.encode())
    return Case(tokenize_args(corpus, _blocker(t) / "TOK"), ("--out", "file/TOK"))


@case
def build_data_out_below_a_file(w, t):
    corpus = write_corpus(t / "c.txt", CORPUS_TEXT.encode())
    return Case(build_args(w, corpus, _blocker(t) / "D"), ("--out", "file/D"))


@case
def train_out_below_a_file(w, t):
    return Case(train_args(w, _blocker(t) / "RUN"), ("--out", "file/RUN"))


@case
def export_out_below_a_file(w, t):
    return Case(["export", w.run, "--out", _blocker(t) / "HF"], ("--out", "file/HF"))


@case
def quickstart_out_below_a_file(w, t):
    return Case(["quickstart", "--out", _blocker(t) / "qs"], ("--out", "file/qs"))


# a full disk while the shards are written --------------------------------------------------------------------

def _no_space(self, block):
    raise OSError(errno.ENOSPC, "No space left on device")


@case
def build_data_disk_full_while_writing_shards(w, t):
    from plmkit.data.shards import ShardWriter

    corpus = write_corpus(t / "c.txt", CORPUS_TEXT.encode())
    return Case(build_args(w, corpus, t / "D"), ("D", "No space left on device"), [("data", t / "D")],
                patch=[(ShardWriter, "write", _no_space)])




# ---------------------------------------------------------------------------------- the matrix


def assert_not_accepted(stage: str, path: Path) -> None:
    """Nothing at `path`, or nothing whose manifest validates as a finished `stage` directory."""
    if path.exists():
        with pytest.raises(PlmkitError):
            read_manifest(path, stage)


def error_line(code: int, err: str) -> str:
    """The one error line of stderr, which must be its last line."""
    lines = err.rstrip().splitlines()
    prefix = "error:" if code == 1 else "Error:"
    errors = [line for line in lines if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith(prefix), err
    return errors[0]


def _params():
    for name, make in CASES.items():
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[name])] if name in XFAIL else []
        yield pytest.param(make, id=name, marks=marks)


def test_the_matrix_has_the_cases_the_issue_asks_for():
    assert len(CASES) >= 30
    for needed in ("tokenize_missing_corpus", "tokenize_empty_corpus", "tokenize_binary_corpus",
                   "tokenize_non_utf8_corpus", "tokenize_nul_in_corpus", "train_on_zero_byte_shard",
                   "train_on_truncated_shard", "eval_on_shards_of_another_tokenizer",
                   "train_on_data_manifest_of_unknown_version", "train_resume_from_checkpoint_with_misshaped_tensor",
                   "generate_without_weights", "build_seq_len_below_glm_minimum", "build_data_out_below_a_file",
                   "build_data_disk_full_while_writing_shards", "generate_with_pickle_as_weights"):
        assert needed in CASES


@pytest.mark.parametrize("make", _params())
def test_bad_input_is_refused_in_one_line_and_leaves_nothing_behind(make, world, tmp_path, run_cli, monkeypatch):
    c = make(world, tmp_path)
    for target, name, value in c.patch:
        monkeypatch.setattr(target, name, value)
    with one_thread():
        code, out, err = run_cli(*c.args)
    assert code == c.code, (code, out, err)
    assert "Traceback" not in out + err
    line = error_line(code, err)
    assert "internal error" not in line, line
    for name in c.names:
        assert name in line, f"{name!r} not in {line!r}"
    for stage, path in c.outputs:
        assert_not_accepted(stage, path)
    for path in c.never:
        assert not path.exists(), f"{path} appeared: a pickle was loaded"
