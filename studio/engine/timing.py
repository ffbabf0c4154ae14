"""How long a job will take on this machine, from what this machine measured: every LR range test, comparison,
server start and training run records its seconds per unit of work (a token trained, an example compared, a
start, an export) for its model's shape in the calibration (engine/calibration.py); the next job of the same kind and
shape is expected to take that many seconds per unit, times its own units. A job's first time on a machine has
an estimate only where a measurement stands in for it: the range test and training from one decoder layer's
timed step (engine/precision.py); the others say they are measuring. The kept rate is the mean of the last
ones (``KEEP``), so one run on a busy machine does not set it for good.
"""

from __future__ import annotations

import time
from pathlib import Path

from studio.engine import calibration

KEEP = 3  # the rates averaged: the last few measurements
JOBS = ("lr_find", "compare", "serve", "serve_merge", "train", "merge", "quantize", "gguf", "phrasings",
        "benchmark")


def shape_of(model_dir: str | Path | None) -> str:
    """The model's shape as the calibration keys it; its folder name where its config cannot be read."""
    from transformers import AutoConfig

    try:
        return calibration.shape(AutoConfig.from_pretrained(str(model_dir)))
    except (OSError, ValueError, TypeError):
        return Path(str(model_dir)).name


def _key(job: str, shape: str) -> str:
    assert job in JOBS, job
    return f"{calibration.machine()} | {job} | {shape}"


def record(job: str, shape: str, units: float, seconds: float) -> None:
    """A finished job's measurement: ``seconds`` for ``units`` of work."""
    if units <= 0 or seconds <= 0:
        return
    key = _key(job, shape)
    rates = (calibration.get("took", key) or [])[-(KEEP - 1):] + [round(seconds / units, 6)]
    calibration.put("took", key, rates)


def expected(job: str, shape: str, units: float) -> float | None:
    """The seconds a job of ``units`` should take here, or None when this machine has not measured one."""
    rates = calibration.get("took", _key(job, shape))
    return sum(rates) / len(rates) * units if rates else None


class Stopwatch:
    """``with Stopwatch(job, shape, units):`` records the block's seconds when it ends without an error."""

    def __init__(self, job: str, shape: str, units: float):
        self.job, self.shape, self.units = job, shape, units

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind, error, tb) -> None:
        if kind is None:
            record(self.job, self.shape, self.units, time.perf_counter() - self.started)


def said(seconds: float | None) -> str:
    """An estimate as a person reads it: "about 40 s", "about 3 min"; "" when there is none."""
    if seconds is None:
        return ""
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    return f"about {seconds / 60:.0f} min" if seconds < 5400 else f"about {seconds / 3600:.1f} h"


def step_seconds(model_dir: str | Path, precision: str, tokens: int) -> float | None:
    """A training step of ``tokens`` here: the rate this machine's training runs of the shape measured, else one
    decoder layer's timed step times the model's layers (an upper bound: the layer was timed with the model's
    embeddings and head); None when neither is known."""
    from studio.engine import precision as precisions

    rate = expected("train", f"{shape_of(model_dir)} | {precision}", tokens)
    if rate is not None:
        return rate
    layer = precisions.layer_timing(model_dir, tokens)
    if layer is None:
        return None
    return layer.get(precision, layer["fp32"]) * layer["layers"] * tokens / layer["tokens"]


def shape_of_run(run: str | Path) -> str:
    """A run's model shape: its own weights' where it saved a whole model, else its base's."""
    from studio.engine import runs
    from studio.engine.models import resolve_model

    r = runs.Run(Path(run))
    if (r.model / "config.json").is_file():
        return shape_of(r.model)
    try:
        return shape_of(resolve_model(r.config.model, config_only=True).path)
    except Exception:  # noqa: BLE001 - a base that cannot be found: the run's name for it keys the time
        return r.config.model.name
