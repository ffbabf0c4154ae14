"""The PEFT family on one task and budget: LoRA, AdaLoRA, IA3, prefix, P-tuning and prompt tuning
on studio-tiny, the chat.jsonl sample, the same steps, batch and seed; each at a learning rate fitted to its
kind (the few parameters of the prompt methods need a far larger one). Prints trainable parameters,
median tokens/s, peak RSS, the final eval loss and ROUGE-L of the tuned model (greedy, the validation split),
in one process per method, one after the other.

    python bench/peft_methods.py [--steps 60] [--kinds lora adalora ...] [--lr adalora=1e-2]
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
LR = {"lora": 2e-3, "adalora": 1e-2, "ia3": 3e-2, "prefix": 3e-2, "ptuning": 1e-2, "prompt": 1e-1}

ONE = r"""
import json, sys
from studio.config import EvalConfig, StudioConfig
from studio.engine.events import TrainingInfo
from studio.engine.judge.evaluate import evaluate_run
from studio.engine.train import loop
cfg = StudioConfig.from_dict(json.loads(sys.argv[1]))
seen = []
result = loop.run(cfg, sys.argv[2], seen.append)
info = next(e for e in seen if isinstance(e, TrainingInfo))
s = evaluate_run(result.run_dir, limit=24, settings=EvalConfig(max_new_tokens=48, bertscore=False), name="bench")
print(json.dumps({"state": result.state, "trainable": info.trainable_params, "rougeL": s.tuned["rougeL"].value,
                  "base_rougeL": s.base["rougeL"].value}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--kinds", nargs="+", default=list(LR))
    ap.add_argument("--lr", action="append", default=[], metavar="KIND=LR", help="another learning rate for a kind")
    a = ap.parse_args()
    LR.update({k: float(v) for k, v in (x.split("=") for x in a.lr)})
    work = Path(tempfile.mkdtemp(prefix="peft-bench-"))
    env = {**os.environ, "STUDIO_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    print(f"{'method':8s} {'LR':>7s} {'trainable':>10s} {'tokens/s':>9s} {'peak MB':>8s} {'eval loss':>9s} "
          f"{'ROUGE-L':>8s}")
    for kind in a.kinds:
        lr = LR[kind]
        cfg = {"data": {"path": str(ROOT / "assets/samples/chat.jsonl")}, "model": {"name": "studio-tiny"},
               "method": {"kind": kind}, "train": {"max_steps": a.steps, "batch_size": 8, "learning_rate": lr,
                                                   "eval_steps": a.steps, "threads": 2}}
        run = work / kind
        out = subprocess.run([sys.executable, "-c", ONE, json.dumps(cfg), str(run)], capture_output=True,
                             text=True, env=env, cwd=ROOT)
        if out.returncode:
            print(f"{kind:8s} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        said = json.loads(out.stdout.strip().splitlines()[-1])
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        speed = statistics.median(m["tokens_per_s"] for m in metrics if m.get("tokens_per_s"))
        peak = max(m.get("memory_mb", 0) for m in metrics)
        evals = [m["eval_loss"] for m in metrics if m.get("eval_loss") is not None]
        print(f"{kind:8s} {lr:7.0e} {said['trainable']:10,d} {speed:9.0f} {peak:8.0f} {evals[-1]:9.4f} "
              f"{said['rougeL']:8.3f}   (base ROUGE-L {said['base_rougeL']:.3f})")


if __name__ == "__main__":
    main()
