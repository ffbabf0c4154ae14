"""A hyperparameter sweep: short runs over a grid, searched and pruned by Optuna.

Contract: ``parse_grid(["train.learning_rate=1e-4,3e-4", "method.lora_r=8,16"]) -> {key: [values]}``;
``Sweep(config, grid).run(train_one)`` asks Optuna's ``GridSampler`` for each setting and trains it with
``train_one(config, report, should_stop) -> RunResult`` (the CLI trains in-process, the UI through the
job queue). Each evaluation's loss is reported to the trial; Optuna's ``MedianPruner`` stops a trial whose
eval loss is worse than the median of the earlier trials at the same step (after 2 complete trials and
the first evaluation), and the run says "pruned". The result has a row per trial (final and best eval
loss), the best setting, and ``best.yaml``, the best config, in ``STUDIO_HOME/sweeps/<name>/``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from studio.config import ConfigError, StudioConfig
from studio.engine import runs
from studio.policy import policy
from studio.settings import studio_home


def max_trials() -> int:
    """How many runs a sweep may make (``STUDIO_MAX_TRIALS``; 16 on a public deployment, 256 locally)."""
    return policy().max_trials



MAX_GRID_CHARS = 2000  # a grid's text


def parse_grid(items: list[str]) -> dict[str, list]:
    """``section.key=v1,v2,...`` strings -> {key: [values]}: numbers stay numbers, the rest is read as YAML."""
    grid: dict[str, list] = {}
    if sum(len(i) for i in items) > MAX_GRID_CHARS:
        raise ConfigError(f"the grid is longer than {MAX_GRID_CHARS:,} characters")
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or "." not in key or not values.strip():
            raise ConfigError(f"--grid expects section.key=v1,v2,..., got {item!r}")
        grid[key.strip()] = [_value(v.strip()) for v in values.split(",") if v.strip()]
    if not grid:
        raise ConfigError("a sweep needs at least one --grid")
    return grid


def _value(text: str):
    """A number when it reads as one (YAML 1.1 takes ``1e-3`` for a string), else YAML's reading."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


class TrialFailed(Exception):
    """A trial whose run failed or diverged: the sweep goes on."""


@dataclass
class Trial:
    number: int
    settings: dict
    state: str = "queued"  # queued | running | completed | pruned | failed | diverged
    run_dir: str | None = None
    final_eval_loss: float | None = None
    best_eval_loss: float | None = None
    error: str | None = None


@dataclass
class SweepResult:
    name: str
    folder: Path
    trials: list[Trial] = field(default_factory=list)
    best: Trial | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "folder": str(self.folder), "trials": [vars(t) for t in self.trials],
                "best": vars(self.best) if self.best else None}


class Sweep:
    def __init__(self, config: StudioConfig, grid: dict[str, list], name: str | None = None):
        self.config, self.grid = config, grid
        self.name = name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
        trials = math.prod(len(v) for v in grid.values())  # counted before anything is enumerated
        if trials > max_trials():
            raise ConfigError(f"the grid makes {trials:,} runs; a sweep runs at most {max_trials()} "
                              "(STUDIO_MAX_TRIALS): try fewer values")
        self.settings = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
        for s in self.settings:  # every setting must make a valid config before anything trains
            self.config_for(s, 0)
        self.result = SweepResult(self.name, studio_home() / "sweeps" / self.name,
                                  [Trial(i, s) for i, s in enumerate(self.settings)])

    def config_for(self, setting: dict, number: int) -> StudioConfig:
        cfg = self.config.with_overrides([f"{k}={json.dumps(v)}" for k, v in setting.items()])
        if not cfg.train.eval_steps:  # pruning compares evaluations: four per trial
            steps = cfg.train.max_steps or 40
            cfg = replace(cfg, train=replace(cfg.train, eval_steps=max(1, steps // 4)))
        return replace(cfg, run_name=f"{self.name}-{number}")

    def run(self, train_one: Callable, should_stop: Callable[[], bool] = lambda: False) -> SweepResult:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.GridSampler(self.grid, seed=0),
                                    pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))

        def objective(trial) -> float:
            if should_stop():
                study.stop()
                raise optuna.TrialPruned()
            return self._one(trial, train_one, should_stop)

        study.optimize(objective, n_trials=len(self.settings), catch=(TrialFailed,))
        self._finish()
        return self.result

    def _one(self, trial, train_one: Callable, should_stop: Callable[[], bool]) -> float:
        import optuna

        setting = {k: trial.suggest_categorical(k, v) for k, v in self.grid.items()}
        row = self.result.trials[self.settings.index(setting)]
        row.state, losses, pruned = "running", [], {"now": False}

        def report(step: int, eval_loss: float) -> None:
            losses.append(eval_loss)
            trial.report(eval_loss, step)
            pruned["now"] = pruned["now"] or trial.should_prune()

        result = train_one(self.config_for(setting, row.number), report, lambda: pruned["now"] or should_stop())
        row.run_dir, row.error = str(result.run_dir), result.error
        row.final_eval_loss, row.best_eval_loss = (losses[-1], min(losses)) if losses else (None, None)
        if pruned["now"]:
            row.state = "pruned"
            runs.write_status(Path(result.run_dir), "stopped", pruned=True,
                              error="pruned by the sweep: its eval loss was worse than the median of the earlier "
                                    "trials at the same step")
            raise optuna.TrialPruned()
        if result.state not in ("completed", "stopped") or row.best_eval_loss is None:
            row.state = result.state if result.state != "stopped" else "failed"
            raise TrialFailed(row.error or row.state)
        row.state = "completed"
        return row.best_eval_loss

    def _finish(self) -> None:
        done = [t for t in self.result.trials if t.state == "completed"]
        self.result.best = min(done, key=lambda t: t.best_eval_loss) if done else None
        folder = self.result.folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(self.result.to_dict(), indent=1))
        if self.result.best is not None:
            best = self.config_for(self.result.best.settings, self.result.best.number)
            (folder / "best.yaml").write_text(replace(best, run_name=f"{self.name}-best").to_yaml())
