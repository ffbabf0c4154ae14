"""One training run: ``run(config, on_event, should_stop) -> RunResult``.

Contract: the CLI, the job thread and the tests all call ``run``. It checks the data before any
model loads, trains with a Hugging Face ``Trainer`` on examples we tokenize and mask ourselves
(``encode.py``), writes the run directory as it goes (``runs.py``), calls ``on_event`` with each
logged record and stops within one optimizer step once ``should_stop()`` is true. It never
raises for a training failure: the result (and ``status.json``) says completed, stopped,
diverged or failed, with a one-line reason.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, StudioConfig
from . import runs
from .data import CHAT_FORMATS, default_objective, load_examples
from .encode import encode, length_stats
from .errors import JobError, StudioError
from .models import apply_method, load_model, load_tokenizer, parameter_counts, resolve_model, resolve_precision

# Measured on the 2-core development VM (bench/methods.py, docs/benchmarks.md): two threads
# trained studio-tiny 1.3-1.7x faster than one, so the default is one thread per usable core.
# Set train.threads (or STUDIO_THREADS) where another process shares the cores.
DEFAULT_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

Event = dict
OnEvent = Callable[[Event], None]


@dataclass
class RunResult:
    run_dir: Path
    state: str
    step: int = 0
    error: str | None = None
    final_loss: float | None = None


@dataclass
class Prepared:
    """What a run needs before training: data checked and tokenized, model resolved."""
    config: StudioConfig
    objective: str
    train_rows: list[dict]
    val_rows: list[dict]
    tokenizer: object
    resolved: object
    notices: list[str]
    stats: dict


def resolve_objective(config: StudioConfig, fmt: str) -> str:
    objective = config.method.objective
    if objective == "auto":
        return default_objective(fmt)
    if objective == "instruction" and fmt not in CHAT_FORMATS:
        raise ConfigError(f"method.objective instruction needs prompt/response records; {config.data.path} "
                          f"is {fmt} (use causal_lm)")
    return objective


def split(n: int, val_size: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = 0 if val_size == 0 or n < 2 else min(n - 1, max(1, round(n * val_size)))
    return sorted(order[n_val:]), sorted(order[:n_val])


def prepare(config: StudioConfig) -> Prepared:
    """Everything that can fail on bad input, before any weights load."""
    d = config.data
    if not d.path:
        raise ConfigError("data.path is not set")
    loaded = load_examples(d.path, d.format, d.columns, d.limit, d.system_prompt)
    loaded.raise_for_problems()
    if config.method.kind == "dpo" and loaded.format != "preference":
        raise ConfigError(f"method.kind dpo needs preference data (prompt, chosen, rejected); "
                          f"{Path(d.path).name} is {loaded.format}")
    objective = resolve_objective(config, loaded.format)
    resolved = resolve_model(config.model)
    tokenizer = load_tokenizer(resolved, config.model)
    tr, va = split(len(loaded.examples), d.val_size, config.train.seed)
    if config.method.kind == "dpo":  # TRL's DPOTrainer tokenizes preference pairs itself
        lengths = encode([loaded.examples[i] for i in tr + va], tokenizer, objective, d.max_length).lengths
        stats = {"format": loaded.format, "objective": "dpo", "train_examples": len(tr), "val_examples": len(va),
                 "truncated": sum(n > d.max_length for n in lengths), "lengths": length_stats(lengths, d.max_length)}
        return Prepared(config, "dpo", [loaded.examples[i] for i in tr], [loaded.examples[i] for i in va],
                        tokenizer, resolved, [*loaded.report.notices, *resolved.notices], stats)
    enc_train = encode([loaded.examples[i] for i in tr], tokenizer, objective, d.max_length)
    enc_val = encode([loaded.examples[i] for i in va], tokenizer, objective, d.max_length)
    if not enc_train.rows:
        raise JobError(f"{Path(d.path).name}: no example has a token to train on after truncation to "
                       f"data.max_length {d.max_length}")
    notices = [*loaded.report.notices, *resolved.notices]
    truncated = enc_train.truncated + enc_val.truncated
    if truncated:
        notices.append(f"{truncated} example(s) longer than data.max_length {d.max_length} were truncated")
    dropped = enc_train.no_target + enc_val.no_target
    if dropped:
        notices.append(f"{dropped} example(s) had no response tokens left after truncation and were dropped")
    stats = {"format": loaded.format, "objective": objective, "train_examples": len(enc_train.rows),
             "val_examples": len(enc_val.rows), "truncated": truncated,
             "lengths": length_stats(enc_train.lengths + enc_val.lengths, d.max_length)}
    return Prepared(config, objective, enc_train.rows, enc_val.rows, tokenizer, resolved, notices, stats)


def set_threads(n: int) -> int:
    import torch

    n = n or int(os.environ.get("STUDIO_THREADS", 0)) or DEFAULT_THREADS
    torch.set_num_threads(n)
    return n


def run(config: StudioConfig, run_dir: str | Path | None = None, on_event: OnEvent | None = None,
        should_stop: Callable[[], bool] | None = None, resume: bool = False, owner: str | None = None) -> RunResult:
    """Train; ``resume=True`` continues ``run_dir`` from its last complete checkpoint."""
    on_event = on_event or (lambda e: None)
    should_stop = should_stop or (lambda: False)
    if world_size() > 1 and not run_dir:
        raise ConfigError("with several processes (torchrun / accelerate launch), pass --output-dir so that every "
                          "process writes to the same run directory")
    if not is_main_process():  # under torchrun / accelerate: only the first process writes the run directory
        return _run_replica(config, Path(run_dir), should_stop, resume)
    run = Path(run_dir) if resume else runs.new_run_dir(config, run_dir)
    checkpoint = None
    if resume:
        checkpoint = runs.last_complete_checkpoint(run)
        if checkpoint is None:
            raise JobError(f"{run}: no complete checkpoint to resume from")
        _truncate_metrics(run, int(checkpoint.name.split("-")[1]))
    started = time.time()
    runs.write_status(run, "running", step=0, error=None, started=started, pid=os.getpid(),
                      **({"owner": owner} if owner else {}))
    on_event({"kind": "state", "state": "running", "run_dir": str(run)})
    trainer = model = None
    try:
        prepared = prepare(config)
        for note in prepared.notices:
            on_event({"kind": "notice", "message": note})
        runs.write_status(run, "running", model_source=prepared.resolved.source,
                          model_revision=prepared.resolved.revision or None)
        trainer, model = _build_trainer(prepared, run, on_event, should_stop)
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        state = _final_state(trainer)
        if state in ("completed", "stopped") and prepared.val_rows and config.train.eval_steps == 0:
            trainer.evaluate()
        if state != "diverged":
            _save_artifacts(trainer, prepared, run)
        result = RunResult(run, state, trainer.state.global_step, None, _last_loss(run))
    except (StudioError, ConfigError) as e:
        result = RunResult(run, "failed", 0, str(e))
    except Exception as e:  # noqa: BLE001 - any failure ends the run with a readable reason
        result = RunResult(run, "failed", getattr(getattr(trainer, "state", None), "global_step", 0),
                           failure_message(e, config))
    finally:
        del trainer, model
        _free_device()
    if result.state == "diverged":
        result.error = "loss became NaN or infinite: lower train.learning_rate or enable gradient clipping"
    runs.write_status(run, result.state, step=result.step, error=result.error, final_loss=result.final_loss,
                      duration_s=round(time.time() - started, 2))
    on_event({"kind": "state", "state": result.state, "error": result.error, "step": result.step})
    return result


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _run_replica(config: StudioConfig, run: Path, should_stop, resume: bool) -> RunResult:
    """A non-first process of a multi-process run: the same training, no files of its own."""
    for _ in range(600):  # the first process creates the run directory
        if (run / "config.yaml").is_file():
            break
        time.sleep(0.1)
    prepared = prepare(config)
    trainer, _ = _build_trainer(prepared, run, lambda e: None, should_stop)
    checkpoint = runs.last_complete_checkpoint(run) if resume else None
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    return RunResult(run, _final_state(trainer), trainer.state.global_step)


def failure_message(e: BaseException, config: StudioConfig) -> str:
    if isinstance(e, (StudioError, ConfigError)):
        return str(e)
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return ("disk full while saving: free some space, then resume; the last complete checkpoint is kept "
                "(an interrupted one is never picked)")
    text = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
    if "out of memory" in text.lower() or "can't allocate memory" in text.lower() or \
            type(e).__name__ == "OutOfMemoryError":
        half = max(1, config.train.batch_size // 2)
        return (f"out of memory: try train.batch_size {half}, train.gradient_checkpointing true, a shorter "
                "data.max_length, or method.kind qlora")
    return f"{type(e).__name__}: {text}"


def _build_trainer(p: Prepared, run: Path, on_event: OnEvent, should_stop: Callable[[], bool]):
    from datasets import Dataset

    from .callbacks import StudioCallback, StudioTrainer, collator, dpo_trainer_class, training_args

    cfg = p.config
    threads = set_threads(cfg.train.threads)
    precision = resolve_precision(cfg.train.precision)
    import torch

    if precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("train.precision fp16 needs a CUDA GPU; use auto, fp32 or bf16 on a CPU")
    model = load_model(p.resolved, cfg.model, cfg.method, precision, p.tokenizer)
    model = apply_method(model, cfg.method, cfg.train.gradient_checkpointing)
    trainable, total = parameter_counts(model)
    on_event({"kind": "info", "trainable_params": trainable, "total_params": total, "precision": precision,
              "threads": threads, **p.stats})
    args = training_args(cfg, run, precision, has_val=bool(p.val_rows))
    callback = StudioCallback(run, on_event, should_stop)
    datasets = {"train_dataset": Dataset.from_list(p.train_rows),
                "eval_dataset": Dataset.from_list(p.val_rows) if p.val_rows else None}
    if cfg.method.kind == "dpo":  # the reference model is the base: the adapter switched off
        trainer = dpo_trainer_class()(model=model, args=args, processing_class=p.tokenizer, callbacks=[callback],
                                      **datasets)
    else:
        trainer = StudioTrainer(model=model, args=args, processing_class=p.tokenizer,
                                data_collator=collator(p.tokenizer), callbacks=[callback], **datasets)
    callback.trainer = trainer
    return trainer, model


def _final_state(trainer) -> str:
    cb = trainer.studio_callback
    if cb.diverged:
        return "diverged"
    return "stopped" if cb.stopped else "completed"


def _save_artifacts(trainer, p: Prepared, run: Path) -> None:
    out = run / ("model" if p.config.method.kind == "full" else "adapter")
    trainer.save_model(str(out))
    p.tokenizer.save_pretrained(str(out))
    (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; config.yaml beside it says the same


def _last_loss(run: Path) -> float | None:
    losses = [m["loss"] for m in runs.read_metrics(run) if m.get("loss") is not None]
    return losses[-1] if losses else None


def _truncate_metrics(run: Path, step: int) -> None:
    kept = [m for m in runs.read_metrics(run) if m.get("step", 0) <= step]
    runs.write_atomic(run / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in kept))


def _free_device() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass

