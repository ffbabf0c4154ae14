"""The trainer glue: TRL's SFTTrainer with a per-step divergence check, and the callback that
turns the trainer's logs into the studio's metric records, honours Stop, and marks complete
checkpoints.

Records (one a line in metrics.jsonl, and sent to ``on_event``): ``step, epoch, loss,
learning_rate, grad_norm, tokens_per_s`` (non-padding tokens), ``memory_mb`` (CUDA peak, else
process RSS), ``elapsed_s, eta_s``; evaluation records carry ``eval_loss`` instead of ``loss``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import psutil
import torch
from transformers import PrinterCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer

from ..config import StudioConfig
from . import runs


def sft_args(cfg: StudioConfig, run: Path, precision: str, has_val: bool) -> SFTConfig:
    t = cfg.train
    evaluate = has_val and t.eval_steps > 0
    return SFTConfig(
        output_dir=str(run / "checkpoints"), per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size, gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.learning_rate, num_train_epochs=t.epochs, max_steps=t.max_steps or -1,
        lr_scheduler_type=t.scheduler, warmup_steps=t.warmup_ratio, weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm, bf16=precision == "bf16", fp16=precision == "fp16",
        activation_checkpointing=t.gradient_checkpointing, seed=t.seed, data_seed=t.seed,
        logging_steps=t.logging_steps, logging_first_step=True, logging_nan_inf_filter=False,
        eval_strategy="steps" if evaluate else "no", eval_steps=t.eval_steps if evaluate else None,
        save_strategy="steps" if t.save_steps else "no", save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit or None, report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, max_length=None, packing=False, dataset_num_proc=None,
        use_cpu=not torch.cuda.is_available(),
    )


class StudioTrainer(SFTTrainer):
    """SFTTrainer that remembers whether any micro-batch loss of the current step was not finite."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.remove_callback(PrinterCallback)  # the studio reports progress itself
        self._nonfinite = None
        self.studio_callback = next(c for c in self.callback_handler.callbacks if isinstance(c, StudioCallback))

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        bad = ~torch.isfinite(loss.detach())  # no device sync here; read once per optimizer step
        self._nonfinite = bad if self._nonfinite is None else (self._nonfinite | bad)
        return loss

    def step_diverged(self) -> bool:
        bad, self._nonfinite = self._nonfinite, None
        return bool(bad) if bad is not None else False


class StudioCallback(TrainerCallback):
    def __init__(self, run: Path, on_event, should_stop):
        self.run, self.on_event, self.should_stop = run, on_event, should_stop
        self.trainer: StudioTrainer | None = None
        self.stopped = self.diverged = False
        self._t0 = self._last_t = time.time()
        self._first_step = 0
        self._last_tokens = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t0 = self._last_t = time.time()
        self._first_step = state.global_step
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer is not None and self.trainer.step_diverged():
            self.diverged = True
            control.should_training_stop = True
            self._emit({"step": state.global_step, "epoch": state.epoch, "loss": None, "diverged": True})
        elif self.should_stop():
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True  # a checkpoint to resume from

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if self.diverged or ("loss" not in logs and "eval_loss" not in logs):
            return  # a diverged step was recorded by on_step_end
        now = time.time()
        record = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        if "eval_loss" in logs:
            record["eval_loss"] = logs["eval_loss"]
        else:
            tokens = float(logs.get("num_tokens", 0.0))
            dt = max(now - self._last_t, 1e-9)
            record.update(loss=logs["loss"], learning_rate=logs.get("learning_rate"),
                          grad_norm=logs.get("grad_norm"),
                          tokens_per_s=round(max(tokens - self._last_tokens, 0.0) / dt, 1))
            self._last_tokens, self._last_t = tokens, now
        done = state.global_step - self._first_step
        record.update(memory_mb=round(memory_mb(), 1), elapsed_s=round(now - self._t0, 3),
                      eta_s=round((now - self._t0) / done * (state.max_steps - state.global_step), 1) if done else None,
                      max_steps=state.max_steps)
        self._emit(record)

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            runs.write_atomic(ckpt / runs.COMPLETE, str(time.time()))
            runs.write_status(self.run, "running", step=state.global_step, checkpoint=ckpt.name)

    def _emit(self, record: dict) -> None:
        # JSON has no NaN: a non-finite value is written as null (the divergence check flags it).
        record = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        runs.append_metrics(self.run, record)
        runs.write_status(self.run, "running", step=record["step"])
        self.on_event({"kind": "metrics", **record})


def memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return psutil.Process().memory_info().rss / 2**20
