"""Tokens per second and peak memory for full, LoRA and QLoRA on studio-tiny (CPU), and the
torch thread count that trains fastest here (each case in a fresh process, alternated).

Usage: python bench/methods.py [--steps 40] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from studio.settings import quiet_libraries; quiet_libraries()
from studio.config import StudioConfig
from studio.engine.train import loop as train
from studio.engine import runs
cfg = StudioConfig.from_dict(json.loads(sys.argv[2]))
res = train.run(cfg, sys.argv[3])
lines = [m for m in runs.read_metrics(res.run_dir) if m.get("loss") is not None][3:]
print(json.dumps({"state": res.state, "tps": [m["tokens_per_s"] for m in lines],
                  "mem": max(m["memory_mb"] for m in lines)}))
"""


def case(kind: str, steps: int, threads: int) -> dict:
    return {"data": {"path": str(ROOT / "assets/samples/chat.jsonl"), "max_length": 128, "val_size": 0},
            "model": {"name": "studio-tiny"}, "method": {"kind": kind, "target_modules": "all-linear"},
            "train": {"max_steps": steps, "batch_size": 8, "threads": threads, "logging_steps": 1}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--kinds", nargs="+", default=["full", "lora", "qlora"])
    a = ap.parse_args()
    env = {**os.environ, "STUDIO_HOME": tempfile.mkdtemp(prefix="bench-home-"), "HF_HUB_OFFLINE": "1"}
    print(f"studio-tiny, chat sample, batch 8, length <= 128, {a.steps} steps (first 3 skipped), CPU")
    print(f"{'method':7s} {'threads':>7s} {'tokens/s':>9s} {'peak RSS MB':>12s}")
    for kind in a.kinds:
        for threads in a.threads:
            out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), json.dumps(case(kind, a.steps, threads)),
                                  tempfile.mkdtemp()], env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{kind:7s} {threads:7d} {statistics.median(r['tps']):9.0f} {r['mem']:12.0f}")


if __name__ == "__main__":
    main()
