"""GPU benchmark: a random-init Llama-style model of about 1B parameters, built from a
config (no download), trained 30 steps at sequence length 2048 in bf16 with LoRA, full
fine-tuning and QLoRA through the studio's own `train.run`. Prints tokens/s, MFU (LoRA 4·N,
full 6·N FLOPs per token, against 989 TFLOP/s dense bf16 on H100/H200) and peak memory.

Goals: LoRA MFU >= 30 %, QLoRA peak memory <= 0.55x LoRA's.
Usage (on the GPU machine): python bench/gpu_train.py [--steps 30] [--batch 4] [--no-packing] [--compile]
[--liger] [--tiny for a CPU smoke run: tests/test_bench_smoke.py runs it]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPE_1B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
            "num_key_value_heads": 4, "max_position_embeddings": 4096}
SHAPE_TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2,
              "num_key_value_heads": 1}
PEAK_FLOPS = 989e12
FLOPS_PER_TOKEN = {"lora": 4, "qlora": 4, "full": 6}


def documents(path: Path, n: int, words: int) -> Path:
    rng = random.Random(0)
    vocab = (ROOT / "assets/samples/notes.txt").read_text().split()
    path.write_text("\n\n".join(" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(n)))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--kinds", nargs="+", default=["lora", "full", "qlora"])
    ap.add_argument("--tiny", action="store_true", help="a small shape, for a CPU smoke run")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--packing", action=argparse.BooleanOptionalAction, default=True,
                    help="padding-free packing (train.packing; the issue-13 GPU run asks for it)")
    ap.add_argument("--compile", action="store_true", help="train.torch_compile: measure it against a run without")
    ap.add_argument("--liger", action="store_true", help="train.liger_kernel (CUDA and liger-kernel installed)")
    a = ap.parse_args()
    import os

    os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="gpu-bench-"))
    from studio.settings import quiet_libraries

    quiet_libraries()
    import torch

    from studio.config import StudioConfig
    from studio.engine import runs
    from studio.engine.events import TrainingInfo
    from studio.engine.tiny import save_random_llama
    from studio.engine.train import loop as train

    work = Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    model = save_random_llama(work / "model", seed=0, **(SHAPE_TINY if a.tiny else SHAPE_1B))
    data = documents(work / "docs.txt", n=a.batch * (a.steps + 2), words=int(a.length * 1.2))
    n_params = None
    results = []
    for kind in a.kinds:
        cfg = StudioConfig.from_dict({
            "data": {"path": str(data), "max_length": a.length, "val_size": 0},
            "model": {"name": str(model)}, "method": {"kind": kind, "objective": "causal_lm", "lora_r": 16,
                                                     "target_modules": "all-linear"},
            "train": {"max_steps": a.steps, "batch_size": a.batch, "precision": "auto" if a.tiny else "bf16",
                      "logging_steps": 1, "learning_rate": 1e-4, "packing": a.packing,
                      "torch_compile": a.compile, "liger_kernel": a.liger}})
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        info: dict = {}
        result = train.run(cfg, on_event=lambda e, info=info: info.update(vars(e)) if isinstance(e, TrainingInfo)
                           else None)
        lines = [m for m in runs.read_metrics(result.run_dir) if m.get("loss") is not None][5:]
        if kind != "qlora" and not n_params:  # 4-bit weights count packed: take N from an unquantized run
            n_params = info["total_params"] - (info["trainable_params"] if kind == "lora" else 0)
        tps = statistics.median(m["tokens_per_s"] for m in lines) if lines else 0.0
        mfu = tps * FLOPS_PER_TOKEN[kind] * (n_params or 0) / PEAK_FLOPS
        peak = max((m["memory_mb"] for m in lines), default=0.0)
        results.append({"method": kind, "packing": a.packing, "compile": a.compile, "liger": a.liger,
                        "state": result.state, "error": result.error, "params": n_params,
                        "tokens_per_s": tps, "mfu": mfu, "peak_memory_mb": peak})
        print(json.dumps(results[-1]), flush=True)
    by = {r["method"]: r for r in results}
    if "lora" in by and "qlora" in by and by["lora"]["peak_memory_mb"]:
        print(f"QLoRA / LoRA peak memory: {by['qlora']['peak_memory_mb'] / by['lora']['peak_memory_mb']:.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
