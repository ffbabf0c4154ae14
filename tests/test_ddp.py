"""The same `studio train` as two processes (gloo DDP on CPU, under torchrun) and as one process with
the same global batch: the loss curves match; only the first process writes the run directory."""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, SAMPLES

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it

CONFIG = {"data": {"path": str(SAMPLES / "instructions.json"), "val_size": 0, "max_length": 64},
          "model": {"name": "studio-tiny"}, "method": {"kind": "full"},
          "train": {"max_steps": 6, "batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "threads": 1,
                    "warmup_ratio": 0, "group_by_length": False}}  # length groups are drawn per process: a
# different (equally valid) order under DDP, so the one-process twin would not see the same batches


def losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]


def test_two_process_ddp_matches_one_process(tmp_path, studio_home):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "STUDIO_HOME": str(studio_home)}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "studio",
                          "train", str(cfg), "--output-dir", str(tmp_path / "ddp")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    one = subprocess.run([sys.executable, "-m", "studio", "train", str(cfg), "--set", "train.batch_size=8",
                          "--output-dir", str(tmp_path / "one")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    a, b = losses(tmp_path / "ddp"), losses(tmp_path / "one")
    assert len(a) == len(b) == 6
    assert all(abs(x - y) <= 1e-3 * abs(y) for x, y in zip(a, b)), (a, b)
    assert json.loads((tmp_path / "ddp" / "status.json").read_text())["state"] == "completed"
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 6  # one writer, not two


def test_several_processes_need_an_output_dir(tmp_path, studio_home):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    out = subprocess.run([sys.executable, "-m", "studio", "train", str(cfg)], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "WORLD_SIZE": "2", "RANK": "0"})
    assert out.returncode == 2 and "--output-dir" in out.stderr
