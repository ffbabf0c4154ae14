"""Base vs tuned on held-out prompts: generate, score, compare, write ``eval/NAME/``.

Contract: ``evaluate_run(run_dir, ...) -> dict`` (the summary) and writes
``eval/NAME/predictions.jsonl`` (prompt, reference, base, tuned, per-example scores) and
``summary.json`` (DESIGN.md: ``base``/``tuned``: {metric: {value, ci_low, ci_high}}, ``delta``:
{metric: {value, ci_low, ci_high, p_value}}) plus win/tie/loss counts, the "got worse" list and
how each metric was computed. The eval set is the run's validation split unless a file or typed
prompts are given.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from ..config import EvalConfig, StudioConfig
from . import metrics as M
from . import runs
from .data import as_conversation, load_examples
from .errors import DataError
from .generate import base_of, generate, load_pair, reference_nll

PRIMARY = "rougeL"  # the metric the "got worse" list is sorted by


def to_pair(example: dict) -> tuple[list[dict], str]:
    """(prompt messages, reference answer) of one example."""
    if "text" in example:
        words = example["text"].split()
        half = max(1, len(words) // 2)
        return [{"role": "user", "content": " ".join(words[:half])}], " ".join(words[half:])
    if "chosen" in example:
        return example["prompt"], example["chosen"][-1]["content"]
    messages = as_conversation(example)
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


def eval_set(cfg: StudioConfig, data: str | None = None, prompts: list[str] | None = None,
             limit: int | None = None) -> list[tuple[list[dict], str]]:
    from .train import split

    limit = limit or cfg.eval.limit
    if prompts:
        return [([{"role": "user", "content": p}], "") for p in prompts if p.strip()][:limit]
    if data:
        loaded = load_examples(data)
        examples = loaded.examples
    else:
        d = cfg.data
        loaded = load_examples(d.path, d.format, d.columns, d.limit, d.system_prompt)
        _, val = split(len(loaded.examples), d.val_size, cfg.train.seed)
        if not val:
            raise DataError(f"{Path(d.path).name}: the run has no validation split (data.val_size 0); "
                            "evaluate on a file instead")
        examples = [loaded.examples[i] for i in val]
    loaded.raise_for_problems()
    return [to_pair(ex) for ex in examples[:limit]]


def evaluate_run(run_dir: str | Path, data: str | None = None, prompts: list[str] | None = None,
                 limit: int | None = None, settings: EvalConfig | None = None, name: str | None = None,
                 progress: Callable[[str], None] | None = None) -> dict:
    run = Path(run_dir)
    cfg = StudioConfig.load(run / "config.yaml")
    s = settings or cfg.eval
    say = progress or (lambda msg: None)
    pairs = eval_set(cfg, data, prompts, limit)
    say(f"loading models for {len(pairs)} prompts")
    pair = load_pair(run)
    started = time.time()
    qs, refs = [p for p, _ in pairs], [r for _, r in pairs]
    import torch

    torch.manual_seed(s.seed)
    say("generating with the base model")
    with base_of(pair) as base:
        base_out = generate(base, pair.tokenizer, qs, s)
        base_nll = reference_nll(base, pair.tokenizer, qs, refs) if all(refs) else None
    say("generating with the tuned model")
    torch.manual_seed(s.seed)
    tuned_out = generate(pair.tuned, pair.tokenizer, qs, s)
    tuned_nll = reference_nll(pair.tuned, pair.tokenizer, qs, refs) if all(refs) else None
    gen_s = time.time() - started
    say("scoring")
    summary, per = compare(base_out, tuned_out, refs, base_nll, tuned_nll, s)
    summary.update(run=run.name, eval_set=data or ("typed prompts" if prompts else "validation split"),
                   examples=len(pairs), generation=s.__dict__, generation_s=round(gen_s, 2))
    out = run / "eval" / (name or time.strftime("%Y%m%d-%H%M%S"))
    rows = [{"prompt": q, "reference": r, "base": b, "tuned": t, "scores": sc}
            for q, r, b, t, sc in zip(qs, refs, base_out, tuned_out, per)]
    runs.write_atomic(out / "predictions.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
    runs.write_atomic(out / "summary.json", json.dumps(summary, indent=1))
    summary["dir"] = str(out)
    return summary


def compare(base_out: list[str], tuned_out: list[str], refs: list[str], base_nll, tuned_nll,
            s: EvalConfig) -> tuple[dict, list[dict]]:
    """Scores, intervals, paired tests, win/tie/loss and the got-worse list."""
    if not all(refs):
        return {"base": {}, "tuned": {}, "delta": {}, "note": "no references: outputs only"}, [{} for _ in refs]
    scored = {side: M.score_texts(out, refs, s.bertscore, s.extra_metrics)
              for side, out in (("base", base_out), ("tuned", tuned_out))}
    for side, nll in (("base", base_nll), ("tuned", tuned_nll)):
        scored[side].metrics["perplexity"] = M.perplexity_metric(*nll)
    names = [m for m in M.ORDER if m in scored["base"].metrics]
    names += sorted(m for m in scored["base"].metrics if m not in M.ORDER and m in scored["tuned"].metrics)
    summary = {side: {m: M.interval(scored[side].metrics[m], s.seed) for m in names} for side in scored}
    summary["delta"] = {m: M.paired(scored["base"].metrics[m], scored["tuned"].metrics[m], s.seed) for m in names}
    summary["win_tie_loss"] = {m: M.win_tie_loss(scored["base"].metrics[m], scored["tuned"].metrics[m], m)
                               for m in names}
    summary["info"] = {**scored["tuned"].info, "bootstrap_resamples": M.BOOTSTRAP,
                       "lower_is_better": sorted(M.LOWER_IS_BETTER)}
    per = [{f"{side}_{m}": float(scored[side].metrics[m].per_example[i]) for side in scored for m in names}
           for i in range(len(refs))]
    drop = [(per[i][f"tuned_{PRIMARY}"] - per[i][f"base_{PRIMARY}"], i) for i in range(len(refs))]
    summary["got_worse"] = [{"index": i, "metric": PRIMARY, "delta": round(d, 4)} for d, i in sorted(drop) if d < 0]
    return summary, per


def list_evals(run_dir: str | Path) -> list[Path]:
    root = Path(run_dir) / "eval"
    return sorted((p for p in root.iterdir() if (p / "summary.json").is_file()), reverse=True) if root.is_dir() else []
