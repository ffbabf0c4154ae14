"""Prompt effectiveness: a few phrasings of the same task, K sampled answers each.

Contract: ``prompt_effectiveness(run_dir, templates, k, ...) -> dict`` with, per phrasing,
accuracy against the reference (token F1 and exact match, averaged over items and samples),
consistency (the share of an item's K samples that agree with its most common answer), and
efficiency (prompt and answer tokens); across phrasings, robustness (the spread of accuracy:
standard deviation and range). A template holds ``{input}``, the task's own question.
"""

from __future__ import annotations

import contextlib
import statistics
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from studio.config import EvalConfig
from studio.engine import runs
from studio.engine.data.encode import render
from studio.engine.errors import DataError
from studio.engine.judge.evaluate import eval_set
from studio.engine.judge.generate import auto_max_new_tokens, base_of, generate, load_pair
from studio.engine.judge.metrics import normalize_answer, token_f1

DEFAULT_TEMPLATES = ["{input}", "Answer in one short sentence. {input}", "Task: {input} Reply:"]


def prompt_effectiveness(run_dir: str | Path, templates: list[str] | None = None, k: int = 4, limit: int = 12,
                         settings: EvalConfig | None = None, model: str = "tuned", data: str | None = None) -> dict:
    run = Path(run_dir)
    cfg = runs.Run(run).config
    templates = [t for t in (templates or DEFAULT_TEMPLATES) if t.strip()]
    bad = [t for t in templates if "{input}" not in t]
    if bad:
        raise DataError(f"each phrasing needs an {{input}} placeholder; {bad[0]!r} has none")
    items = [(p[-1]["content"], ref) for p, ref in eval_set(run, cfg, data=data, limit=limit)]
    s = replace(settings or cfg.eval, do_sample=k > 1 if settings is None else settings.do_sample)
    pair = load_pair(run)
    s = replace(s, max_new_tokens=s.max_new_tokens or auto_max_new_tokens(pair.tokenizer, [r for _, r in items]))
    rows = []
    with (base_of(pair) if model == "base" else contextlib.nullcontext(pair.tuned)) as m:
        for template in templates:
            prompts = [[{"role": "user", "content": template.replace("{input}", q)}] for q, _ in items]
            torch.manual_seed(s.seed)
            answers = generate(m, pair.tokenizer, [p for p in prompts for _ in range(k)], s)
            rows.append(_row(template, items, prompts, answers, k, pair.tokenizer))
    acc = [r["accuracy"] for r in rows]
    return {"model": model, "k": k, "items": len(items), "sampling": s.do_sample, "templates": rows,
            "robustness": {"accuracy_std": statistics.pstdev(acc), "accuracy_range": max(acc) - min(acc)}}


def _row(template: str, items, prompts, answers: list[str], k: int, tokenizer) -> dict:
    f1, em, agree, out_tokens = [], [], [], []
    for i, (_, ref) in enumerate(items):
        samples = answers[i * k:(i + 1) * k]
        f1 += [token_f1(a, ref) for a in samples]
        em += [float(normalize_answer(a) == normalize_answer(ref)) for a in samples]
        top = Counter(normalize_answer(a) for a in samples).most_common(1)[0][1]
        agree.append(top / k)
        out_tokens += [len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in samples]
    prompt_tokens = [len(tokenizer(render(tokenizer, p, add_generation_prompt=True), add_special_tokens=False)
                         ["input_ids"]) for p in prompts]
    return {"template": template, "accuracy": statistics.mean(f1), "exact_match": statistics.mean(em),
            "consistency": statistics.mean(agree), "prompt_tokens": statistics.mean(prompt_tokens),
            "output_tokens": statistics.mean(out_tokens)}
