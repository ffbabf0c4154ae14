"""Export benchmarks: adapter size on disk ÷ its computed parameter bytes (goal <= 1.05); merged-model
generation tokens/s ÷ the base model's (goal >= 0.98); the quantization table (size, tokens/s,
perplexity of fp32 / int8 / nf4 on the run's eval set).

Usage: python bench/export.py [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="export-bench-"))


def gen_speed(model, tok, prompts, settings, reps=3) -> float:
    from studio.engine.judge.generate import generate

    times = []
    for _ in range(reps):
        t = time.perf_counter()
        generate(model, tok, prompts, settings)
        times.append(time.perf_counter() - t)
    return len(prompts) * settings.max_new_tokens / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    from studio.settings import quiet_libraries

    quiet_libraries()
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.config import EvalConfig, StudioConfig
    from studio.engine.export import exporters as E
    from studio.engine.judge.evaluate import eval_set
    from studio.engine.models import resolve_model
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict({"data": {"path": str(ROOT / "assets/samples/instructions.json")},
                                  "method": {"kind": "lora", "target_modules": "all-linear"},
                                  "train": {"max_steps": a.steps, "learning_rate": 1e-3}})
    run = train.run(cfg).run_dir
    z = E.export_adapter(run)
    stored = zipfile.ZipFile(z).getinfo("adapter_model.safetensors").file_size
    params = load_file(run / "adapter" / "adapter_model.safetensors")
    computed = sum(t.numel() * t.element_size() for t in params.values())
    print(f"LoRA r16 all-linear on studio-tiny, {a.steps} steps")
    print(f"adapter file {stored} bytes / parameter bytes {computed} = {stored / computed:.4f} (goal <= 1.05)")

    merged = Path(E.export_merged(run)["path"])
    prompts = [p for p, _ in eval_set(None, cfg, data=str(ROOT / "assets/samples/chat.jsonl"), limit=32)]
    settings = EvalConfig(max_new_tokens=32, batch_size=16)
    speeds = {}
    for label, path in (("base", resolve_model(cfg.model).path), ("merged", merged)):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        model.generation_config.eos_token_id = None
        speeds[label] = gen_speed(model, AutoTokenizer.from_pretrained(path), prompts, settings)
    print(f"generation tokens/s: base {speeds['base']:.0f}, merged {speeds['merged']:.0f}, "
          f"ratio {speeds['merged'] / speeds['base']:.3f} (goal >= 0.98)")
    print("quantization (run's validation split):")
    for row in E.quantization_table(run):
        print(f"  {row['export']:14s} {row['size_mb']:7.2f} MB {row['tokens_per_s']:7.0f} tokens/s "
              f"perplexity {row['perplexity']:.3f}")


if __name__ == "__main__":
    main()
