"""Evaluation speed on CPU, each against a named baseline in the same process:

1. batched generation (left padding, length-sorted batches) tokens/s ÷ a per-example generate
   loop on the same prompts (goal >= 3x);
2. the studio's BERTScore time ÷ bert_score.score alone, same model and batch (goal <= 1.05);
3. every other metric for 200 pairs, bootstrap intervals included (goal < 3 s).

Usage: python bench/generation.py [--prompts 64] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="gen-bench-"))


def timed(fn, reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    a = ap.parse_args()
    from studio.settings import quiet_libraries

    quiet_libraries()
    import torch
    from bert_score import score as bert_score

    from studio.config import EvalConfig, StudioConfig
    from studio.engine.data.formats import load_examples
    from studio.engine.judge import metrics as M
    from studio.engine.judge.evaluate import to_pair
    from studio.engine.judge.generate import generate, generate_one_by_one
    from studio.engine.models import load_model, load_tokenizer, resolve_model

    torch.set_num_threads(os.cpu_count() or 1)
    cfg = StudioConfig()
    resolved = resolve_model(cfg.model)
    tok = load_tokenizer(resolved, cfg.model)
    model = load_model(resolved, cfg.model, cfg.method, "fp32", tok).eval()
    # Fixed-length answers, so both ways generate the same number of tokens.
    model.generation_config.eos_token_id = None
    pairs = [to_pair(ex) for ex in load_examples(ROOT / "assets/samples/chat.jsonl").examples[:a.prompts]]
    prompts = [p for p, _ in pairs]
    s = EvalConfig(max_new_tokens=a.new_tokens, batch_size=16)
    tokens = a.prompts * a.new_tokens
    loop = timed(lambda: generate_one_by_one(model, tok, prompts, s), reps=1)
    batched = timed(lambda: generate(model, tok, prompts, s))
    print(f"studio-tiny, {a.prompts} chat prompts, {a.new_tokens} new tokens each, greedy, "
          f"{torch.get_num_threads()} threads")
    print(f"per-example loop: {tokens / loop:8.0f} tokens/s")
    print(f"batched (16):     {tokens / batched:8.0f} tokens/s   ratio {loop / batched:.2f}x (goal >= 3x)")

    rng = random.Random(0)
    refs = [r for _, r in pairs] * (200 // len(pairs) + 1)
    refs = refs[:200]
    hyps = [" ".join(w if rng.random() < 0.7 else "the" for w in r.split()) for r in refs]
    model_path, layers = M.bertscore_model()
    M.bertscore(hyps[:4], refs[:4])  # load once: both sides then time warm
    bert_score(hyps[:4], refs[:4], model_type=model_path, num_layers=layers)
    ours = timed(lambda: M.bertscore(hyps, refs, model_path, layers))
    theirs = timed(lambda: bert_score(hyps, refs, model_type=model_path, num_layers=layers, batch_size=64))
    print(f"BERTScore on 200 pairs: studio {ours:.2f} s, bert_score alone {theirs:.2f} s, "
          f"ratio {ours / theirs:.3f} (goal <= 1.05)")
    M.score_texts(hyps[:2], refs[:2], bertscore_on=False)  # WordNet and scorers loaded once

    def others():
        scored = M.score_texts(hyps, refs, bertscore_on=False)
        for metric in scored.metrics.values():
            M.interval(metric)

    print(f"BLEU, ROUGE x4, METEOR, EM, token F1 with 1000-resample intervals, 200 pairs: "
          f"{timed(others):.2f} s (goal < 3 s)")


if __name__ == "__main__":
    main()
