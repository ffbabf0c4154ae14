"""Wall time of the same LoRA job through `studio train` and through a plain HF Trainer + PEFT
script (bench/plain_trainer.py), alternated in one session; prints the median ratio.

Goal: studio / plain <= 1.05. Usage: python bench/train_overhead.py [--reps 3] [--steps 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(cmd: list[str], env: dict) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    from studio.engine.tiny import ensure_studio_tiny

    home = tempfile.mkdtemp(prefix="bench-home-")
    env = {**os.environ, "STUDIO_HOME": home, "HF_HUB_OFFLINE": "1"}
    model = ensure_studio_tiny(Path(home))
    data = ROOT / "assets" / "samples" / "instructions.json"
    studio = [sys.executable, "-m", "studio", "train", str(ROOT / "assets/configs/quickstart.yaml"),
              "--set", "method.kind=lora", "--set", "method.target_modules=all-linear",
              "--set", "method.objective=instruction", "--set", f"train.max_steps={a.steps}",
              "--set", f"train.batch_size={a.batch}", "--set", f"data.max_length={a.length}",
              "--set", "data.val_size=0", "--set", "train.eval_steps=0", "--set", "train.logging_steps=1",
              "--set", "train.learning_rate=2e-4", "--set", f"train.threads={a.threads}"]
    plain = [sys.executable, str(ROOT / "bench" / "plain_trainer.py"), str(model), str(data), str(a.steps),
             str(a.batch), str(a.length), str(a.threads), tempfile.mkdtemp()]
    ratios, s_times, p_times = [], [], []
    for _ in range(a.reps):
        p_times.append(timed(plain, env))
        s_times.append(timed(studio, env))
        ratios.append(s_times[-1] / p_times[-1])
    print(f"LoRA on studio-tiny, {a.steps} steps, batch {a.batch}, length {a.length}, {a.threads} thread(s)")
    print(f"plain HF Trainer + PEFT: median {statistics.median(p_times):.2f} s  {[round(x, 2) for x in p_times]}")
    print(f"studio train:            median {statistics.median(s_times):.2f} s  {[round(x, 2) for x in s_times]}")
    print(f"studio / plain wall time: median ratio {statistics.median(ratios):.3f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
