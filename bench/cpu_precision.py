"""What bf16 autocast gains over fp32 for LoRA on this CPU, by model size: the measurement behind the rule that
``train.precision: auto`` follows on a CPU (studio.engine.precision).

For each size, a random Llama-shaped model (studio-tiny's tokenizer) trains LoRA r 16 on every linear layer,
batch 2 x 512 tokens, 2 threads: a few warm-up steps, then the median of the timed steps, fp32 against a bf16
base with bf16 autocast (the adapter and its optimizer in fp32), alternated step by step in one process so the
machine's load falls on both. Prints the seconds a step and the speed-up per size.

    python bench/cpu_precision.py [--sizes tiny,25m,100m] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {  # Llama shapes: hidden, intermediate, layers, heads, kv heads
    "tiny": {},  # studio-tiny's own shape, about 4 M parameters
    "25m": dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=8, num_attention_heads=8,
                num_key_value_heads=4),
    "100m": dict(hidden_size=768, intermediate_size=2304, num_hidden_layers=14, num_attention_heads=12,
                 num_key_value_heads=4),
}


def build(name: str, folder: Path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from studio.engine.tiny import save_random_llama

    path = save_random_llama(folder / name, **SIZES[name])
    out = {}
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
        for p in model.parameters():
            if p.requires_grad:
                p.data = p.data.float()  # the adapter's master weights in fp32
        out[precision] = model
    return out


def step(model, precision: str, ids, opt) -> float:
    import torch

    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    return time.perf_counter() - t


def main() -> None:
    import tempfile

    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,25m,100m")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(json.dumps({"torch": torch.__version__, "capability": torch.backends.cpu.get_cpu_capability(),
                      "avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
                      "amx": torch.cpu._is_amx_tile_supported(), "threads": a.threads}))
    folder = Path(tempfile.mkdtemp(prefix="precision-"))
    for name in a.sizes.split(","):
        models = build(name, folder)
        params = sum(p.numel() for p in models["fp32"].parameters())
        ids = torch.randint(0, 2000, (2, 512))
        opts = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
                for k, m in models.items()}
        times = {"fp32": [], "bf16": []}
        for i in range(a.steps + 2):
            for precision in ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32"):
                s = step(models[precision], precision, ids, opts[precision])
                if i >= 2:  # warm-up: oneDNN picks its kernels on the first calls
                    times[precision].append(s)
        fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        print(json.dumps({"size": name, "params_m": round(params / 1e6, 1), "fp32_s": round(fp32, 3),
                          "bf16_s": round(bf16, 3), "bf16_speedup": round(fp32 / bf16, 3)}), flush=True)
        del models, opts


if __name__ == "__main__":
    main()
