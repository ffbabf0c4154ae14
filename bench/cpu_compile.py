"""What regional ``torch.compile`` costs and gains for LoRA on this CPU, by model size: the measurement behind
the rule ``train.torch_compile: auto`` follows (studio.engine.train.compiled).

For each size, a random Llama-shaped model (studio-tiny's tokenizer, bench/cpu_precision.py's shapes) trains
LoRA r 16 on every linear layer, batch 2 x 512 tokens, 2 threads, in the precision given: eager, then with its
decoder layers compiled (``studio.engine.train.compiled.compile_layers``, the studio's own code). Prints the
compile's seconds (the first compiled step less an eager step), the steady seconds a step of both (medians of
the timed steps, after two warm-up steps; sequence lengths vary by step as length-grouped batches do) and the
speed-up, and how many steps repay the compile.

    python bench/cpu_compile.py [--sizes tiny,100m] [--steps 6] [--precision bf16]
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
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    import tempfile

    import torch
    from cpu_precision import SIZES
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from studio.engine.tiny import save_random_llama
    from studio.engine.train.compiled import compile_layers

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="tiny,100m")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.precision == "bf16" else torch.float32
    folder = Path(tempfile.mkdtemp(prefix="compile-"))
    lengths = [512, 448, 384, 480, 416, 500, 460, 390, 505, 430]  # every step a new length, as real batches are
    for name in a.sizes.split(","):
        path = save_random_llama(folder / name, **SIZES[name])
        result = {"size": name, "precision": a.precision, "threads": a.threads}
        for mode in ("eager", "compiled"):
            torch.manual_seed(0)
            model = get_peft_model(AutoModelForCausalLM.from_pretrained(path, dtype=dtype),
                                   LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
            model.config.use_cache = False  # as the studio trains: no cache (its state would recompile each layer)
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
            if mode == "compiled":
                assert compile_layers(model, say=print), "no repeated layers found"
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            times = []
            for i in range(a.steps + 2):
                ids = torch.randint(0, 2000, (2, lengths[i % len(lengths)]))
                t = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
                    loss = model(input_ids=ids, labels=ids).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
                times.append(time.perf_counter() - t)
            result[f"{mode}_first_s"] = round(times[0] + times[1], 2)
            result[f"{mode}_step_s"] = round(statistics.median(times[2:]), 3)
        result["compile_s"] = round(result["compiled_first_s"] - 2 * result["eager_step_s"], 1)
        result["speedup"] = round(result["eager_step_s"] / result["compiled_step_s"], 3)
        saved = result["eager_step_s"] - result["compiled_step_s"]
        result["steps_to_repay"] = round(result["compile_s"] / saved) if saved > 0 else None
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
