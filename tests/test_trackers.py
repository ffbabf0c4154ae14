"""Runs recorded where people already look (train.report_to), through the Trainer's own integrations, offline:
TensorBoard's event files hold the loss the studio charts; trackio writes its local store; a tracker that is not
installed is one line; a public deployment offers only the local ones."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES, tiny_config

from studio.config import ConfigError, StudioConfig
from studio.engine import runs
from studio.engine.train import trackers
from studio.engine.train.prepare import preflight


@pytest.mark.slow
def test_tensorboard_and_trackio_record_the_loss_the_studio_charts(tmp_path):
    """`studio train` with both trackers, in a fresh process with its own studio home: TensorBoard's events in the
    run folder, trackio's store under the home (offline), each with the losses of metrics.jsonl."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    home, run = tmp_path / "home", tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={
        "max_steps": 6, "report_to": ["tensorboard", "trackio"]})).to_yaml())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRACKIO_", "WANDB_", "MLFLOW_"))}
    done = subprocess.run([sys.executable, "-m", "studio", "train", str(config), "--output-dir", str(run)],
                          cwd=ROOT, env={**env, "STUDIO_HOME": str(home), "HF_HUB_OFFLINE": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tensorboard --logdir" in done.stdout and "trackio show" in done.stdout  # where to look, said once
    ours = {m["step"]: m["loss"] for m in runs.read_metrics(run) if m.get("loss") is not None}
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    theirs = {e.step: e.value for e in events.Scalars("train/loss")}
    assert set(theirs) == set(ours) and all(abs(theirs[s] - ours[s]) < 1e-4 for s in ours), (theirs, ours)
    stores = list((home / "trackers" / "trackio").rglob("*.db"))
    assert stores, list(home.rglob("*"))[:20]
    logged = []
    for db in stores:
        with sqlite3.connect(db) as con:
            tables = [t for (t,) in con.execute("select name from sqlite_master where type='table'")]
            if "metrics" in tables:
                logged += [json.loads(m) for (m,) in con.execute("select metrics from metrics")]
    losses = [m["train/loss"] for m in logged if "train/loss" in m]
    assert len(losses) == len(ours) and abs(losses[-1] - ours[max(ours)]) < 1e-4, (logged[:3], ours)


def test_a_tracker_that_is_not_installed_is_one_line(monkeypatch):
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={"report_to": ["wandb"]}))
    with pytest.raises(ConfigError, match=r"train.report_to wandb: the wandb package is not installed \(pip install"):
        preflight(cfg)
    with pytest.raises(ConfigError, match="must be a list of tensorboard, trackio, mlflow, wandb"):
        StudioConfig.from_dict({"train": {"report_to": ["comet"]}})


def test_a_public_deployment_records_visitors_runs_locally_only(monkeypatch):
    from studio.engine import gate
    from studio.engine.errors import StudioError

    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    for remote in ("wandb", "mlflow"):
        with pytest.raises(StudioError, match=f"report_to {remote} is not offered"):
            gate.check_trackers([remote])
    gate.check_trackers(["tensorboard", "trackio"])
    monkeypatch.setenv("TRACKIO_SPACE_ID", "operator/dashboard")  # trackio would push with the operator's token
    with pytest.raises(StudioError, match="report_to trackio is not offered"):
        gate.check_trackers(["trackio"])


def test_the_tracker_line_names_no_server_path_on_a_public_deployment(monkeypatch, tmp_path):
    from studio.engine.train import trackers

    cfg = StudioConfig.from_dict({"train": {"report_to": ["tensorboard", "trackio"]}})
    run = tmp_path / "secret-home" / "runs" / "r1"
    local = "; ".join(trackers.where(cfg, run))
    assert f"tensorboard --logdir {run / 'tensorboard'}" in local  # one's own machine: the command to run
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    public = "; ".join(trackers.where(cfg, run))
    assert "secret-home" not in public and str(tmp_path) not in public and "r1/tensorboard" in public
