"""The learning-rate range test: which learning rate to start from.

Contract: ``lr_find(config, steps, lr_min, lr_max) -> LRCurve``: a throwaway copy of the model (the
config's base and method, loaded fresh and discarded) trains ``steps`` optimizer steps on the config's
data while the learning rate grows exponentially from ``lr_min`` to ``lr_max`` (Smith's range test, as in
fastai's ``lr_find``); it stops early once the smoothed loss is four times its minimum or not finite.
The suggestion follows one stated rule, ``RULE``: the learning rate at the minimum of the smoothed loss,
divided by 10 (the "minimum / 10" rule: the minimum itself is already on the edge of divergence).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from studio.config import StudioConfig

RULE = "the learning rate at the minimum of the smoothed loss, divided by 10"
SMOOTH = 0.9  # exponential smoothing of the loss (bias-corrected), as fastai does
BLOW_UP = 4.0


@dataclass
class LRCurve:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)  # raw
    smoothed: list[float] = field(default_factory=list)
    suggestion: float | None = None
    rule: str = RULE
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return {"lrs": self.lrs, "losses": self.losses, "smoothed": self.smoothed, "suggestion": self.suggestion,
                "rule": self.rule, "stopped_early": self.stopped_early}


def suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    if len(smoothed) < 5:
        return None
    best = min(range(len(smoothed)), key=smoothed.__getitem__)
    return lrs[best] / 10


def _batches(prepared, batch_size: int, seed: int):
    """An endless, seeded stream of padded batches from the training rows."""
    import torch
    from torch.utils.data import DataLoader

    from studio.engine.data.encode import collator

    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(prepared.train_rows, batch_size=batch_size, shuffle=True, generator=gen,
                        collate_fn=collator(prepared.tokenizer, objective=prepared.objective, seed=seed))
    while True:
        yield from loader


def lr_find(config: StudioConfig, steps: int = 100, lr_min: float = 1e-7, lr_max: float = 1.0,
            should_stop=None) -> LRCurve:
    import torch

    from studio.engine import methods, timing
    from studio.engine import precision as precisions
    from studio.engine.models import apply_method, load_model
    from studio.engine.train.loop import batch_tokens, prepare, set_threads

    if methods.of(config).own_data_order:
        from studio.config import ConfigError

        raise ConfigError(f"the LR finder runs on supervised data; for method.kind {config.method.kind} use a short "
                          "sweep instead")
    started = time.perf_counter()
    set_threads(config.train.threads)
    prepared = prepare(config)
    # the precision the run itself would train in (bf16 autocast where this CPU measured it faster)
    precision = precisions.choose(config.train.precision, prepared.resolved.path, methods.of(config),
                                  batch_tokens(prepared)).name
    model = apply_method(load_model(prepared.resolved, config.model, config.method, precision, prepared.tokenizer,
                                    objective=prepared.objective), config.method, config.train.gradient_checkpointing)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr_min, weight_decay=config.train.weight_decay)
    device = next(model.parameters()).device
    curve, avg = LRCurve(), 0.0
    for i, batch in enumerate(_batches(prepared, config.train.batch_size, config.train.seed)):
        if i >= steps or (should_stop and should_stop()):
            break
        lr = lr_min * (lr_max / lr_min) ** (i / max(1, steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16" and device.type == "cpu"):
            loss = model(**{k: v.to(device) for k, v in batch.items()}).loss
        loss.backward()
        if config.train.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(params, config.train.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if not math.isfinite(value):
            curve.stopped_early = True
            break
        avg = SMOOTH * avg + (1 - SMOOTH) * value
        curve.lrs.append(lr)
        curve.losses.append(value)
        curve.smoothed.append(avg / (1 - SMOOTH ** (i + 1)))
        if i > 10 and curve.smoothed[-1] > BLOW_UP * min(curve.smoothed):
            curve.stopped_early = True
            break
    del model, opt
    curve.suggestion = suggest(curve.lrs, curve.smoothed)
    if curve.lrs and not (should_stop and should_stop()):  # the next range test's estimate: seconds a step here
        timing.record("lr_find", lr_find_key(prepared.resolved.path, config, precision), len(curve.lrs),
                      time.perf_counter() - started)
    return curve


def lr_find_key(model_dir, config: StudioConfig, precision: str) -> str:
    """What a range test's time depends on: the model's shape, the precision, the batch and the length."""
    from studio.engine import timing

    return f"{timing.shape_of(model_dir)} | {precision} | batch {config.train.batch_size} x {config.data.max_length}"


def expected_seconds(config: StudioConfig, steps: int = 100) -> float | None:
    """How long a range test of this config should take here (None: this machine has not run one like it)."""
    from studio.engine import methods, timing
    from studio.engine import precision as precisions
    from studio.engine.models import resolve_model

    try:
        model_dir = resolve_model(config.model, config_only=True).path
    except Exception:  # noqa: BLE001 - no estimate for a model that cannot be found; the job itself will say why
        return None
    for precision in ("bf16", "fp32") if precisions.cpu_bf16() and methods.of(config).cpu_tuned else ("fp32",):
        found = timing.expected("lr_find", lr_find_key(model_dir, config, precision), steps)
        if found is not None:
            return found
    return None
