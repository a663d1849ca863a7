"""The training loop that serves every family and objective.

    d = setup(device) → open DATA → prepare RUN (fresh, resume or refuse) → build or load the
    model → wrap (DDP / FSDP2, compile) → AdamW → for each step: micro-batches, backward,
    clip, step → log / eval / checkpoint → final weights + `plmkit.json`.

One process or many (torchrun) run the same code: ranks differ only in which rows they read
(`plmkit.data.loader`) and in that only rank 0 writes files and reports progress. Loss per
optimizer step is the mean of the micro-batches' mean losses, averaged over ranks by DDP.

Exact resume: the model, AdamW state, every rank's random state, the step, the tokens seen and
the data position are in each checkpoint, and the learning rate is a function of the step, so
a resumed run retraces an uninterrupted one bit for bit on CPU (fp32).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch

from plmkit.data.collate import collator_for
from plmkit.data.loader import Batches, DataPosition, RunData, check_objective, eval_batches, open_data
from plmkit.errors import PlmkitError
from plmkit.evaluate import evaluate
from plmkit.manifest import MANIFEST, atomic_write_text, read_manifest, write_manifest
from plmkit.progress import NULL, Progress
from plmkit.train import checkpoint as ckpt
from plmkit.train import distributed
from plmkit.train.config import TrainConfig, compare_for_resume
from plmkit.train.metrics import MetricsLog, plot_losses
from plmkit.train.optim import build_optimizer, lr_at, set_lr

CONFIG_FILE = "train_config.json"
PAIR_OBJECTIVES = ("nsp", "sop")


# ---- data ----------------------------------------------------------------------------------

def batch_tokens(batch: dict[str, torch.Tensor], objective: str) -> int:
    """Tokens a batch feeds the model: real input tokens, plus decoder targets for T5."""
    tokens = int(batch["attention_mask"].sum())
    if objective == "t5-span":
        tokens += int((batch["labels"] != -100).sum())
    return tokens


# ---- model ---------------------------------------------------------------------------------

def model_family(spec: str) -> str:
    """The family of a `--model` value: `bert:small` → bert, `gpt2` (a published shape) → gpt."""
    from plmkit.models import FAMILIES, PUBLISHED

    name = spec.partition(":")[0]
    if name in PUBLISHED:
        return PUBLISHED[name][0]
    if name not in FAMILIES:
        raise PlmkitError(f"--model {spec}: unknown model family {name!r}",
                          hint=f"use one of {', '.join(FAMILIES)} or a published shape: {', '.join(PUBLISHED)}")
    return name


def model_config(cfg: TrainConfig, data: RunData):
    """The ModelConfig for a fresh model: preset, the tokenizer's ids, then `model-overrides`."""
    from plmkit.models import get_config

    family, _, size = cfg.model.partition(":")
    tok = data.tokenizer
    ids = {"vocab_size": int(tok.vocab_size), "pad_token_id": tok.id("pad"), "bos_token_id": tok.id("bos"),
           "eos_token_id": tok.id("eos")}
    preset = get_config(family, size or "small")
    if preset.position_offset:  # RoBERTa counts positions from pad + 1
        ids["position_offset"] = ids["pad_token_id"] + 1
    try:
        model_cfg = get_config(family, size or "small", **{**ids, **cfg.model_overrides})
    except TypeError as e:
        raise PlmkitError(f"model-overrides in --config: {e}") from None
    check_positions(model_cfg, data.seq_len)
    return model_cfg


def check_positions(model_cfg, seq_len: int) -> None:
    need = seq_len + model_cfg.position_offset
    if model_cfg.position in ("learned", "glm2d") and need > model_cfg.max_position_embeddings:
        raise PlmkitError(
            f"the shards hold rows of up to {seq_len} tokens, but the model has only "
            f"{model_cfg.max_position_embeddings} positions",
            hint=f"set max_position_embeddings = {need} under model-overrides in --config, or build shorter rows")


def initial_model(cfg: TrainConfig, data: RunData):
    """(model, config): fresh from the preset, or `--init-from` a plmkit RUN or a Hugging Face directory."""
    from plmkit.models import build_model, load_model
    from plmkit.models.hf import import_hf

    if not cfg.init_from:
        model_cfg = model_config(cfg, data)
        return build_model(model_cfg), model_cfg
    source = Path(cfg.init_from)
    if (source / MANIFEST).is_file():
        run = read_manifest(source, "run", flag="--init-from")
        from plmkit.tokenization import load_tokenizer

        if load_tokenizer(source / "tokenizer", flag="--init-from").fingerprint != data.tokenizer.fingerprint:
            raise PlmkitError(f"--init-from {source} was trained with a different tokenizer than --data uses",
                              hint="build the shards with the run's tokenizer (RUN/tokenizer)")
        model, model_cfg = load_model(run["path"], flag="--init-from")
    elif (source / "config.json").is_file():
        model, model_cfg = import_hf(source, flag="--init-from")
        if model_cfg.vocab_size != data.tokenizer.vocab_size:
            raise PlmkitError(f"--init-from {source} has a vocabulary of {model_cfg.vocab_size} tokens, "
                              f"the shards' tokenizer {data.tokenizer.vocab_size}",
                              hint="build the shards with the tokenizer that came with the model")
    else:
        raise PlmkitError(f"--init-from {source} is neither a plmkit run nor a Hugging Face model directory",
                          hint="pass a RUN written by `plmkit train` or a folder with config.json")
    if cfg.model and model_family(cfg.model) != model_cfg.family:
        raise PlmkitError(f"--model {cfg.model} does not match --init-from {source}, a {model_cfg.family} model",
                          hint="drop --model or pass the matching family")
    check_positions(model_cfg, data.seq_len)
    return model.train(), model_cfg


# ---- run directory -------------------------------------------------------------------------

def prepare_run_dir(cfg: TrainConfig, data: RunData, *, resume: bool, force: bool) -> Path | None:
    """Decide fresh start or resume (rank 0); return the checkpoint to resume from, if any."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise PlmkitError(f"--out {out} exists and is a file", hint="choose another path")
    saved_path = out / CONFIG_FILE
    if force and out.exists():
        shutil.rmtree(out)
    start = None
    if out.exists() and any(out.iterdir()):
        if not saved_path.is_file():
            raise PlmkitError(f"--out {out} already exists and is not a plmkit run",
                              hint="pass --force to overwrite it, or choose another path")
        saved = json.loads(saved_path.read_text())
        if saved["data_fingerprint"] != data.manifest["fingerprint"]:
            raise PlmkitError(f"--out {out} was trained on other shards than --data {cfg.data}",
                              hint="pass the same --data to resume, --force to start over, or another --out")
        compare_for_resume(saved["config"], cfg, str(out))
        found = ckpt.checkpoints(out)
        start = found[-1] if found else None
    if resume and start is None:
        raise PlmkitError(f"--resume: {out} has no checkpoint to resume from",
                          hint="drop --resume to start a new run")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PlmkitError(f"cannot create --out {out}: {e.strerror}", hint="choose a writable folder") from e
    record = {"config": cfg.to_dict(), "data_fingerprint": data.manifest["fingerprint"]}
    atomic_write_text(saved_path, json.dumps(record, indent=2) + "\n")
    shutil.copytree(Path(cfg.data) / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    return start


# ---- the trainer ---------------------------------------------------------------------------

class Interrupt:
    """Turns SIGINT/SIGTERM into a request to stop at the next step boundary (a second one stops now)."""

    def __init__(self):
        self.requested = 0
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class Trainer:
    """Owns one run: set up in `__init__`, then `run()`. See the module docstring for the order."""

    def __init__(self, cfg: TrainConfig, d: distributed.Dist, progress: Progress, *, resume: bool, force: bool):
        self.cfg, self.d, self.progress = cfg, d, progress
        self.t_start = time.monotonic()
        self.first_step_s: float | None = None
        self.data = open_data(cfg.data)
        if cfg.model:
            check_objective(model_family(cfg.model), self.data.objective)
        if cfg.precision == "bf16" and d.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise PlmkitError(f"--precision bf16: {torch.cuda.get_device_name(d.device)} has no bfloat16",
                              hint="use --precision fp32")
        self.run_dir = Path(cfg.out)
        start = self.decide_start(resume, force)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", enabled=d.is_main)
        checkpoint = ckpt.load_checkpoint(start) if start else None
        self.resumed_from = checkpoint.path if checkpoint is not None else None
        self.load_model(checkpoint)
        self.model = self.wrap()
        self.optimizer = build_optimizer(self.module, cfg.lr, cfg.weight_decay)
        self.restored_rng = self.restore(checkpoint)
        self.collate = collator_for(self.data, cfg.seed)
        self.batches = Batches(self.data.train, self.collate, batch_size=cfg.batch_size, grad_accum=cfg.grad_accum,
                               rank=d.rank, world_size=d.world_size, seed=cfg.seed, num_workers=cfg.num_workers)
        self.total_steps = self.plan_steps()
        self.params = [p for p in self.module.parameters() if p.requires_grad]

    # -- set-up, in order --
    def decide_start(self, resume: bool, force: bool) -> Path | None:
        """Rank 0 prepares RUN/ and picks the checkpoint; every rank learns the outcome (errors included)."""
        start, error = None, None
        if self.d.is_main:
            try:
                start = prepare_run_dir(self.cfg, self.data, resume=resume, force=force)
            except PlmkitError as e:
                error = e
        start, error = self.d.broadcast_object((None if start is None else str(start), error))
        if error is not None:
            raise error
        return None if start is None else Path(start)

    def load_model(self, checkpoint: ckpt.Checkpoint | None) -> None:
        """The model (same initial weights on every rank), its weights and the counters from a checkpoint."""
        from plmkit.models import load_state

        torch.manual_seed(self.cfg.seed)
        module, self.model_cfg = initial_model(self.cfg, self.data)
        check_objective(self.model_cfg.family, self.data.objective)
        # window_*: the metrics line being accumulated, so that a resumed run writes the same lines
        self.state = {"step": 0, "tokens": 0, "epoch": 0, "epoch_step": 0, "elapsed_s": 0.0,
                      "window_loss": 0.0, "window_steps": 0, "window_tokens": 0}
        self.saved_total_steps = None
        if checkpoint is not None:
            load_state(module, checkpoint.model, str(checkpoint.path))
            self.state.update({k: checkpoint.trainer[k] for k in self.state})
            self.saved_total_steps = checkpoint.trainer.get("total_steps")
        self.module = module.to(self.d.device).train()

    def wrap(self) -> torch.nn.Module:
        """What the training step calls: the module, compiled, under DDP; FSDP2 shards `self.module` in place."""
        cfg, d = self.cfg, self.d
        if d.active and cfg.fsdp:
            distributed.wrap(self.module, d, fsdp=True, find_unused=False)
        forward = torch.compile(self.module) if cfg.compile else self.module
        if not d.active or cfg.fsdp:
            return forward
        # BERT/ALBERT on MLM-only shards: the NSP/SOP head takes no part in the loss
        unused_head = self.data.objective not in PAIR_OBJECTIVES and any(
            o in PAIR_OBJECTIVES for o in self.model_cfg.objectives)
        return distributed.wrap(forward, d, fsdp=False, find_unused=unused_head)

    def restore(self, checkpoint: ckpt.Checkpoint | None) -> bool:
        """AdamW and random state from the checkpoint; False when this rank's random state is not in it."""
        if checkpoint is None:
            if self.d.rank:
                torch.manual_seed(self.cfg.seed + self.d.rank)  # independent dropout draws per rank
            return True
        distributed.load_optimizer_state(self.module, self.optimizer, checkpoint.optimizer)
        return ckpt.restore_rng(checkpoint.rng, self.d.rank, self.d.device)

    # -- planning --
    def plan_steps(self) -> int:
        """Steps of the run (the schedule decays over them): the first of --max-steps, --epochs, --max-tokens."""
        cfg, per_epoch = self.cfg, self.batches.steps_per_epoch
        limits = []
        if cfg.max_steps:
            limits.append(cfg.max_steps)
        if cfg.epochs:
            limits.append(max(1, math.ceil(cfg.epochs * per_epoch)))
        if cfg.max_tokens:
            split = self.data.train
            per_row = split.num_tokens() / len(split)
            if self.data.objective == "t5-span":
                per_row += split.num_tokens("labels") / len(split)
            limits.append(max(1, math.ceil(cfg.max_tokens / (per_row * cfg.batch_size))))
        return min(limits) if limits else per_epoch

    def autocast(self):
        if self.cfg.precision == "bf16":
            return torch.autocast(self.d.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def done(self) -> bool:
        return self.state["step"] >= self.total_steps or bool(
            self.cfg.max_tokens and self.state["tokens"] >= self.cfg.max_tokens)

    # -- one optimizer step --
    def train_step(self, micro_batches: list[dict]) -> tuple[torch.Tensor, int, torch.Tensor]:
        """Forward/backward over the micro-batches, clip, AdamW step. Returns (loss, tokens, grad norm)."""
        set_lr(self.optimizer, self.lr())
        loss_sum = torch.zeros((), device=self.d.device)
        tokens = 0
        for i, batch in enumerate(micro_batches):
            tokens += batch_tokens(batch, self.data.objective)
            batch = {k: v.to(self.d.device, non_blocking=True) for k, v in batch.items()}
            with distributed.no_sync(self.model, sync=i == len(micro_batches) - 1):
                with self.autocast():
                    loss = self.model(**batch).loss
                (loss / len(micro_batches)).backward()
            loss_sum += loss.detach().float()
        max_norm = self.cfg.clip if self.cfg.clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP2
            grad_norm = grad_norm.full_tensor()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum / len(micro_batches), tokens, grad_norm.detach()

    def lr(self) -> float:
        cfg = self.cfg
        return lr_at(self.state["step"], lr=cfg.lr, min_lr=cfg.min_lr, warmup=cfg.warmup, total=self.total_steps,
                     schedule=cfg.schedule)

    # -- the loop --
    def run(self) -> dict[str, Any]:
        """Train until the first stop condition; on SIGINT/SIGTERM save a checkpoint and raise KeyboardInterrupt."""
        cfg, st = self.cfg, self.state
        if self.done():
            return self.already_done()
        self.begin()
        self.progress.start("train", total=self.total_steps, unit="steps")
        self.progress.update(st["step"])
        rank_share = 1.0 if self.d.is_main else 0.0  # the saved window belongs to the sum over ranks
        dtype = torch.float32 if self.d.device.type == "mps" else torch.float64  # MPS has no float64
        self.window_loss = torch.full((), st["window_loss"] * rank_share, dtype=dtype, device=self.d.device)
        self.window_t = time.monotonic()
        stream = self.batches(DataPosition(st["epoch"], st["epoch_step"]))
        last_eval = None
        with Interrupt() as interrupt:
            while not self.done():
                position, micro = next(stream)
                loss, tokens, self.grad_norm = self.train_step(micro)
                tokens, stop = self.d.sum([tokens, float(interrupt.requested)]) if self.d.active else \
                    (tokens, interrupt.requested)
                st["step"] += 1
                st["epoch"], st["epoch_step"] = position.epoch, position.step
                st["tokens"] += int(tokens)
                st["window_steps"] += 1
                st["window_tokens"] += int(tokens)
                self.window_loss += loss.to(self.window_loss.dtype)
                if self.first_step_s is None:
                    self.first_step_s = time.monotonic() - self.t_start
                at_end = self.done()
                if st["step"] % cfg.log_every == 0 or at_end:
                    self.log()
                self.progress.update(1)
                if (cfg.eval_every and st["step"] % cfg.eval_every == 0) or at_end:
                    last_eval = self.evaluate()
                saved = (cfg.save_every and st["step"] % cfg.save_every == 0) or at_end
                if saved or stop:
                    self.save()
                if stop and not at_end:
                    self.progress.finish()
                    self.progress.log(f"interrupted at step {st['step']}: checkpoint saved in "
                                      f"{self.run_dir / 'checkpoints'}; rerun the same command to resume")
                    raise KeyboardInterrupt
        self.progress.finish()
        return self.finish(last_eval)

    def begin(self) -> None:
        """Report where the run starts; forget metrics of steps that will be redone."""
        st = self.state
        if self.d.is_main:
            (self.run_dir / MANIFEST).unlink(missing_ok=True)  # in progress (again)
        self.metrics.rewind(st["step"])
        if self.resumed_from is not None:
            self.progress.log(f"resuming from {self.resumed_from} (step {st['step']} of {self.total_steps})")
            if not self.restored_rng:
                self.progress.log("the checkpoint has no random state for this rank: dropout draws will differ")
            if self.saved_total_steps not in (None, self.total_steps):
                self.progress.log(f"the run now ends at step {self.total_steps} (was {self.saved_total_steps}): "
                                  "the learning-rate schedule is stretched to the new end")

    def already_done(self) -> dict[str, Any]:
        """Rerun of a finished run: nothing to train; write the final files if a kill prevented it."""
        if (self.run_dir / MANIFEST).is_file():
            self.progress.log(f"{self.run_dir} is already complete ({self.state['step']} steps); "
                              "raise --max-steps to train further, or pass --force to start over")
            return {"steps": self.state["step"], "tokens": self.state["tokens"], "run": str(self.run_dir),
                    "already_complete": True}
        return self.finish(self.evaluate(record=False))

    def log(self) -> None:
        """Write one metrics line: mean loss over the steps since the last line, over all ranks."""
        st = self.state
        (loss_sum,) = self.d.sum([float(self.window_loss)])
        loss = loss_sum / st["window_steps"] / self.d.world_size
        elapsed = time.monotonic() - self.window_t
        st["elapsed_s"] += elapsed
        if not math.isfinite(loss):
            raise PlmkitError(f"training diverged at step {st['step']} (loss {loss})",
                              hint="lower --lr, raise --warmup or set --clip; "
                                   "rerun with --force, or resume from an earlier checkpoint")
        record = {"step": st["step"], "tokens": st["tokens"], "loss": loss,
                  "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": float(self.grad_norm),
                  "tokens_per_s": st["window_tokens"] / max(elapsed, 1e-9), "elapsed_s": round(st["elapsed_s"], 3)}
        self.metrics.write(record)
        self.progress.update(0, loss=round(loss, 4), lr=f"{record['lr']:.2e}", tok_s=round(record["tokens_per_s"]))
        self.window_loss.zero_()
        st.update(window_steps=0, window_tokens=0)
        self.window_t = time.monotonic()

    def evaluate(self, record: bool = True) -> dict[str, float] | None:
        """Validation metrics (all ranks take part); written to metrics.jsonl and loss.png."""
        if self.data.validation is None or len(self.data.validation) == 0:
            return None
        micro = self.cfg.batch_size // (self.d.world_size * self.cfg.grad_accum)
        batches = eval_batches(self.data.validation, self.collate, micro, self.d.rank, self.d.world_size)
        result = evaluate(self.module, batches, self.data.objective, self.d.device, self.autocast,
                          reduce=self.d.sum if self.d.active else None)
        if record:
            self.metrics.write({"step": self.state["step"], **{f"eval_{k}": v for k, v in result.items()}})
            if self.d.is_main:
                plot_losses(self.metrics.path, self.run_dir / "loss.png")
        self.progress.log(f"step {self.state['step']}: validation loss {result['loss']:.4f}, "
                          f"perplexity {result['perplexity']:.2f}")
        return result

    def save(self) -> Path | None:
        """A checkpoint of the current step (collective: every rank contributes its state)."""
        st = self.state
        model = distributed.full_model_state(self.module, self.d)
        optimizer = distributed.full_optimizer_state(self.module, self.optimizer, self.d)
        rng = self.d.gather_objects(ckpt.rng_state(self.d.device))
        (st["window_loss"],) = self.d.sum([float(self.window_loss)])
        path = None
        if self.d.is_main:
            trainer = {**st, "total_steps": self.total_steps, "world_size": self.d.world_size}
            path = ckpt.save_checkpoint(self.run_dir, st["step"], model=model, optimizer=optimizer,
                                        rng=rng, trainer=trainer, keep_last=self.cfg.keep_last)
        self.d.barrier()
        return path

    def finish(self, last_eval: dict | None) -> dict[str, Any]:
        """Final weights, config and manifest (rank 0); returns the run's summary."""
        from plmkit.models import build_model, load_state, save_model

        st = self.state
        state = distributed.full_model_state(self.module, self.d)
        summary = {"steps": st["step"], "tokens": st["tokens"], "elapsed_s": round(st["elapsed_s"], 3),
                   "tokens_per_s": st["tokens"] / max(st["elapsed_s"], 1e-9),
                   "first_step_s": self.first_step_s, "eval": last_eval, "run": str(self.run_dir)}
        if self.d.is_main:
            final = build_model(self.model_cfg)
            load_state(final, state, "the trained weights")
            save_model(final, self.model_cfg, self.run_dir)
            plot_losses(self.metrics.path, self.run_dir / "loss.png")  # also when there was no validation split
            last_train = next((r for r in reversed(_read(self.metrics)) if "loss" in r), {})
            summary["loss"] = last_train.get("loss")
            write_manifest(self.run_dir, "run", params=self.cfg.to_dict(), upstream=self.data.manifest,
                           model=self.model_cfg.to_dict(), objective=self.data.objective, steps=st["step"],
                           tokens=st["tokens"], final_loss=summary["loss"],
                           eval={k: v for k, v in (last_eval or {}).items()})
        self.d.barrier()
        return summary


def _read(metrics: MetricsLog) -> list[dict]:
    from plmkit.train.metrics import read_metrics

    return read_metrics(metrics.path)


def train(cfg: TrainConfig, progress: Progress = NULL, *, resume: bool = False, force: bool = False) -> dict:
    """Train (or resume) the run described by `cfg`; the summary dict is the same on every rank."""
    d = distributed.setup(cfg.device)
    try:
        trainer = Trainer(cfg, d, progress if d.is_main else NULL, resume=resume, force=force)
        return trainer.run()
    finally:
        distributed.teardown()
