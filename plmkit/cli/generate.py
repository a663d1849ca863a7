"""`plmkit generate`: continue a prompt, fill T5/GLM blanks, or rank candidates for encoder masks.

Results go to stdout (text, a table, or with `--json` one JSON document); notes go to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from plmkit.cli.app import app
from plmkit.errors import PlmkitError, check

EPILOG = (
    "Example: plmkit generate runs/gpt --prompt 'The old tree' --max-new-tokens 40 --temperature 0.8  ·  "
    "plmkit generate runs/bert --prompt 'The cat \\[MASK] on the mat.' --fill  ·  "
    "plmkit generate runs/t5 --prompt-file prompts.txt --json"
)


@app.command("generate", epilog=EPILOG)
def generate_command(
    run: Annotated[Path, typer.Argument(help="A run directory written by `plmkit train`.", show_default=False)],
    prompt: Annotated[list[str] | None, typer.Option(
        "--prompt", "-p", help="Prompt text (repeatable). Blanks: \\[MASK]/<mask> (encoders, T5, GLM), "
        "<extra_id_N> (T5), \\[gMASK]/\\[sMASK] (GLM).", show_default=False)] = None,
    prompt_file: Annotated[str | None, typer.Option(
        "--prompt-file", help="One prompt per line, run in batches; - reads stdin.", show_default=False)] = None,
    max_new_tokens: Annotated[int, typer.Option(help="New tokens per continuation, T5 output or GLM blank.")] = 64,
    temperature: Annotated[float, typer.Option(help="Sampling temperature; 0 = greedy.")] = 0.8,
    top_k: Annotated[int | None, typer.Option(
        help="Sample from the k most likely tokens (0 = off); encoders: candidates shown per mask (default 5).",
        show_default=False)] = None,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass in (0, 1]; 1 = off.")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option(help="Penalty on tokens already seen; 1 = off.")] = 1.0,
    num_samples: Annotated[int, typer.Option(help="Samples per prompt (needs --temperature > 0).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same samples.")] = 0,
    stop: Annotated[list[str] | None, typer.Option(
        "--stop", help="End a continuation (or GLM blank) at this text (repeatable).", show_default=False)] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print text as it is generated (one prompt).")] = False,
    fill: Annotated[bool, typer.Option("--fill", help="Encoders: print the prompt with the best candidates.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document with every result.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Prompts × samples decoded together.")] = 16,
) -> None:
    """Generate with a trained run: GPT/LLaMA continue the prompt; T5 fills its sentinels (or answers
    seq2seq); GLM fills \\[MASK]/\\[gMASK] blanks; BERT/RoBERTa/ALBERT list candidates for each \\[MASK]."""
    prompts = read_prompts(prompt or [], prompt_file)
    check(not (stream and as_json), "--stream and --json do not go together", "drop one of them")
    check(not stream or len(prompts) * num_samples == 1,
          f"--stream shows one generation as it is made, but there are {len(prompts) * num_samples}",
          "pass one prompt with --num-samples 1, or drop --stream")
    from plmkit.finetune import is_finetuned

    if is_finetuned(run):  # FT/ of `plmkit finetune`: each prompt's label(s) with probabilities
        from plmkit.cli.finetune import predict_finetuned

        return predict_finetuned(run, prompts, batch_size=batch_size, device=device, as_json=as_json)
    from plmkit import ui
    from plmkit.generate import ENCODER_FAMILIES, Sampling, generate, load_run

    Sampling(max_new_tokens, temperature, top_k or 0, top_p, repetition_penalty, num_samples, seed, tuple(stop or ()))
    loaded = load_run(run, device)
    stream_to = StreamPrinter(ui.out, prompts[0], loaded.family) if stream and loaded.family not in ENCODER_FAMILIES \
        else None
    results = generate(loaded, prompts, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                       top_p=top_p, repetition_penalty=repetition_penalty, num_samples=num_samples, seed=seed,
                       stop=stop or (), batch_size=batch_size, on_text=stream_to)
    if as_json:
        settings = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_k": top_k, "top_p": top_p,
                    "repetition_penalty": repetition_penalty, "num_samples": num_samples, "seed": seed,
                    "stop": list(stop or [])}
        doc = {"run": str(run), "family": loaded.family, "settings": settings,
               "results": [r.to_dict() for r in results]}
        ui.out.print(json.dumps(doc, ensure_ascii=False, indent=2), markup=False, highlight=False, soft_wrap=True)
    elif loaded.family in ENCODER_FAMILIES:
        show_candidates(ui, results, fill)
    elif stream_to is not None:
        stream_to.finish(results[0])
    else:
        show_texts(ui, results, num_samples)
    for i, r in enumerate(results):
        if r.finish_reason == "context":
            ui.warn(f"result {i + 1} stopped at the model's context ({loaded.cfg.max_position_embeddings} positions)")


def read_prompts(prompts: list[str], prompt_file: str | None) -> list[str]:
    """--prompt values, then the non-blank lines of --prompt-file (- = stdin)."""
    prompts = list(prompts)
    if prompt_file is not None:
        if prompt_file == "-":
            text = sys.stdin.read()
        else:
            path = Path(prompt_file)
            check(path.is_file(), f"--prompt-file {prompt_file} does not exist", "give a text file, one prompt a line")
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise PlmkitError(f"--prompt-file {prompt_file} is not UTF-8 text ({e.reason})") from None
        lines = [line for line in text.splitlines() if line.strip()]
        check(len(lines) > 0, f"--prompt-file {prompt_file} has no prompts", "write one prompt per line")
        prompts += lines
    check(len(prompts) > 0, "no prompt given", "pass --prompt TEXT or --prompt-file FILE (- reads stdin)")
    return prompts


class StreamPrinter:
    """`on_text` for one generation. A continuation prints the prompt, then the new text; a T5
    answer just the text; blanks print as `[k] …` as they are made, then the filled prompt."""

    def __init__(self, console, prompt: str, family: str):
        from plmkit.generate import parse_prompt

        self.console, self.blank = console, None
        self.mode = "blanks" if parse_prompt(prompt).blanks else "answer" if family == "t5" else "continue"
        if self.mode == "continue":
            self._write(prompt, style="bold")

    def _write(self, text: str, style: str | None = None) -> None:
        self.console.print(text, end="", style=style, markup=False, highlight=False, soft_wrap=True)
        self.console.file.flush()

    def __call__(self, index: int, blank: int, text: str) -> None:
        if self.mode == "blanks" and blank != self.blank:
            self._write(("\n" if self.blank is not None else "") + f"[{blank + 1}] ", style="dim")
            self.blank = blank
        self._write(text)

    def finish(self, result) -> None:
        self._write("\n")
        if self.mode == "blanks":
            self.console.print(result.text, markup=False, highlight=False, soft_wrap=True)


def show_texts(ui, results, num_samples: int) -> None:
    """Each result's text on stdout (the prompt in bold for continuations); headers on stderr."""
    from rich.text import Text

    for i, r in enumerate(results):
        if len(results) > 1:
            which = f"prompt {i // num_samples + 1}" + (f" · sample {r.sample + 1}" if num_samples > 1 else "")
            ui.console.print(f"── {which} ({r.finish_reason})", style="dim", markup=False)
        if r.completion is not None and r.text.endswith(r.completion) and r.text != r.completion:
            text = Text(r.text[:len(r.text) - len(r.completion)], style="bold") + Text(r.completion)
        else:
            text = Text(r.text)
        ui.out.print(text, highlight=False, soft_wrap=True)


def show_candidates(ui, results, fill: bool) -> None:
    """Encoders: the prompt filled with the best candidates (--fill), or a table per prompt."""
    from rich.markup import escape

    for r in results:
        if fill:
            ui.out.print(r.text, markup=False, highlight=False, soft_wrap=True)
            continue
        rows = [(f"{m + 1}" if rank == 0 else "", rank + 1, escape(c["token"]), f"{c['prob']:.4f}")
                for m, mask in enumerate(r.masks) for rank, c in enumerate(mask["candidates"])]
        ui.out.print(ui.table(escape(r.prompt), rows, ("mask", "rank", "candidate", "probability")))
