"""`plmkit quickstart`: the whole pipeline on the bundled corpus, sized for a laptop CPU.

    corpus ──tokenize──▶ OUT/tok ──build-data──▶ OUT/data-<objective> ──train──▶ OUT/run-<family> ──▶ eval, generate

Each directory is the ordinary output of its stage, written by the same library functions the
commands call, so a user can continue from any of them with the ordinary commands
(`continue_commands` spells them out, and `OUT/run-<family>.toml` holds the training settings
for `plmkit train --config`). With several families, those whose tokenizer kind is the same
share one tokenizer (`OUT/tok-<kind>`), and shards are shared when tokenizer, objective and
options agree; a data directory is named `data-<objective>-<kind>` only when two tokenizers
would otherwise both write `data-<objective>`.

Sizes (measured on the bundled corpus, whose 386 documents give GPT's BPE 59k training tokens):
every family trains its `small` preset narrowed to 128 wide and 4 layers (T5: 3 + 3), with
6000-token vocabularies, batches of 8 rows of 64 tokens, 1600 steps (300 each under `--family
all`), dropout and weight decay 0.1. Why these:
- Vocabulary. With 2000 tokens most corpus words are several pieces, and a model this small
  strings pieces into made-up words: 63% of the English words GPT sampled occurred in the
  corpus. With 6000 most corpus words are one token: 94%.
- Batch. At this scale small batches learn more per token: at equal tokens, batches of 4 or 8
  rows reached a lower training loss than 16 (5.18 and 5.28 against 5.36 after ~330k tokens).
- Regularisation. The corpus is tiny, so the validation loss bottoms out early and rises while
  the model memorises; dropout and weight decay 0.1 hold it lower (6.3 instead of 7.0 with 4000
  tokens) without fewer corpus words in the samples. With 6000 tokens GPT's validation loss is
  lowest at step 400 (6.47) and ends at 7.32 (perplexity ~1500) after 1600 steps, while the
  training loss falls to 4.7: the schedule is chosen for samples that read as corpus text (91%
  corpus words), not for the validation figure, which the summary shows as it is.
`bench/quickstart.py` measures the wall and CPU time of each family.

Samples come from the corpus itself, so they fit whatever corpus is given: the first sentence
of a few documents spread over it, cut to its first words for continuation (GPT, LLaMA), or with
one word blanked out for filling (T5 `<extra_id_0>`, GLM
`[MASK]`, encoders `[MASK]`/`<mask>`), the blanked word kept to show next to the fill.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from plmkit.errors import PlmkitError, check
from plmkit.progress import NULL, Progress

FAMILIES = ("gpt", "llama", "bert", "roberta", "albert", "t5", "glm")
DEFAULT_FAMILY = "gpt"
DEFAULT_OUT = "runs/quickstart"
VALIDATION_FRACTION = 0.05  # ~20 of the bundled corpus's 386 documents
NUM_SAMPLES = 3

_NARROW = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 512,
           "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}


@dataclass(frozen=True)
class Recipe:
    """How quickstart runs one family: tokenizer, shards, model and schedule.

    `steps` is the schedule when the family runs alone, `brief_steps` under `--family all`.
    """

    family: str
    preset: str  # tokenizer preset; its kind decides which families share a tokenizer
    vocab_size: int
    objective: str
    steps: int
    brief_steps: int
    lr: float
    warmup: int
    data_options: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    seq_len: int = 64
    batch_size: int = 8
    weight_decay: float = 0.1

    @property
    def model(self) -> str:
        return f"{self.family}:small"

    @property
    def model_overrides(self) -> dict[str, Any]:
        return {**_NARROW, **self.overrides}


RECIPES: dict[str, Recipe] = {r.family: r for r in (
    Recipe("gpt", "gpt", 6000, "clm", steps=1600, brief_steps=300, lr=3e-3, warmup=20),
    Recipe("llama", "llama", 6000, "clm", steps=1600, brief_steps=300, lr=3e-3, warmup=20,
           overrides={"num_key_value_heads": 2, "intermediate_size": 344}),
    # Encoders: post-LN BERT/RoBERTa/ALBERT want a lower peak and a longer warm-up than the decoders.
    Recipe("bert", "bert", 6000, "nsp", steps=1600, brief_steps=300, lr=1e-3, warmup=40),
    Recipe("roberta", "roberta", 6000, "mlm", steps=1600, brief_steps=300, lr=1e-3, warmup=40,
           data_options={"dynamic": True}),
    Recipe("albert", "albert", 6000, "sop", steps=1600, brief_steps=300, lr=1e-3, warmup=40,
           overrides={"embedding_size": 64}),
    Recipe("t5", "t5", 6000, "t5-span", steps=1600, brief_steps=300, lr=3e-3, warmup=20,
           overrides={"num_hidden_layers": 3, "intermediate_size": 256}),
    Recipe("glm", "glm", 6000, "glm", steps=1600, brief_steps=300, lr=2e-3, warmup=20),
)}


# ---------------------------------------------------------------------------------- the plan


@dataclass
class TokenizerStep:
    path: Path
    preset: str
    vocab_size: int
    families: list[str]


@dataclass
class DataStep:
    path: Path
    tokenizer: TokenizerStep
    objective: str
    options: dict[str, Any]
    seq_len: int
    train_rows: int | None = None  # known once built: a small corpus may have fewer rows than a batch


@dataclass
class RunStep:
    family: str
    path: Path
    data: DataStep
    recipe: Recipe
    steps: int

    @property
    def config_file(self) -> Path:
        return self.path.with_name(self.path.name + ".toml")

    def train_config(self):
        from plmkit.train.config import TrainConfig

        r = self.recipe
        batch_size = min(r.batch_size, self.data.train_rows or r.batch_size)
        return TrainConfig(data=str(self.data.path), model=r.model, out=str(self.path), max_steps=self.steps,
                           batch_size=batch_size, lr=r.lr, warmup=min(r.warmup, max(1, self.steps // 10)),
                           min_lr=r.lr / 10, weight_decay=r.weight_decay, eval_every=0, save_every=0, keep_last=1,
                           model_overrides=r.model_overrides)


@dataclass
class Plan:
    out: Path
    corpus: list[str]
    tokenizers: list[TokenizerStep]
    data: list[DataStep]
    runs: list[RunStep]


def _kind(preset: str) -> str:
    from plmkit.tokenization.presets import PRESETS

    return PRESETS[preset].kind


def parse_families(family: str) -> list[str]:
    """`all` → every family; otherwise one of them (a one-line error naming the choices)."""
    if family == "all":
        return list(FAMILIES)
    check(family in FAMILIES, f"--family {family!r} is not a model family",
          f"choose one of {', '.join(FAMILIES)} or all")
    return [family]


def make_plan(families: Sequence[str], out: str | os.PathLike, corpus: Sequence[str],
              max_steps: int | None = None) -> Plan:
    """Which tokenizers, shard sets and runs to make, and where (see the module docstring)."""
    out = Path(out)
    recipes = [RECIPES[f] for f in families]
    brief = len(recipes) > 1
    by_kind: dict[str, TokenizerStep] = {}
    for r in recipes:
        kind = _kind(r.preset)
        if kind not in by_kind:  # the first family of a kind names the preset and vocabulary
            name = "tok" if len({_kind(x.preset) for x in recipes}) == 1 else f"tok-{kind}"
            by_kind[kind] = TokenizerStep(out / name, r.preset, r.vocab_size, [])
        by_kind[kind].families.append(r.family)
    kinds_per_objective: dict[str, set[str]] = {}
    for r in recipes:
        kinds_per_objective.setdefault(r.objective, set()).add(_kind(r.preset))
    data: dict[tuple, DataStep] = {}
    runs = []
    for r in recipes:
        kind = _kind(r.preset)
        key = (kind, r.objective, r.seq_len, tuple(sorted(r.data_options.items())))
        if key not in data:
            name = f"data-{r.objective}" + (f"-{kind}" if len(kinds_per_objective[r.objective]) > 1 else "")
            data[key] = DataStep(out / name, by_kind[kind], r.objective, dict(r.data_options), r.seq_len)
        steps = max_steps or (r.brief_steps if brief else r.steps)
        runs.append(RunStep(r.family, out / f"run-{r.family}", data[key], r, steps))
    return Plan(out, [str(c) for c in corpus], list(by_kind.values()), list(data.values()), runs)


# ---------------------------------------------------------------------------------- the corpus


def bundled_corpus() -> list[Path]:
    """The folders of the bundled corpus (`corpora/en`, `corpora/zh`).

    Looked up as package data first (`plmkit/corpora`, for a wheel that ships it), then beside
    the package (the repository's `corpora/`, for a source checkout or an editable install).
    Its README is not part of the text, so the language folders are returned, not `corpora/`.
    """
    here = Path(__file__).resolve().parent
    for root in (here / "corpora", here.parent / "corpora"):
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if root.is_dir() else []
        if folders:
            return folders
    raise PlmkitError("the bundled corpus (corpora/) is not installed with this copy of plmkit",
                      hint="pass your own text with --corpus PATH, or install plmkit from its repository")


def _relative(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (shorter commands to copy)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def _spaced(sentence: str) -> bool:
    return sentence.count(" ") >= 4


def pick_sentences(corpus: Sequence[str], n: int = NUM_SAMPLES, scan: int = 2000) -> list[str]:
    """The first usable sentence of `n` documents spread evenly over the first `scan` documents.

    Usable: at least 6 words (or 12 characters of unspaced text such as Chinese); long ones are
    cut to 16 words / 24 characters.
    """
    from plmkit.corpus import iter_documents, split_sentences

    found = []
    for i, doc in enumerate(iter_documents(list(corpus))):
        if i >= scan:
            break
        for s in split_sentences(doc)[:3]:
            words = s.split()
            if len(words) >= 6 or (not _spaced(s) and len(s) >= 12):
                found.append(" ".join(words[:16]) if _spaced(s) else s[:24])
                break
    if len(found) <= n:
        return found
    return [found[round(k * (len(found) - 1) / (n - 1))] for k in range(n)] if n > 1 else found[:1]


def lead(sentence: str) -> str:
    """The start of a sentence to continue: 3 words, or 4 characters of unspaced text.

    >>> lead("A tokenizer splits text into pieces."), lead("语言模型可以预测下一个词。")
    ('A tokenizer splits', '语言模型')
    """
    return " ".join(sentence.split()[:3]) if _spaced(sentence) else sentence[:4]


def blank(sentence: str, marker: str, fits=lambda before, word: True) -> tuple[str, str] | None:
    """(sentence with one word replaced by `marker`, the word), or None when no word fits.

    Spaced text: the longest word (letters only) that is neither first nor last and that
    `fits(text_before, word)`; unspaced text: two characters from the middle, or one when
    `fits` refuses two.

    >>> blank("The cat sat on the warm mat today.", "[MASK]")
    ('The cat sat on the [MASK] mat today.', 'warm')
    >>> blank("语言模型可以预测下一个词。", "[MASK]")
    ('语言模型可以[MASK]下一个词。', '预测')
    """
    if not _spaced(sentence):
        mid = len(sentence) // 2
        for width in (2, 1):
            word = sentence[mid:mid + width]
            if _WORD.fullmatch(word) and fits(sentence[:mid], word):
                return sentence[:mid] + marker + sentence[mid + width:], word
        return None
    spans = list(_WORD.finditer(sentence))[1:-1]
    for m in sorted(spans, key=lambda m: (-len(m.group()), m.start())):
        if fits(sentence[:m.start()], m.group()):
            return sentence[:m.start()] + marker + sentence[m.end():], m.group()
    return None


def _single_token(tok):
    """A `fits` test for encoders: one [MASK] predicts one token, so the word must be one."""
    def fits(before: str, word: str) -> bool:
        head = before.rstrip()
        sep = " " if before != head else ""
        return len(tok.encode(head + sep + word)) - len(tok.encode(head)) == 1
    return fits


@dataclass
class Sample:
    """One generated or filled sample, for the summary."""

    prompt: str
    output: str  # the continuation, or the prompt with its blank filled
    original: str | None = None  # the blanked-out word
    candidates: list[tuple[str, float]] | None = None  # encoders: the best tokens for the mask


def make_prompts(family: str, sentences: Sequence[str], tok) -> list[tuple[str, str | None]]:
    """(prompt, blanked word or None) for each sentence, as the family takes them."""
    if family in ("gpt", "llama"):
        return [(lead(s), None) for s in sentences]
    if family in ("bert", "roberta", "albert"):
        marker = "<mask>" if family == "roberta" else "[MASK]"
        found = [blank(s, marker, _single_token(tok)) for s in sentences]
    else:
        found = [blank(s, "<extra_id_0>" if family == "t5" else "[MASK]") for s in sentences]
    return [f for f in found if f is not None]


def samples_of(run: str | os.PathLike, family: str, sentences: Sequence[str]) -> list[Sample]:
    """Generate (decoders), fill spans (T5, GLM) or fill masks (encoders) for the corpus sentences."""
    from plmkit.generate import generate, load_run

    loaded = load_run(run)
    prompts = make_prompts(family, sentences, loaded.tokenizer)
    if not prompts:
        return []
    texts = [p for p, _ in prompts]
    if family in ("bert", "roberta", "albert"):
        results = generate(loaded, texts, top_k=3)
        return [Sample(p, r.text, w, [(c["token"], c["prob"]) for c in r.masks[0]["candidates"]])
                for (p, w), r in zip(prompts, results, strict=True)]
    if family in ("gpt", "llama"):
        results = generate(loaded, texts, max_new_tokens=32, temperature=0.6, top_k=20, repetition_penalty=1.1,
                           seed=0)
    else:
        results = generate(loaded, texts, max_new_tokens=12, temperature=0, seed=0)
    return [Sample(p, r.text, w) for (p, w), r in zip(prompts, results, strict=True)]


# ---------------------------------------------------------------------------------- running it


@dataclass
class FamilyResult:
    family: str
    run: Path
    data: Path
    tokenizer: Path
    steps: int
    metrics: dict[str, Any]
    samples: list[Sample]
    seconds: dict[str, float]  # train, eval, generate


@dataclass
class Report:
    plan: Plan
    families: list[FamilyResult]
    seconds: dict[str, float]  # per tokenizer / data directory (its path), and "total"
    written: list[tuple[str, Path, str]]  # (stage, path, what it holds)


def _check_out(out: Path, plan: Plan, force: bool) -> None:
    """Refuse an OUT that holds stage directories this plan would overwrite, unless `force`."""
    if out.exists() and not out.is_dir():
        raise PlmkitError(f"--out {out} exists and is a file", hint="choose another path")
    paths = [t.path for t in plan.tokenizers] + [d.path for d in plan.data] + [r.path for r in plan.runs]
    taken = [p for p in paths if p.exists() and (not p.is_dir() or any(p.iterdir()))]
    if taken and not force:
        raise PlmkitError(f"--out {out} already holds {', '.join(p.name for p in taken)} from an earlier quickstart",
                          hint="pass --force to start over, or choose another --out")


def write_train_config(step: RunStep) -> Path:
    """`OUT/run-<family>.toml`: the run's settings for `plmkit train --config` (flag names as keys)."""
    from plmkit.manifest import atomic_write_text

    cfg = step.train_config().to_dict()
    overrides = cfg.pop("model_overrides")
    lines = ["# plmkit train --config this file: the settings `plmkit quickstart` trained with.",
             "# Rerun with a larger --max-steps to train further; the run resumes from its last checkpoint."]
    for name, value in cfg.items():
        if value is not None:
            lines.append(f"{name.replace('_', '-')} = {_toml(value)}")
    lines += ["", "[model-overrides]"] + [f"{k} = {_toml(v)}" for k, v in sorted(overrides.items())]
    atomic_write_text(step.config_file, "\n".join(lines) + "\n")
    return step.config_file


def _toml(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


def run_quickstart(families: Sequence[str], *, corpus: Sequence[str] | None = None,
                   out: str | os.PathLike = DEFAULT_OUT, force: bool = False, max_steps: int | None = None,
                   device: str = "auto", progress: Progress = NULL) -> Report:
    """tokenize → build-data → train → eval → generate for each family; returns what the summary shows."""
    from plmkit.data.build import build_data
    from plmkit.data.params import resolve_params
    from plmkit.evaluate import evaluate_run
    from plmkit.tokenization import resolve_spec, train_from_corpus
    from plmkit.train import train

    if max_steps is not None:
        check(isinstance(max_steps, int) and max_steps > 0, f"--max-steps must be a whole number > 0, got {max_steps}")
    corpus = [str(c) for c in corpus] if corpus else [_relative(p) for p in bundled_corpus()]
    plan = make_plan(families, out, corpus, max_steps)
    _check_out(plan.out, plan, force)
    t_all, seconds, written = time.monotonic(), {}, []
    stages = len(plan.tokenizers) + len(plan.data) + 3 * len(plan.runs)
    counter = iter(range(1, stages + 1))

    def header(what: str) -> None:
        progress.log(f"── {next(counter)}/{stages}  {what}")

    for t in plan.tokenizers:
        header(f"tokenize: {t.preset} tokenizer ({_kind(t.preset)}, {t.vocab_size} tokens) → {t.path}")
        t0 = time.monotonic()
        spec = resolve_spec(preset=t.preset, vocab_size=t.vocab_size, allow_smaller_vocab=True)
        m = train_from_corpus(corpus, t.path, spec, force=force, progress=progress)
        seconds[str(t.path)] = time.monotonic() - t0
        if m["vocab_size"] < t.vocab_size:
            progress.log(f"the corpus filled only {m['vocab_size']} of the {t.vocab_size} tokens asked for")
        written.append(("tokenizer", t.path, f"{m['kind']}, {m['vocab_size']} tokens"))
    for d in plan.data:
        header(f"build-data: {d.objective} shards of {d.seq_len} tokens → {d.path}")
        t0 = time.monotonic()
        params = resolve_params(d.objective, seq_len=d.seq_len, validation_fraction=VALIDATION_FRACTION, **d.options)
        m = build_data(corpus, d.tokenizer.path, d.path, params, force=force, progress=progress)
        seconds[str(d.path)] = time.monotonic() - t0
        d.train_rows = m["counts"]["train"]["examples"]
        written.append(("data", d.path, f"{d.objective}: {m['counts']['train']['examples']:,} training and "
                                        f"{m['counts']['validation']['examples']:,} validation examples"))
    sentences = pick_sentences(corpus)
    results = []
    for r in plan.runs:
        results.append(_run_family(r, sentences, force, device, header, progress, train, evaluate_run))
        written.append(("run", r.path, f"{r.family} model, {r.steps} steps; settings in {r.config_file.name}"))
    seconds["total"] = time.monotonic() - t_all
    return Report(plan, results, seconds, written)


def _run_family(r: RunStep, sentences, force, device, header, progress, train, evaluate_run) -> FamilyResult:
    cfg = replace(r.train_config(), device=device)
    write_train_config(r)
    shape = r.recipe.model_overrides
    header(f"train: {r.family} ({r.recipe.model} narrowed to {shape['hidden_size']} wide, "
           f"{shape['num_hidden_layers']} layers) for {r.steps} steps of {cfg.batch_size} × {r.data.seq_len} tokens "
           f"→ {r.path}")
    t0 = time.monotonic()
    train(cfg, progress, force=force)
    t_train = time.monotonic() - t0
    header(f"eval: {r.family} on {r.data.path / 'validation'}")
    t0 = time.monotonic()
    metrics = evaluate_run(r.path, r.data.path, device=device)
    t_eval = time.monotonic() - t0
    header(f"generate: {r.family} samples from {r.path}")
    t0 = time.monotonic()
    samples = samples_of(r.path, r.family, sentences)
    t_gen = time.monotonic() - t0
    return FamilyResult(r.family, r.path, r.data.path, r.data.tokenizer.path, r.steps, metrics, samples,
                        {"train": t_train, "eval": t_eval, "generate": t_gen})


# ---------------------------------------------------------------------------------- continuing


def _q(x: Any) -> str:
    return shlex.quote(str(x))


def _flag_value(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag] if value else []
    return [flag, str(value)]


def continue_commands(plan: Plan) -> list[tuple[str, str]]:
    """(what it does, the command) to redo or continue each stage with the ordinary commands."""
    corpus = " ".join(_q(c) for c in plan.corpus)
    cmds = []
    for t in plan.tokenizers:
        cmds.append((f"retrain the {_kind(t.preset)} tokenizer",
                     f"plmkit tokenize {corpus} --preset {t.preset} --vocab-size {t.vocab_size} "
                     f"--allow-smaller-vocab --out {_q(t.path)} --force"))
    for d in plan.data:
        options = " ".join(_q(x) for k, v in d.options.items() for x in _flag_value(k, v))
        cmds.append((f"rebuild the {d.objective} shards (e.g. another --seq-len)",
                     f"plmkit build-data {corpus} --tokenizer {_q(d.tokenizer.path)} --objective {d.objective} "
                     f"--seq-len {d.seq_len} --validation-fraction {VALIDATION_FRACTION}"
                     + (f" {options}" if options else "") + f" --out {_q(d.path)} --force"))
        cmds.append((f"look at the {d.objective} examples", f"plmkit inspect {_q(d.path)} -n 3"))
    for r in plan.runs:
        cmds.append((f"train {r.family} further (resumes from its last checkpoint)",
                     f"plmkit train --config {_q(r.config_file)} --max-steps {2 * r.steps}"))
        cmds.append((f"evaluate {r.family}", f"plmkit eval {_q(r.path)} --data {_q(r.data.path)}"))
        cmds.append((f"generate with {r.family}", f"plmkit generate {_q(r.path)} --prompt {_q(_example_prompt(r.family))}"))
        if r.family != "glm":
            cmds.append((f"export {r.family} for transformers",
                         f"plmkit export {_q(r.path)} --format hf --out {_q(r.path.with_name('hf-' + r.family))}"))
    return cmds


def _example_prompt(family: str) -> str:
    return {"gpt": "A language model", "llama": "A language model", "t5": "A language model <extra_id_0> words.",
            "glm": "A language model [MASK] words.", "roberta": "A language model <mask> the next word."}.get(
        family, "A language model [MASK] the next word.")
