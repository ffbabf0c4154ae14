"""Training-loop speed at two sizes: the studio against the plain script a practitioner would write, alternated.

LoRA (r 16 / alpha 32 / dropout 0.05, every linear layer), 2 threads, on LLaMA-Factory's alpaca demo where it lies
beside the repository (else the repository's own alpaca sample), at two model sizes:

- ``tiny``: studio-tiny (4.5 M parameters), 400 rows, at most 256 tokens, batch 8, one epoch;
- ``100m``: a random Llama-shaped model of about 100 M parameters built from a config (hidden 768, 14 layers,
  studio-tiny's tokenizer), 64 rows, at most 512 tokens, batch 4, one epoch.

Baseline: a plain Hugging Face Trainer + PEFT script in fp32 with dynamic padding (``--plain``, this file),
alternated with ``studio train`` (its defaults: ``train.precision auto``, length-grouped batches), each in its
own process. Reported per runner: the Trainer's own ``train_runtime`` (the training loop, not the process start),
tokens a second (the same tokens for both), the process's peak RSS, the final loss and, for the studio, the
precision it chose and why. The speed-up is the ratio of the medians.

    python bench/train_speed.py [--size tiny|100m|both] [--reps 3] [--packing] [--precision auto]
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
PEER_DATA = ROOT.parent / "shared" / "data" / "peer" / "alpaca_en_demo.json"  # LLaMA-Factory's demo, where it lies
DATA = PEER_DATA if PEER_DATA.is_file() else ROOT / "assets" / "samples" / "instructions.json"  # both alpaca, 400+
THREADS = 2
sys.path.insert(0, str(ROOT / "bench"))
from cpu_precision import SIZES as SHAPES  # noqa: E402 - the model sizes the CPU benchmarks share

SIZES = {
    "tiny": {"rows": 400, "length": 256, "batch": 8, "shape": None},
    "100m": {"rows": 64, "length": 512, "batch": 4, "shape": SHAPES["100m"]},  # bench/cpu_precision.py's shape
}


def _peak_rss_mb() -> float:
    import resource

    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return round(peak / 1024, 1)  # Linux: kB


def plain(model_dir: str, out: str, size: str) -> None:
    """What a practitioner writes: tokenize, a Trainer with PEFT, dynamic padding, loss on the response."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    s = SIZES[size]
    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    for r in json.loads(DATA.read_text())[:s["rows"]]:
        prompt = [{"role": "user", "content": f"{r['instruction']}\n{r['input']}".strip()}]
        head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(prompt + [{"role": "assistant", "content": r["output"]}], tokenize=False)
        ids = tok(full, add_special_tokens=False)["input_ids"][:s["length"]]
        cut = len(tok(head, add_special_tokens=False)["input_ids"])
        rows.append({"input_ids": ids, "labels": [-100] * min(cut, len(ids)) + ids[cut:]})
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                           LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                      task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=s["batch"], num_train_epochs=1,
                             learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0.05, logging_steps=1,
                             save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, seed=42)
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
    result = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(json.dumps({"train_runtime": result.metrics["train_runtime"], "final_loss": losses[-1],
                      "tokens": sum(len(r["input_ids"]) for r in rows), "peak_rss_mb": _peak_rss_mb()}))


def studio_child(config: str, out: str) -> None:
    """``studio train`` in this process, then its peak RSS."""
    import runpy

    sys.argv = ["studio", "train", config, "--output-dir", out]
    try:
        runpy.run_module("studio", run_name="__main__")
    except SystemExit as e:
        if e.code:
            raise
    print(json.dumps({"peak_rss_mb": _peak_rss_mb()}))


def studio(home: str, size: str, packing: bool, precision: str) -> dict:
    s = SIZES[size]
    cfg = Path(tempfile.mkdtemp()) / "c.yaml"
    cfg.write_text(f"model: {{name: {home}/{size}}}\n" if s["shape"] else "")
    with cfg.open("a") as f:
        f.write(f"data: {{path: {DATA}, limit: {s['rows']}, max_length: {s['length']}, val_size: 0}}\n"
                "method: {kind: lora, lora_r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: all-linear}\n"
                f"train: {{epochs: 1, batch_size: {s['batch']}, learning_rate: 2.0e-4, threads: {THREADS}, "
                f"group_by_length: true, packing: {str(packing).lower()}, precision: {precision}}}\n")
    out = Path(tempfile.mkdtemp()) / "run"
    env = {**os.environ, "STUDIO_HOME": home, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    said = subprocess.run([sys.executable, __file__, "--studio-child", str(cfg), str(out)], cwd=ROOT, env=env,
                          check=True, capture_output=True, text=True).stdout
    status = json.loads((out / "status.json").read_text())
    return {"train_runtime": status["train_runtime"], "final_loss": status["final_loss"],
            "precision": status.get("precision"), "precision_why": status.get("precision_why"),
            "peak_rss_mb": json.loads(said.strip().splitlines()[-1])["peak_rss_mb"]}


def measure(size: str, reps: int, packing: bool, precision: str, home: str) -> dict:
    from studio.engine.tiny import ensure_studio_tiny, save_random_llama

    s = SIZES[size]
    model = str(save_random_llama(Path(home) / size, **s["shape"]) if s["shape"] else ensure_studio_tiny(Path(home)))
    plain_runs, studio_runs = [], []
    for _ in range(reps):
        out = subprocess.run([sys.executable, __file__, "--plain", model, tempfile.mkdtemp(), size], check=True,
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}).stdout
        plain_runs.append(json.loads(out.strip().splitlines()[-1]))
        studio_runs.append(studio(home, size, packing, precision))
    tokens = plain_runs[0]["tokens"]
    p = statistics.median(r["train_runtime"] for r in plain_runs)
    st = statistics.median(r["train_runtime"] for r in studio_runs)
    return {"size": size, "rows": s["rows"], "max_length": s["length"], "batch": s["batch"], "threads": THREADS,
            "packing": packing, "precision": precision, "plain": plain_runs, "studio": studio_runs,
            "median_plain_s": p, "median_studio_s": st,
            "plain_tokens_per_s": round(tokens / p, 1), "studio_tokens_per_s": round(tokens / st, 1),
            "studio_speedup": round(p / st, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="both", choices=("tiny", "100m", "both"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--packing", action="store_true")
    ap.add_argument("--precision", default="auto", help="the studio's train.precision (the baseline stays fp32)")
    ap.add_argument("--plain", nargs=3, metavar=("MODEL", "OUT", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--studio-child", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plain:
        return plain(*a.plain)
    if a.studio_child:
        return studio_child(*a.studio_child)
    sys.path.insert(0, str(ROOT))
    import platform

    home = tempfile.mkdtemp(prefix="speed-home-")
    print(json.dumps({"machine": platform.processor() or platform.machine(), "cores": os.cpu_count()}))
    for size in ("tiny", "100m") if a.size == "both" else (a.size,):
        print(json.dumps(measure(size, a.reps, a.packing, a.precision, home), indent=1), flush=True)


if __name__ == "__main__":
    main()
