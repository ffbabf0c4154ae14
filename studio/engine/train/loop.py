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
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from studio.config import ConfigError, StudioConfig
from studio.engine import methods, objectives, runs
from studio.engine import precision as precisions
from studio.engine.errors import JobError, StudioError
from studio.engine.events import Event, Metrics, Notice, StateChanged, TrainingInfo
from studio.engine.methods import Parts
from studio.engine.models import apply_method, load_model, parameter_counts
from studio.engine.train import trackers
from studio.engine.train.doctor import Doctor, Facts
from studio.engine.train.prepare import Prepared, prepare
from studio.settings import settings

# Measured on the 2-core development VM (bench/methods.py, docs/benchmarks.md): two threads
# trained studio-tiny 1.3-1.7x faster than one, so the default is one thread per usable core.
# Set train.threads (or STUDIO_THREADS) where another process shares the cores.
DEFAULT_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

OnEvent = Callable[[Event], None]


@dataclass
class RunResult:
    run_dir: Path
    state: str
    step: int = 0
    error: str | None = None
    final_loss: float | None = None


def set_threads(n: int) -> int:
    import torch

    n = n or settings().threads or DEFAULT_THREADS
    torch.set_num_threads(n)
    return n


def run(config: StudioConfig, run_dir: str | Path | None = None, on_event: OnEvent | None = None,
        should_stop: Callable[[], bool] | None = None, resume: bool = False, owner: str | None = None) -> RunResult:
    """Train; ``resume=True`` continues ``run_dir`` from its last complete checkpoint.

    Bad input (data, settings, model) raises ``StudioError`` / ``ConfigError`` before a run directory
    is made; once training has started, every failure is a result, never an exception."""
    on_event = on_event or (lambda e: None)
    should_stop = should_stop or (lambda: False)
    if owner:
        runs.ACTING.set(owner)  # the visitor whose runs ``model.name: run:NAME`` may name
    if world_size() > 1 and not run_dir:
        raise ConfigError("with several processes (torchrun / accelerate launch), pass --output-dir so that every "
                          "process writes to the same run directory")
    if not is_main_process():  # under torchrun / accelerate: only the first process writes the run directory
        return _run_replica(config, Path(run_dir), should_stop, resume)
    checkpoint = _resume_point(Path(run_dir)) if resume else None
    prepared = prepare(config)
    run = Path(run_dir) if resume else runs.new_run_dir(config, run_dir)
    if not resume:
        prepared.split.save(run)
    started = time.time()
    runs.write_status(run, "running", step=0, error=None, started=started, pid=os.getpid(),
                      pid_started=runs.process_started(os.getpid()),
                      model_source=prepared.resolved.source, model_revision=prepared.resolved.revision or None,
                      objective=prepared.objective,
                      **({"owner": owner} if owner else {}))
    on_event(StateChanged("running", run_dir=str(run)))
    for note in prepared.notices:
        on_event(Notice(note))
    result = _train(prepared, run, checkpoint, on_event, should_stop)
    runs.write_status(run, result.state, step=result.step, error=result.error, final_loss=result.final_loss,
                      duration_s=round(time.time() - started, 2))
    on_event(StateChanged(result.state, run_dir=str(run), error=result.error, step=result.step))
    return result


def _resume_point(run: Path) -> Path:
    checkpoint = runs.last_complete_checkpoint(run)
    if checkpoint is None:
        raise JobError(f"{run}: no complete checkpoint to resume from")
    _truncate_metrics(run, int(checkpoint.name.split("-")[1]))
    return checkpoint


def _train(prepared: Prepared, run: Path, checkpoint: Path | None, on_event: OnEvent,
           should_stop: Callable[[], bool]) -> RunResult:
    config, trainer, model, doctor = prepared.config, None, None, None
    try:
        trainer, model = _build_trainer(prepared, run, on_event, should_stop)
        doctor = trainer.studio_callback.doctor
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        runs.write_status(run, "running", train_runtime=round(output.metrics.get("train_runtime", 0.0), 3))
        _record_speed(prepared, run, trainer, output.metrics.get("train_runtime"), checkpoint)
        state = _final_state(trainer)
        method = methods.of(config)
        if state in ("completed", "stopped") and prepared.val_rows and config.train.eval_steps == 0 and \
                method.evaluates:  # GRPO has no evaluation loop: the run measures its samples below
            trainer.evaluate()
        if state != "diverged":
            _save_artifacts(trainer, prepared, run)
            _record_best(trainer, run, on_event)
            if method.measure:  # what the run achieved: a reward model's pair accuracy, an RL run's reward
                method.measure(trainer, prepared, run, on_event)
        result = RunResult(run, state, trainer.state.global_step, None, _last_loss(run))
    except Exception as e:  # noqa: BLE001 - any failure ends the run with a readable reason
        result = RunResult(run, "failed", getattr(getattr(trainer, "state", None), "global_step", 0),
                           failure_message(e, config))
    finally:
        del trainer, model
        _free_device()
    if result.state == "diverged" and doctor is not None and doctor.dead is not None:
        result.error = f"{doctor.dead.evidence}; {doctor.dead.advice}"
    return result




def _record_best(trainer, run: Path, on_event: OnEvent) -> None:
    """With early stopping the saved weights are the best step's: the run, its chart and the log say which."""
    best = trainer.state.best_model_checkpoint
    if not best or not trainer.args.load_best_model_at_end:
        return
    step, loss = int(Path(best).name.split("-")[-1]), trainer.state.best_metric
    record = {"step": step, "best_step": step, "best_eval_loss": loss}
    runs.append_metrics(run, record)
    on_event(Metrics(record))
    stopped_early = trainer.state.global_step < trainer.state.max_steps
    runs.write_status(run, "running", best_step=step, best_eval_loss=loss, stopped_early=stopped_early)
    on_event(Notice(f"{'stopped early; ' if stopped_early else ''}the saved weights are step {step}'s, the lowest "
                    f"eval loss ({loss:.4f})"))


def _facts(p: Prepared, parameters: int = 0) -> Facts:
    """What the doctor should know beyond the metrics: the data's size, its share of trained tokens, and the
    learning rate the studio's own defaults give this model (so its advice agrees with them)."""
    from studio.engine.train.defaults import default_learning_rate

    lr = default_learning_rate(p.config.model.name, parameters, p.config.method.kind)
    rows = [] if methods.of(p.config).own_data_order else p.train_rows
    if objectives.find(p.objective).masks_tokens:  # the collator picks the trained tokens: a share of each row
        from studio.engine.data.encode import MASK_SHARE

        return Facts(train_examples=len(p.train_rows), trained_token_share=MASK_SHARE, default_lr=lr)
    labelled = sum(sum(1 for t in r["labels"] if t != -100) for r in rows)
    total = sum(len(r["input_ids"]) for r in rows)
    return Facts(train_examples=len(p.train_rows), trained_token_share=labelled / total if total else 1.0,
                 default_lr=lr)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _run_replica(config: StudioConfig, run: Path, should_stop, resume: bool) -> RunResult:
    """A non-first process of a multi-process run: the same training, no files of its own."""
    for _ in range(600):  # the first process creates the run directory
        if runs.is_run(run):
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



def _check_device(cfg: StudioConfig, precision: str) -> None:
    """Settings that need a CUDA GPU, said in one line on a machine without one."""
    import importlib.util

    import torch

    if precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("train.precision fp16 needs a CUDA GPU; use auto, fp32 or bf16 on a CPU")
    if cfg.train.liger_kernel and not torch.cuda.is_available():
        raise ConfigError("train.liger_kernel needs a CUDA GPU (Liger's kernels are Triton kernels); turn it off here")
    if cfg.train.liger_kernel and importlib.util.find_spec("liger_kernel") is None:
        raise ConfigError("train.liger_kernel needs the liger-kernel package: pip install liger-kernel")

def _build_trainer(p: Prepared, run: Path, on_event: OnEvent, should_stop: Callable[[], bool]):
    from datasets import Dataset

    from studio.engine.data.encode import collator
    from studio.engine.train.trainer import StudioCallback, sft_trainer_class, studio_trainer, training_args

    cfg = p.config
    threads = set_threads(cfg.train.threads)
    chosen = precisions.choose(cfg.train.precision, p.resolved.path, methods.of(cfg), tokens=batch_tokens(p))
    precision = chosen.name
    _check_device(cfg, precision)
    model = load_model(p.resolved, cfg.model, cfg.method, precision, p.tokenizer, objective=p.objective)
    model.config.use_cache = False  # training: no cache (packed batches are recognised only without one)
    model = apply_method(model, cfg.method, cfg.train.gradient_checkpointing, _total_steps(cfg, len(p.train_rows)))
    trainable, total = parameter_counts(model)
    on_event(TrainingInfo(trainable, total, precision, threads, precision_why=chosen.why, **p.stats))
    runs.write_status(run, "running", precision=precision, precision_why=chosen.why)
    runs.write_status(run, "running", compiled=_compile(p, model, precision, on_event))
    trackers.local_first(cfg)
    args = training_args(cfg, run, precision, has_val=bool(p.val_rows), objective=p.objective)
    callback = StudioCallback(run, on_event, should_stop, Doctor(cfg, _facts(p, total)))
    callbacks = [callback]
    if cfg.train.early_stopping_patience and p.val_rows:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience))
    method = methods.of(cfg)
    callbacks += method.callbacks(cfg) if method.callbacks else []
    datasets = {"train_dataset": Dataset.from_list(p.train_rows),
                "eval_dataset": Dataset.from_list(p.val_rows) if p.val_rows else None}
    if method.trainer:  # TRL's: DPO/KTO (the reference is the base, the adapter switched off), reward, GRPO
        base, extra = method.trainer(Parts(model, args, p.tokenizer, callbacks, prepared=p, **datasets))
        trainer = studio_trainer(base)(model=model, args=args, processing_class=p.tokenizer, callbacks=callbacks,
                                       **(datasets | extra))
    else:
        trainer = sft_trainer_class(p.objective)(model=model, args=args, processing_class=p.tokenizer,
                                data_collator=collator(p.tokenizer, cfg.train.packing, p.objective, cfg.train.seed),
                                callbacks=callbacks,
                                **datasets)
    callback.trainer = trainer
    trackers.place(trainer, run)
    if cfg.train.report_to:
        on_event(Notice("recorded by " + "; ".join(trackers.where(cfg, run))))
    return trainer, model


def _record_speed(p: Prepared, run: Path, trainer, seconds: float | None, checkpoint: Path | None) -> None:
    """This machine's training rate for the model's shape and precision, for the next estimate: the loop's
    seconds over the tokens of the steps it ran (a resumed run: those after its checkpoint)."""
    from studio.engine import timing

    steps = trainer.state.global_step - (int(checkpoint.name.split("-")[1]) if checkpoint else 0)
    if seconds and steps > 0:
        precision = runs.read_status(run).get("precision") or "fp32"
        timing.record("train", f"{timing.shape_of(p.resolved.path)} | {precision}",
                      steps * batch_tokens(p) * p.config.train.grad_accum, seconds)


def batch_tokens(p: Prepared) -> int:
    """The tokens of a typical micro-batch: the batch size times the data's median length (at most max_length)."""
    median = (p.stats.get("lengths") or {}).get("median") or p.config.data.max_length
    return p.config.train.batch_size * min(median, p.config.data.max_length)


def _compile(p: Prepared, model, precision: str, on_event: OnEvent) -> str:
    """Regional torch.compile by train.torch_compile's rule (train/compiled.py), said in the log; returns what
    the run's record keeps (compiled or not, and why). The compile happens here, on a short batch, so that a
    failure falls back before the first step."""
    import torch

    from studio.engine import calibration, timing
    from studio.engine.train import compiled

    cfg, objective, method = p.config, objectives.find(p.objective), methods.of(p.config)
    other_objective = objective.splits_prompt or objective.masks_tokens
    step_s, kept, key = None, None, f"{calibration.machine()} | {timing.shape_of(p.resolved.path)}"
    if cfg.train.torch_compile == "auto" and not torch.cuda.is_available() and method.cpu_tuned and \
            not other_objective and not cfg.train.gradient_checkpointing:  # what the rule weighs, where it may
        one = timing.step_seconds(p.resolved.path, precision, batch_tokens(p))
        step_s = one * cfg.train.grad_accum if one else None
        kept = calibration.get("compile_s", key)
    decision = compiled.decide(cfg.train.torch_compile, method, other_objective, cfg.train.gradient_checkpointing,
                               _total_steps(cfg, len(p.train_rows)), step_s, kept, precision)
    said: list[str] = []

    def say(message: str) -> None:
        said.append(message)
        on_event(Notice(message))

    if not decision.compile:  # kept in the run's record, not said in the log: most runs are too short to compile
        return f"no: {decision.why}"
    layers = compiled.compile_layers(model, say)
    if not layers:
        say("torch.compile: no repeated layers found in this model; training on without it")
    elif torch.cuda.is_available():  # compiled on its first step, on the device (a failure still falls back)
        say(f"{layers} layers compiled with torch.compile ({decision.why})")
    elif (seconds := compiled.trial(model, precision, say)) is not None:
        calibration.put("compile_s", key, round(seconds, 1))
        say(f"{layers} layers compiled with torch.compile in {seconds:.0f} s ({decision.why})")
    return said[-1] if said else "no: the compile did not take"



def _total_steps(cfg: StudioConfig, rows: int) -> int:
    """The run's optimizer steps as the Trainer will count them (one process)."""
    t = cfg.train
    if t.max_steps > 0:
        return t.max_steps
    return max(1, math.ceil(t.epochs * math.ceil(math.ceil(rows / t.batch_size) / t.grad_accum)))


def _final_state(trainer) -> str:
    cb = trainer.studio_callback
    if cb.diverged:
        return "diverged"
    return "stopped" if cb.stopped else "completed"


def _save_artifacts(trainer, p: Prepared, run: Path) -> None:
    out = runs.Run(run).adapter if methods.of(p.config).adapter else runs.Run(run).model
    trainer.save_model(str(out))
    p.tokenizer.save_pretrained(str(out))
    (out / "training_args.bin").unlink(missing_ok=True)  # a pickle; config.yaml beside it says the same


def _last_loss(run: Path) -> float | None:
    losses = [m["loss"] for m in runs.read_metrics(run) if m.get("loss") is not None]
    return losses[-1] if losses else None


def _truncate_metrics(run: Path, step: int) -> None:
    kept = [m for m in runs.read_metrics(run) if m.get("step", 0) <= step]
    runs.write_jsonl(runs.Run(run).metrics_file, kept)


def _free_device() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass

