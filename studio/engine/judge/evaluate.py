"""Base vs tuned on held-out prompts: generate, score, compare, write ``eval/NAME/``.

Contract: ``evaluate_run(run_dir, ...) -> EvalSummary`` and writes
``eval/NAME/predictions.jsonl`` (prompt, reference, base, tuned, per-example scores) and
``summary.json`` (docs/architecture.md: ``base``/``tuned``: {metric: {value, ci_low, ci_high}}, ``delta``:
{metric: {value, ci_low, ci_high, p_value}}) plus win/tie/loss counts, the "got worse" list and
how each metric was computed. The eval set is the run's validation split (as stored in its
``split.json``) unless a file or typed prompts are given.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch

from studio.config import EvalConfig, StudioConfig
from studio.engine import runs, timing
from studio.engine.data import dedup
from studio.engine.data.formats import as_conversation, load_examples
from studio.engine.data.split import Split, file_sha256, split_indices
from studio.engine.errors import DataError
from studio.engine.judge import metrics as M
from studio.engine.judge.generate import auto_max_new_tokens, base_of, generate, load_pair, reference_nll
from studio.engine.judge.masked import evaluate_masked, is_masked_run
from studio.engine.judge.summary import LOWER_IS_BETTER, EvalSummary

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


def eval_set(run: Path | None, cfg: StudioConfig, data: str | None = None, prompts: list[str] | None = None,
             limit: int | None = None) -> list[tuple[list[dict], str]]:
    """(prompt, reference) pairs: typed prompts, a file, or the run's stored validation split."""
    limit = limit or cfg.eval.limit
    if prompts:
        return [([{"role": "user", "content": p}], "") for p in prompts if p.strip()][:limit]
    if data:
        loaded = load_examples(data)
        loaded.raise_for_problems()
        return [to_pair(ex) for ex in loaded.examples[:limit]]
    d = cfg.data
    stored = Split.load(run) if run else None
    if stored is not None and stored.val_file:
        stored.check_unchanged(d.path, d.val_path)
        loaded = load_examples(d.val_path, d.format, d.columns, 0, d.system_prompt)
        return [to_pair(loaded.examples[i]) for i in stored.val[:limit]]
    if stored is not None:
        stored.check_unchanged(d.path)
        val = stored.val
    else:  # a run from before splits were stored: derive it the way training did
        val = split_indices(len(load_examples(d.path, d.format, d.columns, d.limit, d.system_prompt).examples),
                            d.val_size, cfg.train.seed)[1]
    if not val:
        raise DataError(f"{Path(d.path).name}: the run has no validation split (data.val_size 0); "
                        "evaluate on a file instead")
    loaded = load_examples(d.path, d.format, d.columns, d.limit, d.system_prompt)
    loaded.raise_for_problems()
    return [to_pair(loaded.examples[i]) for i in val[:limit]]


def asked(messages: list[dict]) -> str:
    """What a prompt asks, as compared with the training prompts: its user turns."""
    return "\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "user")


def training_prompts(run: Path, cfg: StudioConfig) -> list[str]:
    """The prompts the run trained on (its stored split's training rows), as ``asked`` gives them; none when the
    data is gone or changed (nothing can be said then)."""
    d = cfg.data
    stored = Split.load(run)
    try:
        if stored is not None and file_sha256(d.path) != stored.data_sha256:
            return []
        loaded = load_examples(d.path, d.format, d.columns, d.limit, d.system_prompt)
    except (DataError, OSError):
        return []
    rows = stored.train if stored is not None else range(len(loaded.examples))
    return [asked(to_pair(loaded.examples[i])[0]) for i in rows if i < len(loaded.examples)]


def evaluate_run(run_dir: str | Path, data: str | None = None, prompts: list[str] | None = None,
                 limit: int | None = None, settings: EvalConfig | None = None, name: str | None = None,
                 progress: Callable[[str], None] | None = None, leave_out_seen: bool = False) -> EvalSummary:
    """``leave_out_seen``: compare only the prompts that are not (nearly) among the run's training prompts."""
    run = Path(run_dir)
    cfg = runs.Run(run).config
    s = settings or cfg.eval
    say = progress or (lambda msg: None)
    pairs = eval_set(run, cfg, data, prompts, limit)
    trained = training_prompts(run, cfg)
    flags = dedup.overlap(trained, [asked(q) for q, _ in pairs])
    overlap = {**dedup.counts(flags), "left_out": leave_out_seen} if trained else \
        {"exact": None, "near": None, "left_out": False, "unknown": "the run's training data is gone or changed"}
    if leave_out_seen and trained:
        pairs = [p for p, f in zip(pairs, flags) if f is None]
        if not pairs:
            raise DataError("every prompt of this evaluation set is (nearly) one the run trained on: nothing is "
                            "left to compare once they are left out")
        flags = [None] * len(pairs)
    if is_masked_run(run):  # an encoder fills in hidden words: measured by how well, not by generated answers
        texts = [" ".join(x for x in (p[-1]["content"], r) if x) for p, r in pairs]
        return evaluate_masked(run, texts, s, name, say,
                               eval_set=data or ("typed prompts" if prompts else "validation split"))
    say(f"loading models for {len(pairs)} prompts")
    clock = time.perf_counter()
    pair = load_pair(run)
    started = time.time()
    qs, refs = [p for p, _ in pairs], [r for _, r in pairs]
    s = replace(s, max_new_tokens=s.max_new_tokens or auto_max_new_tokens(pair.tokenizer, refs))
    outputs, nll = {}, {}
    for side in ("base", "tuned"):
        say(f"generating with the {side} model")
        torch.manual_seed(s.seed)
        with (base_of(pair) if side == "base" else contextlib.nullcontext(pair.tuned)) as model:
            outputs[side] = generate(model, pair.tokenizer, qs, s)
            nll[side] = reference_nll(model, pair.tokenizer, qs, refs) if all(refs) else None
    gen_s = time.time() - started
    added = {}
    if s.reward_model.strip():
        say("scoring the answers with the reward model")
        added["reward"] = rewards(run, s.reward_model, qs, outputs)
    say("scoring")
    warm = time.perf_counter()
    if all(refs):  # the metrics' models load once per process: that time is kept apart from the per-example time
        M.score_texts(["a warm-up"], ["a warm-up"], s.bertscore, s.extra_metrics)
    warm = time.perf_counter() - warm
    summary, per = compare(outputs["base"], outputs["tuned"], refs, nll["base"], nll["tuned"], s, added,
                           unseen=[i for i, f in enumerate(flags) if f is None])
    summary.run, summary.examples, summary.generation = run.name, len(pairs), asdict(s)
    summary.overlap_with_training = overlap
    summary.eval_set = data or ("typed prompts" if prompts else "validation split")
    summary.generation_s = round(gen_s, 2)
    rows = [{"prompt": q, "reference": r, "base": b, "tuned": t, "scores": sc, "seen_in_training": f}
            for q, r, b, t, sc, f in zip(qs, refs, outputs["base"], outputs["tuned"], per, flags)]
    runs.write_eval(run, name, summary, rows)
    timing.record("compare", compare_key(run, s), len(pairs), time.perf_counter() - clock - warm)
    if not _WARM:  # what loading the metrics took in a new process
        timing.record("compare", _warm_key(s), 1, warm)
    _WARM.add(True)
    return summary


_WARM: set = set()  # non-empty once this process has loaded the metrics' models (BERTScore's, METEOR's...)


def compare_key(run: Path, s: EvalConfig) -> str:
    """What a comparison's time per example depends on: the base's shape and whether BERTScore runs."""
    return f"{timing.shape_of_run(run)} | bertscore {'on' if s.bertscore else 'off'}"


def _warm_key(s: EvalConfig) -> str:
    return f"loading the metrics | bertscore {'on' if s.bertscore else 'off'}"


def expected_seconds(run: Path, s: EvalConfig, examples: int, fresh_process: bool = False) -> float | None:
    """How long comparing ``examples`` prompts on this run should take here (None: not measured yet): the
    per-example time this machine measured, and loading the metrics where this process has not loaded them
    (``fresh_process``: the comparison runs in a new process, as a public deployment's do)."""
    each = timing.expected("compare", compare_key(run, s), examples)
    warm = timing.expected("compare", _warm_key(s), 1) if fresh_process or not _WARM else 0.0
    return None if each is None or warm is None else each + warm


def rewards(run: Path, reference: str, prompts: list[list[dict]], outputs: dict) -> tuple:
    """(base, tuned) reward-model scores of each answer, as per-example metrics (no reference needed)."""
    from studio.engine.judge.reward import scores
    from studio.engine.models import load_reward_model

    with runs.acting_for(run):  # the reward model must be the run owner's too
        model, tokenizer = load_reward_model(reference)
    return tuple(M._mean_metric(scores(model, tokenizer, [q + [{"role": "assistant", "content": a}]
                                                         for q, a in zip(prompts, outputs[side])]))
                 for side in ("base", "tuned"))


def compare(base_out: list[str], tuned_out: list[str], refs: list[str], base_nll, tuned_nll,
            s: EvalConfig, added: dict | None = None, unseen: list[int] | None = None
            ) -> tuple[EvalSummary, list[dict]]:
    """Scores, intervals, paired tests, win/tie/loss and the got-worse list. ``added``: metric -> (base, tuned)
    scored elsewhere (a reward model's), which need no reference. ``unseen``: the examples whose prompts the run
    did not train on, when some others it did: their own paired deltas (``delta_unseen``)."""
    b, t, info = {}, {}, {}
    if all(refs):
        scored = {side: M.score_texts(out, refs, s.bertscore, s.extra_metrics)
                  for side, out in (("base", base_out), ("tuned", tuned_out))}
        for side, nll in (("base", base_nll), ("tuned", tuned_nll)):
            scored[side].metrics["perplexity"] = M.perplexity_metric(*nll)
        b, t, info = scored["base"].metrics, scored["tuned"].metrics, scored["tuned"].info
    for m, (mb, mt) in (added or {}).items():
        b[m], t[m] = mb, mt
    if not b:
        return EvalSummary(note="no references: outputs only"), [{} for _ in refs]
    names = [m for m in M.ORDER if m in b] + sorted(m for m in b if m not in M.ORDER and m in t)
    summary = EvalSummary(
        base={m: M.interval(b[m], s.seed) for m in names}, tuned={m: M.interval(t[m], s.seed) for m in names},
        delta={m: M.paired(b[m], t[m], s.seed) for m in names},
        win_tie_loss={m: M.win_tie_loss(b[m], t[m], m) for m in names},
        info={**info, "bootstrap_resamples": M.BOOTSTRAP, "lower_is_better": sorted(LOWER_IS_BETTER)},
        note=None if all(refs) else "no references: scored by the reward model only")
    if unseen is not None and len(unseen) < len(refs):
        summary.delta_unseen = {m: M.paired(M.subset(b[m], unseen), M.subset(t[m], unseen), s.seed)
                                for m in names} if len(unseen) > 1 else {}
    per = [{side: {m: float(metrics[m].per_example[i]) for m in names} for side, metrics in (("base", b), ("tuned", t))}
           for i in range(len(refs))]
    primary = PRIMARY if PRIMARY in names else names[0]
    drop = [(per[i]["tuned"][primary] - per[i]["base"][primary], i) for i in range(len(refs))]
    summary.got_worse = [{"index": i, "metric": primary, "delta": round(d, 4)} for d, i in sorted(drop) if d < 0]
    summary.info["worse_metric"] = primary  # what "got worse" was measured on (the UI names it)
    return summary, per
