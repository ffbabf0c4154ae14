"""``check-data``: what a dataset is and what is wrong with it, before anything trains.

Contract: ``check_data(path, ...) -> dict`` with the detected format, counts, token lengths
for the chosen tokenizer (min, median, p95, max), rows over max_length, empty and duplicate
rows, notices and problems by row. Unreadable files raise ``DataError`` (one line).
"""

from __future__ import annotations

from pathlib import Path

from ..config import ModelConfig
from .data import default_objective, load_examples
from .encode import encode, length_stats
from .models import load_tokenizer, resolve_model


def check_data(path: str | Path, fmt: str = "auto", columns: dict | None = None, model: str = "studio-tiny",
               max_length: int = 512, objective: str = "auto") -> dict:
    loaded = load_examples(path, fmt, columns or {})
    r = loaded.report
    if objective == "auto":
        objective = default_objective(loaded.format)
    mcfg = ModelConfig(name=model)
    resolved = resolve_model(mcfg)
    tokenizer = load_tokenizer(resolved, mcfg)
    enc = encode(loaded.examples, tokenizer, objective, max_length)
    return {"file": r.file, "format": r.format, "objective": objective, "model": model, "records": r.records,
            "examples": r.examples, "empty": r.empty, "duplicates": r.duplicates, "columns": r.columns,
            "max_length": max_length, "lengths": length_stats(enc.lengths, max_length),
            "no_target_after_truncation": enc.no_target, "notices": r.notices + resolved.notices,
            "problems": r.problems}
