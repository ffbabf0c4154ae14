"""The command line as a user runs it: real subprocesses, exit codes, one-line errors."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLES, eventually

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it


def studio(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=600)


def test_check_data_json_report():
    out = studio("check-data", SAMPLES / "instructions.json", "--json", "--max-length", "20")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["format"] == "alpaca" and r["records"] == 400 and r["examples"] == 400
    assert set(r["lengths"]) == {"min", "median", "p95", "max", "over_max_length"}
    assert r["lengths"]["min"] <= r["lengths"]["median"] <= r["lengths"]["p95"] <= r["lengths"]["max"]
    assert r["lengths"]["over_max_length"] > 0 and r["empty"] == 0 and r["duplicates"] == 0


def test_train_runs_resume_and_estimate(tmp_path):
    run_dir = tmp_path / "run"
    out = studio("train", ROOT / "assets/configs/quickstart.yaml", "--set", "train.max_steps=4",
                 "--set", "train.save_steps=2", "--set", "train.eval_steps=0", "--output-dir", run_dir)
    assert out.returncode == 0, out.stderr
    assert "completed at step 4" in out.stdout and "Traceback" not in out.stderr
    assert json.loads((run_dir / "status.json").read_text())["state"] == "completed"
    again = studio("train", ROOT / "assets/configs/quickstart.yaml", "--output-dir", run_dir)
    assert again.returncode == 2 and "already holds a run" in again.stderr
    listed = {r["path"]: r for r in json.loads(studio("runs", "--json").stdout)}
    assert listed[str(run_dir)]["state"] == "completed" and listed[str(run_dir)]["step"] == 4
    resumed = studio("resume", run_dir)
    assert resumed.returncode == 0, resumed.stderr  # from checkpoint-4: nothing left to do, still completed
    est = studio("estimate", ROOT / "assets/configs/qlora.yaml", "--json")
    assert est.returncode == 0 and json.loads(est.stdout)["total_mb"] > 0


def test_bad_config_is_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data:\n  path: x.jsonl\ntrain:\n  learning_rate: 0\n")
    out = studio("train", cfg)
    assert out.returncode == 2 and out.stderr.strip() == "error: train.learning_rate must be > 0, got 0"
    out = studio("train", ROOT / "assets/configs/quickstart.yaml", "--set", "train.lr=1")
    assert out.returncode == 2 and "unknown key 'train.lr'" in out.stderr and out.stderr.count("\n") == 1
    out = studio("resume", tmp_path)
    assert out.returncode == 2 and "not a run directory" in out.stderr


def test_ctrl_c_stops_after_the_step_with_a_checkpoint(tmp_path):
    import os
    import signal

    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "studio", "train", ROOT / "assets/configs/quickstart.yaml",
                             "--set", "train.max_steps=5000", "--set", "train.logging_steps=1",
                             "--output-dir", run_dir], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())
    eventually(lambda: (run_dir / "metrics.jsonl").is_file(), timeout=120, what="the first logged step")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped at step" in out and "Traceback" not in err
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "stopped" and status["step"] < 5000
    assert (run_dir / "checkpoints" / f"checkpoint-{status['step']}" / "COMPLETE").is_file()
