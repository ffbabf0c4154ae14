"""Training-loop speed: the studio against the plain script a practitioner would write, alternated.

One epoch of LoRA (r 16 / alpha 32, every linear layer) on 400 rows of LLaMA-Factory's alpaca demo
(variable length, at most 256 tokens, batch 8) on studio-tiny, 2 threads. Each runner in its own process;
the time is the Trainer's own ``train_runtime`` (the training loop, not the process start). Baseline: a
plain Hugging Face Trainer + PEFT with dynamic padding (``--plain``, this file), alternated with the studio
(``studio train`` with the same settings; length-grouped batches, and ``--packing`` adds padding-free
packing). Prints each time and the median ratio; goal: the studio >= 1.2x faster.

    python bench/train_speed.py [--reps 3] [--packing]
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
ROWS, LENGTH, BATCH, THREADS = 400, 256, 8, 2


def plain(model_dir: str, out: str) -> None:
    """What a practitioner writes: tokenize, a Trainer with PEFT, dynamic padding, loss on the response."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    torch.set_num_threads(THREADS)
    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    for r in json.loads(DATA.read_text())[:ROWS]:
        prompt = [{"role": "user", "content": f"{r['instruction']}\n{r['input']}".strip()}]
        head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(prompt + [{"role": "assistant", "content": r["output"]}], tokenize=False)
        ids = tok(full, add_special_tokens=False)["input_ids"][:LENGTH]
        cut = len(tok(head, add_special_tokens=False)["input_ids"])
        rows.append({"input_ids": ids, "labels": [-100] * min(cut, len(ids)) + ids[cut:]})
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                           LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                      task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, num_train_epochs=1,
                             learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0.05, logging_steps=1,
                             save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, seed=42)
    result = Trainer(model=model, args=args, train_dataset=rows,
                     data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)).train()
    print(json.dumps({"train_runtime": result.metrics["train_runtime"]}))


def studio(home: str, packing: bool) -> float:
    cfg = Path(tempfile.mkdtemp()) / "c.yaml"
    cfg.write_text(f"data: {{path: {DATA}, limit: {ROWS}, max_length: {LENGTH}, val_size: 0}}\n"
                   "method: {kind: lora, lora_r: 16, lora_alpha: 32, lora_dropout: 0.05, target_modules: all-linear}\n"
                   f"train: {{epochs: 1, batch_size: {BATCH}, learning_rate: 2.0e-4, threads: {THREADS}, "
                   f"group_by_length: true, packing: {str(packing).lower()}}}\n")
    out = Path(tempfile.mkdtemp()) / "run"
    env = {**os.environ, "STUDIO_HOME": home, "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "studio", "train", str(cfg), "--output-dir", str(out)], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    return json.loads((out / "status.json").read_text())["train_runtime"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--packing", action="store_true")
    ap.add_argument("--plain", nargs=2, metavar=("MODEL", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plain:
        return plain(*a.plain)
    sys.path.insert(0, str(ROOT))
    from studio.engine.tiny import ensure_studio_tiny

    home = tempfile.mkdtemp(prefix="speed-home-")
    model = str(ensure_studio_tiny(Path(home)))
    plain_s, studio_s = [], []
    for _ in range(a.reps):
        out = subprocess.run([sys.executable, __file__, "--plain", model, tempfile.mkdtemp()], check=True,
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}).stdout
        plain_s.append(json.loads(out.strip().splitlines()[-1])["train_runtime"])
        studio_s.append(studio(home, a.packing))
    ratio = statistics.median(plain_s) / statistics.median(studio_s)
    print(json.dumps({"plain_s": plain_s, "studio_s": studio_s, "packing": a.packing,
                      "median_plain_s": statistics.median(plain_s), "median_studio_s": statistics.median(studio_s),
                      "studio_speedup": round(ratio, 3)}, indent=1))


if __name__ == "__main__":
    main()
