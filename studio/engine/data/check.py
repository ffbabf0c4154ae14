"""``check-data`` and the Data tab: what a dataset is and what is wrong with it, before anything
trains.

Contract: ``inspect_data(path, ...) -> Inspection`` with the report (format, counts, token lengths
for the chosen tokenizer: min, median, p95, max; rows over max_length; empty rows; exact duplicates (normalised)
and groups of near-duplicate prompts with their row numbers (``dedup.report``);
notices; problems by row), every example's token length, and the first examples as the model
sees them. ``check_data`` is its report. Unreadable files raise ``DataError`` (one line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from studio.config import ModelConfig
from studio.engine import objectives, runs
from studio.engine.data import dedup
from studio.engine.data.encode import encode, length_stats, segments
from studio.engine.data.formats import default_objective, load_examples
from studio.engine.models import RUN_PREFIX, family_objective, load_tokenizer, resolve_model


@dataclass
class Inspection:
    report: dict
    lengths: list[int] = field(default_factory=list)
    preview: list[list[tuple[str, bool]]] = field(default_factory=list)


def _tokenizer(model: str):
    """Tokenizers are reused between checks (the Data tab re-checks on every change); one of a visitor's runs
    is cached for that visitor only."""
    return _cached_tokenizer(model, runs.ACTING.get() if model.strip().startswith(RUN_PREFIX) else None)


@lru_cache(maxsize=4)
def _cached_tokenizer(model: str, owner: str | None):
    """(tokenizer, the model's notices, the objective its family decides or None), resolved once per model."""
    cfg = ModelConfig(name=model)
    resolved = resolve_model(cfg, tokenizer_only=True)  # a check needs no weights
    return load_tokenizer(resolved, cfg), tuple(resolved.notices), family_objective(resolved.path)


def inspect_data(path: str | Path, fmt: str = "auto", columns: dict | None = None, model: str = "studio-tiny",
                 max_length: int = 512, objective: str = "auto", preview: int = 0) -> Inspection:
    loaded = load_examples(path, fmt, columns or {})
    r = loaded.report
    tokenizer, model_notices, by_family = _tokenizer(model)
    if objective == "auto":  # an encoder trains masked_lm, an encoder-decoder seq2seq; a decoder by the data
        objective = by_family or default_objective(loaded.format)
    pack = loaded.format == "text" and objectives.find(objective).packs_documents
    enc = encode(loaded.examples, tokenizer, objective, max_length, pack=pack)
    notices = r.notices + list(model_notices) + enc.notices + _kto_note(loaded)
    report = {"file": r.file, "format": r.format, "objective": objective, "model": model, "records": r.records,
              "examples": r.examples, "empty": r.empty, **dedup.report(loaded.examples, loaded.where),
              "columns": r.columns,
              "max_length": max_length, "lengths": length_stats(enc.lengths, max_length),
              "tokens_total": enc.tokens_total, "tokens_trained": enc.tokens_used,
              "no_target_after_truncation": enc.no_target, "notices": notices, "problems": r.problems}
    shown = [_preview(ex, tokenizer, objective, max_length) for ex in loaded.examples[:preview]]
    return Inspection(report, enc.lengths, shown)


def _kto_note(loaded) -> list[str]:
    if loaded.format != "kto":
        return []
    good = sum(ex["label"] for ex in loaded.examples)
    return [f"{good} desirable and {len(loaded.examples) - good} undesirable answer(s): method.kind kto learns from "
            "both; supervised methods train only the desirable ones"]


def _preview(example: dict, tokenizer, objective: str, max_length: int) -> list[tuple[str, bool]]:
    """As the model sees it; an undesirable KTO answer is never a supervised target, so nothing is marked."""
    shown = segments(example, tokenizer, objective, max_length)
    return [(text, False) for text, _ in shown] if example.get("label") is False else shown


def check_data(path: str | Path, fmt: str = "auto", columns: dict | None = None, model: str = "studio-tiny",
               max_length: int = 512, objective: str = "auto") -> dict:
    return inspect_data(path, fmt, columns, model, max_length, objective).report


def report_lines(r: dict) -> list[str]:
    """The report as lines of text, the same in the terminal and (with markdown added) in the Data tab."""
    ln = r["lengths"]
    lines = [f"{r['file']}: detected {r['format']} ({r['objective']} objective), {r['records']} records, "
             f"{r['examples']} usable",
             f"tokens ({r['model']}): min {ln['min']}, median {ln['median']}, p95 {ln['p95']}, max {ln['max']}; "
             f"{ln['over_max_length']} over max_length {r['max_length']} (truncated)",
             f"empty rows dropped: {r['empty']}; duplicate rows: {r['duplicates']} (the same once case, spaces and "
             f"punctuation are set aside); near-duplicate prompts: {r.get('near_duplicates', 0)} more; columns: "
             f"{', '.join(r['columns'])}"]
    groups = r.get("duplicate_where") or []
    if groups:
        lines.append("prompts that are (nearly) the same, kept on one side of the train / validation split: "
                     + "; ".join(", ".join(g[:6]) + (f" and {len(g) - 6} more" if len(g) > 6 else "")
                                 for g in groups[:10]) + (f"; and {len(groups) - 10} more groups" if len(groups) > 10
                                                          else ""))
    lines += [f"note: {n}" for n in r["notices"]]
    lines += [f"problem: {p}" for p in r["problems"][:50]]
    if len(r["problems"]) > 50:
        lines.append(f"... and {len(r['problems']) - 50} more problems")
    return lines
