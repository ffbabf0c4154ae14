"""The GPU benchmark's CPU smoke run: the script that would measure a 1B model on a lent GPU still runs here,
end to end through the studio's own training (LoRA and QLoRA, packed), and prints its numbers."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it


def test_gpu_benchmark_runs_its_cpu_smoke_test(tmp_path):
    out = subprocess.run([sys.executable, "bench/gpu_train.py", "--tiny", "--steps", "8", "--batch", "2",
                          "--length", "64", "--kinds", "lora", "qlora", "--out", str(tmp_path / "r.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert [r["method"] for r in results] == ["lora", "qlora"]
    assert all(r["state"] == "completed" and r["packing"] and r["tokens_per_s"] > 0 for r in results), results
