"""Runs recorded where people already look: TensorBoard, trackio, MLflow, W&B, through the Trainer's own
integrations (``train.report_to``), offline first.

Contract: ``check(config)`` raises ``ConfigError`` in one line for a tracker whose package is missing (called by
``preflight``, so Start answers before loading anything); ``local_first(config)`` points each chosen tracker at the
studio's home unless the user configured it (trackio and W&B write locally, MLflow to a file store: nothing leaves
the machine unless the user set a remote) and must run before the Trainer is built; ``place(trainer, run)`` puts
TensorBoard's event files in ``RUN/tensorboard``; ``where(config, run)`` says, per tracker, how to look at the run.
The Trainer logs the same ``loss`` the studio's metrics.jsonl records, at the same steps.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from studio.config import ConfigError, StudioConfig
from studio.policy import policy
from studio.settings import studio_home

PROJECT = "studio"  # trackio's project, MLflow's experiment, W&B's project
PACKAGE = {"tensorboard": "tensorboard", "trackio": "trackio", "mlflow": "mlflow", "wandb": "wandb"}


def check(config: StudioConfig) -> None:
    for tracker in config.train.report_to:
        if importlib.util.find_spec(PACKAGE[tracker]) is None:
            raise ConfigError(f"train.report_to {tracker}: the {PACKAGE[tracker]} package is not installed "
                              f"(pip install {PACKAGE[tracker]}), or leave {tracker} out")


def local_first(config: StudioConfig) -> None:
    home = studio_home() / "trackers"
    chosen = set(config.train.report_to)
    if "trackio" in chosen:
        os.environ.setdefault("TRACKIO_DIR", str(home / "trackio"))  # read when trackio is first imported
    if "wandb" in chosen:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(home))
        os.environ.setdefault("WANDB_PROJECT", PROJECT)
    if "mlflow" in chosen:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (home / "mlruns").resolve().as_uri())
        os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", PROJECT)


def place(trainer, run: Path) -> None:
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is None:
            callback.logging_dir = str(run / "tensorboard")


def where(config: StudioConfig, run: Path) -> list[str]:
    """Per tracker, how to look at the run: a command on one's own machine; on a public deployment, where it is
    kept, with no server path (the run's folder name only; the operator opens it)."""
    if not policy().shows_server:
        kept = {"tensorboard": f"event files in the run's folder ({run.name}/tensorboard)",
                "trackio": f"this deployment's trackio project {PROJECT} (the operator opens it)"}
        return [f"{tracker}: {kept.get(tracker, 'recorded')}" for tracker in config.train.report_to]
    home = studio_home() / "trackers"
    mlruns = os.environ.get("MLFLOW_TRACKING_URI", (home / "mlruns").resolve().as_uri())
    say = {"tensorboard": f"tensorboard --logdir {run / 'tensorboard'}",
           "trackio": f"TRACKIO_DIR={os.environ.get('TRACKIO_DIR', home / 'trackio')} trackio show --project "
                      f"{PROJECT}",
           "mlflow": f"mlflow ui --backend-store-uri {mlruns}",
           "wandb": f"wandb sync {os.environ.get('WANDB_DIR', home)}/wandb/offline-run-* (offline; then W&B's page)"}
    return [f"{tracker}: {say[tracker]}" for tracker in config.train.report_to]
