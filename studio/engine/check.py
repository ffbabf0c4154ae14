"""``check-data`` and the Data tab: what a dataset is and what is wrong with it, before anything
trains.

Contract: ``inspect_data(path, ...) -> Inspection`` with the report (format, counts, token lengths
for the chosen tokenizer: min, median, p95, max; rows over max_length; empty and duplicate rows;
notices; problems by row), every example's token length, and the first examples as the model
sees them. ``check_data`` is its report. Unreadable files raise ``DataError`` (one line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from ..config import ModelConfig
from .data import default_objective, load_examples
from .encode import encode, length_stats, segments
from .models import load_tokenizer, resolve_model


@dataclass
class Inspection:
    report: dict
    lengths: list[int] = field(default_factory=list)
    preview: list[list[tuple[str, bool]]] = field(default_factory=list)


@lru_cache(maxsize=4)
def _tokenizer(model: str):
    """Tokenizers are reused between checks (the Data tab re-checks on every change)."""
    cfg = ModelConfig(name=model)
    resolved = resolve_model(cfg)
    return load_tokenizer(resolved, cfg), tuple(resolved.notices)


def inspect_data(path: str | Path, fmt: str = "auto", columns: dict | None = None, model: str = "studio-tiny",
                 max_length: int = 512, objective: str = "auto", preview: int = 0) -> Inspection:
    loaded = load_examples(path, fmt, columns or {})
    r = loaded.report
    if objective == "auto":
        objective = default_objective(loaded.format)
    tokenizer, model_notices = _tokenizer(model)
    enc = encode(loaded.examples, tokenizer, objective, max_length)
    report = {"file": r.file, "format": r.format, "objective": objective, "model": model, "records": r.records,
              "examples": r.examples, "empty": r.empty, "duplicates": r.duplicates, "columns": r.columns,
              "max_length": max_length, "lengths": length_stats(enc.lengths, max_length),
              "no_target_after_truncation": enc.no_target, "notices": r.notices + list(model_notices),
              "problems": r.problems}
    shown = [segments(ex, tokenizer, objective, max_length) for ex in loaded.examples[:preview]]
    return Inspection(report, enc.lengths, shown)


def check_data(path: str | Path, fmt: str = "auto", columns: dict | None = None, model: str = "studio-tiny",
               max_length: int = 512, objective: str = "auto") -> dict:
    return inspect_data(path, fmt, columns, model, max_length, objective).report
