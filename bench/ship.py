"""Shipping numbers: GGUF files per quantization (size, logit and perplexity difference against the merged model,
greedy next-token agreement), and `studio serve` against the Chat tab's engine on the same prompts (latency,
tokens/s), and the server's memory with 1 and 3 runs.

    python bench/ship.py            # trains small studio-tiny runs in a temporary STUDIO_HOME; about 3 minutes

Baselines named in the output: the merged model (for GGUF), the Chat tab's own generation (for serve)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-ship-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPTS = ["What day comes after Monday?", "Give the plural of the word below.\ncat", "Add 3 and 4.",
           "Use the word garden in a sentence.", "Write the word below in capital letters.\nriver"]


def train_run(name: str, seed: int) -> Path:
    from studio.config import StudioConfig
    from studio.engine.train import loop

    cfg = StudioConfig.from_dict({"data": {"path": str(ROOT / "assets/samples/chat.jsonl"), "val_size": 0.2},
                                  "train": {"max_steps": 40, "batch_size": 8, "learning_rate": 2e-3, "seed": seed}})
    cfg.run_name = name
    result = loop.run(cfg)
    assert result.state == "completed", result.error
    return result.run_dir


def gguf_table(run: Path) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM

    from studio.engine.export import exporters as E
    from studio.engine.export.gguf_export import export_gguf

    merged, tok = E.merged_model(*E._run(run))
    texts = [json.loads(line) for line in open(ROOT / "assets/samples/chat.jsonl")][:40]
    texts = [tok.apply_chat_template(t["messages"], tokenize=False) for t in texts]
    rows = []
    for quant in ("f16", "bf16", "q8_0"):
        out = Path(os.environ["STUDIO_HOME"]) / "gguf" / f"tuned-{quant}.gguf"
        r = export_gguf(run, quant, out)
        loaded = AutoModelForCausalLM.from_pretrained(out.parent, gguf_file=out.name, dtype=torch.float32).eval()
        diff, agree, count, nll = 0.0, 0, 0, {"merged": 0.0, "gguf": 0.0}
        for text in texts:
            ids = tok(text, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                a, b = merged.eval()(ids).logits[0, :-1], loaded(ids).logits[0, :-1]
            diff = max(diff, float((a - b).abs().max()))
            agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            count += ids.shape[1] - 1
            for side, lg in (("merged", a), ("gguf", b)):
                nll[side] += float(torch.nn.functional.cross_entropy(lg, ids[0, 1:], reduction="sum"))
        ppl = {k: float(torch.exp(torch.tensor(v / count))) for k, v in nll.items()}
        rows.append({"quant": quant, "size_mb": round(r["size_mb"], 2), "max_abs_logit_diff": round(diff, 4),
                     "perplexity_merged": round(ppl["merged"], 4), "perplexity_gguf": round(ppl["gguf"], 4),
                     "perplexity_change_pct": round(100 * (ppl["gguf"] - ppl["merged"]) / ppl["merged"], 3),
                     "greedy_agreement_pct": round(100 * agree / count, 2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def start_server(names: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "studio", "serve", *names, "--port", str(port)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in p.stdout:
        if line.startswith("serving "):
            break
    import threading

    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    for _ in range(300):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    return p, f"http://127.0.0.1:{port}/v1"


def tree_rss_mb(pid: int) -> float:
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def serve_vs_chat(runs: list[Path]) -> dict:
    from openai import OpenAI

    from studio.config import EvalConfig
    from studio.engine.judge.chat import reply

    settings = EvalConfig(max_new_tokens=32)
    out = {}
    first = runs[0]
    list(reply(first, "tuned", [{"role": "user", "content": "warm up"}], settings))
    start, tokens = time.perf_counter(), 0
    for prompt in PROMPTS:
        text = list(reply(first, "tuned", [{"role": "user", "content": prompt}], settings))[-1]
        tokens += len(text.split())
    out["chat_engine_s_per_answer"] = round((time.perf_counter() - start) / len(PROMPTS), 3)
    server, base = start_server([first.name])
    try:
        client = OpenAI(base_url=base, api_key="unused")
        client.chat.completions.create(model=first.name, messages=[{"role": "user", "content": "warm up"}],
                                       max_tokens=32, temperature=0)
        start, completion_tokens = time.perf_counter(), 0
        for prompt in PROMPTS:
            r = client.chat.completions.create(model=first.name, messages=[{"role": "user", "content": prompt}],
                                               max_tokens=32, temperature=0)
            completion_tokens += r.usage.completion_tokens
        elapsed = time.perf_counter() - start
        out["serve_s_per_answer"] = round(elapsed / len(PROMPTS), 3)
        out["serve_tokens_per_s"] = round(completion_tokens / elapsed, 1)
        out["serve_rss_mb_1_run"] = round(tree_rss_mb(server.pid), 1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    server, base = start_server([r.name for r in runs])
    try:
        client = OpenAI(base_url=base, api_key="unused")
        for r in runs:
            client.chat.completions.create(model=r.name, messages=[{"role": "user", "content": "hi"}], max_tokens=8)
        out["serve_rss_mb_3_runs"] = round(tree_rss_mb(server.pid), 1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    made = [train_run(f"ship-{i}", seed=i) for i in range(3)]
    table = gguf_table(made[0])
    served = serve_vs_chat(made)
    print(json.dumps({"gguf": table, "serve": served}, indent=1))
