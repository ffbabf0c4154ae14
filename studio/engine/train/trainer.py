"""The trainer glue: a Hugging Face Trainer with a per-step divergence check and token count,
and the callback that turns its logs into the studio's metric records, honours Stop, and marks
complete checkpoints.

Why not TRL's SFTTrainer: the studio tokenizes and masks itself (encode.py handles templates
without generation markers, which TRL refuses), so SFTTrainer had nothing left to do but its
per-step entropy/accuracy metrics; with them and its import, the same LoRA job took 1.10x the
wall time of a plain Trainer + PEFT script (bench/train_overhead.py). TRL stays for DPO, KTO, the reward model and RL.

Records (one a line in metrics.jsonl, and sent to ``on_event``): ``step, epoch, loss,
learning_rate, grad_norm, tokens_per_s`` (non-padding tokens), ``memory_mb`` (CUDA peak, else
process RSS), ``elapsed_s, eta_s``; evaluation records carry ``eval_loss`` instead of ``loss``; TRL's
trainers add what they measure (``TRL_LOGS``: reward accuracy and margin, RL's mean reward).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

import psutil
import torch
from transformers import (
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from studio.config import StudioConfig
from studio.engine import methods, objectives, runs
from studio.engine.events import Metrics
from studio.engine.train.doctor import Doctor
from studio.engine.train.trackers import PROJECT

STATUS_EVERY_S = 5.0  # status.json is rewritten at most this often while training
# What TRL's trainers log beyond the loss, kept in the records: a reward model's pair accuracy and margin, an RL
# stage's mean reward of its samples (and its spread).
TRL_LOGS = ("accuracy", "margin", "eval_accuracy", "reward", "reward_std")


def training_args(cfg: StudioConfig, run: Path, precision: str, has_val: bool,
                  objective: str = "causal_lm") -> TrainingArguments:
    """Trainer arguments: the studio's settings in the Trainer's terms, in the method's own class where it has
    one (TRL's DPOConfig, KTOConfig, RewardConfig, GRPOConfig)."""
    method = methods.of(cfg)
    evaluate = has_val and cfg.train.eval_steps > 0 and method.evaluates
    if method.training_args:
        return method.training_args(_common(cfg, run, precision, evaluate), cfg)
    if objectives.find(objective).splits_prompt:
        from transformers import Seq2SeqTrainingArguments

        return Seq2SeqTrainingArguments(**_common(cfg, run, precision, evaluate))
    return TrainingArguments(**_common(cfg, run, precision, evaluate))


def _common(cfg: StudioConfig, run: Path, precision: str, evaluate: bool) -> dict:
    t = cfg.train
    return _early_stopping(t, evaluate) | dict(
        output_dir=str(runs.Run(run).checkpoint_dir), per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate, num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        lr_scheduler_type=t.scheduler, warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, bf16=precision == "bf16", fp16=precision == "fp16",
        activation_checkpointing=t.gradient_checkpointing, seed=t.seed, data_seed=t.seed,
        logging_steps=t.logging_steps, logging_first_step=True, logging_nan_inf_filter=False,
        eval_strategy="steps" if evaluate else "no", eval_steps=t.eval_steps if evaluate else None,
        save_strategy="steps" if t.save_steps or (evaluate and t.early_stopping_patience) else "no",
        save_steps=t.eval_steps if evaluate and t.early_stopping_patience else (t.save_steps or 500),
        save_total_limit=t.save_total_limit or None, report_to=list(t.report_to) or "none", disable_tqdm=True,
        run_name=run.name, project=PROJECT,
        dataloader_num_workers=0, remove_unused_columns=False,  # the studio's rows carry what the model takes
        use_cpu=not torch.cuda.is_available(), use_liger_kernel=t.liger_kernel,
    ) | _sampling(cfg)


def _sampling(cfg: StudioConfig) -> dict:
    """Length-grouped batches where the sampler can measure an example; TRL's trainers keep their own order (KTO
    pairs each example with its neighbours for the KL term, GRPO repeats each prompt for its samples)."""
    if methods.of(cfg).own_data_order:
        return {}
    return {"train_sampling_strategy": "group_by_length" if cfg.train.group_by_length else "random"}


def _early_stopping(t, evaluate: bool) -> dict:
    """With patience, a checkpoint at every evaluation and the best one loaded at the end (the Trainer's own
    machinery: the best checkpoint survives save_total_limit)."""
    if not (t.early_stopping_patience and evaluate):
        return {}
    return {"load_best_model_at_end": True, "metric_for_best_model": "eval_loss", "greater_is_better": False}


class StudioMixin:
    """Counts non-padding tokens and remembers whether any micro-batch loss of the current step was
    not finite; both stay on the device until read (no sync per micro-batch)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.remove_callback(PrinterCallback)  # the studio reports progress itself
        self._nonfinite = None
        self._tokens = None
        self._slots = 0
        self.studio_callback = next(c for c in self.callback_handler.callbacks if isinstance(c, StudioCallback))

    def training_step(self, model, inputs, num_items_in_batch=None):
        # none when packed: every token is real; GRPO's inputs are its prompts (it samples and tokenizes inside)
        batch = inputs if isinstance(inputs, Mapping) else {}  # a collator's BatchEncoding is a Mapping
        mask = batch.get("attention_mask")
        ids = batch.get("input_ids")
        tokens = mask.sum().detach() if mask is not None else torch.tensor(ids.numel() if ids is not None else 0)
        slots = mask.numel() if mask is not None else (ids.numel() if ids is not None else 0)
        loss = super().training_step(model, inputs, num_items_in_batch)
        bad = ~torch.isfinite(loss.detach())
        self._nonfinite = bad if self._nonfinite is None else (self._nonfinite | bad)
        self._tokens = tokens if self._tokens is None else self._tokens + tokens
        self._slots += slots
        return loss

    def take_tokens(self) -> tuple[int, int]:
        """(non-padding tokens, all token slots) trained since the last call."""
        n, self._tokens = self._tokens, None
        slots, self._slots = self._slots, 0
        return (int(n) if n is not None else 0), slots

    def step_diverged(self) -> bool:
        bad, self._nonfinite = self._nonfinite, None
        return bool(bad) if bad is not None else False


class StudioTrainer(StudioMixin, Trainer):
    """The SFT trainer: a plain Hugging Face Trainer with the studio's checks."""


def sft_trainer_class(objective: str):
    """The plain Trainer, or Seq2SeqTrainer for an encoder-decoder (the same loss; it knows generation too)."""
    if not objectives.find(objective).splits_prompt:
        return StudioTrainer
    from transformers import Seq2SeqTrainer

    return type("StudioSeq2SeqTrainer", (StudioMixin, Seq2SeqTrainer), {})


def studio_trainer(base: type) -> type:
    """A method's own trainer (TRL's DPOTrainer, KTOTrainer, RewardTrainer, GRPOTrainer) with the studio's checks."""
    return type(f"Studio{base.__name__}", (StudioMixin, base), {})


WEIGHTS_EVERY = 10  # steps between looks at the trainable weights (one device sync each)


class StudioCallback(TrainerCallback):
    def __init__(self, run: Path, on_event, should_stop, doctor: Doctor):
        self.run, self.on_event, self.should_stop, self.doctor = run, on_event, should_stop, doctor
        self.trainer: StudioTrainer | None = None
        self.stopped = False
        self._t0 = self._last_t = self._last_status = time.time()
        self._first_step = 0
        self._num_tokens = 0  # a TRL trainer's running token count at the last record

    @property
    def diverged(self) -> bool:
        return self.doctor.dead is not None

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._last_t = time.time()
        self._first_step = state.global_step
        self.doctor.facts.max_steps = state.max_steps
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer is not None and self.trainer.step_diverged():
            self._emit({"step": state.global_step, "epoch": state.epoch, "loss": None, "diverged": True})
        elif state.global_step % WEIGHTS_EVERY == 0:
            self._look_at_weights(state.global_step)
        if self.diverged:
            control.should_training_stop = True
        elif self.should_stop():
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True  # a checkpoint to resume from

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not self.diverged:
            self._look_at_weights(state.global_step)
            self.report(self.doctor.at_end(state.global_step))

    def _look_at_weights(self, step: int) -> None:
        params = [p.detach() for p in self.trainer.model.parameters() if p.requires_grad] if self.trainer else []
        if params:
            biggest = float(torch.stack([p.abs().max().float() for p in params]).max())
            self.report(self.doctor.weights(biggest, math.isfinite(biggest), step))

    def report(self, findings: list) -> None:
        if not findings:
            return
        runs.write_status(self.run, "running", findings=[f.to_dict() for f in self.doctor.findings])
        for f in findings:
            self.on_event(f)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:
            return  # one writer per run: the first process
        logs = logs or {}
        if self.diverged or ("loss" not in logs and "eval_loss" not in logs):
            return  # a diverged step was recorded by on_step_end
        now = time.time()
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        if "eval_loss" in logs:
            record["eval_loss"] = logs["eval_loss"]
        else:
            tokens, slots = self.trainer.take_tokens() if self.trainer is not None else (0, 0)
            if not tokens and logs.get("num_tokens"):  # GRPO tokenizes inside: its own running count
                tokens, self._num_tokens = int(logs["num_tokens"] - self._num_tokens), int(logs["num_tokens"])
            dt = max(now - self._last_t, 1e-9)
            record.update(loss=logs["loss"], learning_rate=logs.get("learning_rate"),
                          grad_norm=logs.get("grad_norm"), tokens_per_s=round(tokens / dt, 1),
                          padding_share=round(1 - tokens / slots, 4) if slots else None)
            self._last_t = now
        record.update({k: logs[k] for k in TRL_LOGS if k in logs})
        done = state.global_step - self._first_step
        record.update(memory_mb=round(memory_mb(), 1), elapsed_s=round(now - self._t0, 3),
                      eta_s=round((now - self._t0) / done * (state.max_steps - state.global_step), 1) if done else None,
                      max_steps=state.max_steps)
        self._emit(record)
        if self.diverged:
            control.should_training_stop = True

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            runs.write_atomic(ckpt / runs.COMPLETE, str(time.time()))
            runs.write_status(self.run, "running", step=state.global_step, checkpoint=ckpt.name)

    def _emit(self, record: dict) -> None:
        # JSON has no NaN: a non-finite value is written as null (the divergence check flags it).
        record = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        runs.append_metrics(self.run, record)
        if time.time() - self._last_status >= STATUS_EVERY_S:
            runs.write_status(self.run, "running", step=record["step"])
            self._last_status = time.time()
        self.on_event(Metrics(record))
        self.report(self.doctor.observe(record))


def memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return psutil.Process().memory_info().rss / 2**20
