"""Estimated peak memory vs measured peak RSS growth of a real CPU training run.

Usage: python bench/estimate_check.py [full|lora|qlora ...]. Each case trains in a fresh
subprocess on a random Llama (hidden 512, 6 layers), records RSS just before the run and the
process's peak RSS after it, and prints the ratio estimate / measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE = {"hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 6, "num_attention_heads": 8,
         "num_key_value_heads": 4}

CHILD = r"""
import json, resource, sys, psutil
sys.path.insert(0, sys.argv[1])
from studio.config import StudioConfig
from studio.engine.train import loop as train
import torch, transformers, trl, peft, datasets  # imports are not the run's memory
cfg = StudioConfig.from_dict(json.loads(sys.argv[2]))
train.prepare(cfg)  # tokenizer and data loaded once, so the baseline holds them
before = psutil.Process().memory_info().rss
res = train.run(cfg)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"state": res.state, "error": res.error, "growth_mb": (peak - before) / 2**20}))
"""


def config_for(kind: str, model: Path, data: Path, batch: int = 4, length: int = 256) -> dict:
    return {"data": {"path": str(data), "max_length": length, "val_size": 0},
            "model": {"name": str(model)}, "method": {"kind": kind, "target_modules": "all-linear"},
            "train": {"max_steps": 3, "batch_size": batch, "threads": 1}}


def long_text(path: Path, n: int = 64) -> Path:
    words = (ROOT / "assets" / "samples" / "notes.txt").read_text().split()
    path.write_text("\n\n".join(" ".join(words[(i * 7) % 50:] + words) for i in range(n)))
    return path


def measure(cfg: dict, home: str) -> float:
    env = {**os.environ, "STUDIO_HOME": home}
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), json.dumps(cfg)], capture_output=True,
                         text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["state"] == "completed", result
    return result["growth_mb"]


def main(kinds: list[str]) -> None:
    from studio.config import StudioConfig
    from studio.engine.tiny import save_random_llama
    from studio.engine.train.estimate import estimate

    with tempfile.TemporaryDirectory() as home:
        model = save_random_llama(Path(home) / "m", seed=1, **SHAPE)
        data = long_text(Path(home) / "long.txt")
        for kind in kinds:
            cfg = config_for(kind, model, data)
            est = estimate(StudioConfig.from_dict(cfg)).total_mb
            got = measure(cfg, home)
            print(f"{kind:6s} estimate {est:8.1f} MB  measured {got:8.1f} MB  ratio {est / got:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["full", "lora", "qlora"])
