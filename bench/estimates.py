"""Do the time estimates tell the truth? On an idle machine, in a fresh studio home: a short training run
(studio-tiny, the chat sample), then each timed job twice: the LR range test, a comparison on the run's
validation split and a server start (``studio serve``, started as the Export tab starts it). The first of each
has no estimate (the machine has not done one) and records its time; the second is given the estimate the page
would show. Prints, per job, the estimate, the measured time and their ratio; goal: every ratio within 2x.

    python bench/estimates.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def clocked(fn, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> None:
    os.environ["STUDIO_HOME"] = tempfile.mkdtemp(prefix="estimates-home-")
    os.environ["HF_HUB_OFFLINE"] = "1"
    import studio  # noqa: F401 - registers the methods
    from studio.config import StudioConfig
    from studio.engine.data.split import Split
    from studio.engine.export.serve import SERVED, expected_start_seconds
    from studio.engine.judge.evaluate import evaluate_run
    from studio.engine.judge.evaluate import expected_seconds as compare_expected
    from studio.engine.train import loop
    from studio.engine.train.lr_find import expected_seconds as lr_expected
    from studio.engine.train.lr_find import lr_find
    from studio.settings import SAMPLES

    cfg = StudioConfig.from_dict({"data": {"path": str(SAMPLES / "chat.jsonl")},
                                  "train": {"max_steps": 30, "batch_size": 8, "learning_rate": 2e-3}})
    run = loop.run(cfg).run_dir
    examples = min(12, len(Split.load(run).val))  # what the Compare tab counts for the validation split
    rows = []
    for job, expected, go in (
            ("LR range test", lambda: lr_expected(cfg), lambda: lr_find(cfg)),
            ("comparison (validation split)", lambda: compare_expected(run, cfg.eval, examples),
             lambda: evaluate_run(run, limit=12)),
            ("server start", lambda: expected_start_seconds(run),
             lambda: (SERVED.start(None, run.name), SERVED.stop(None)))):
        before = expected()
        _, first = clocked(go)
        estimate = expected()
        _, second = clocked(go)
        rows.append({"job": job, "estimate_before_any_s": before, "first_s": round(first, 2),
                     "estimate_s": None if estimate is None else round(estimate, 2), "measured_s": round(second, 2),
                     "measured_over_estimate": None if not estimate else round(second / estimate, 3)})
        print(json.dumps(rows[-1]), flush=True)
    within = all(r["measured_over_estimate"] and 0.5 <= r["measured_over_estimate"] <= 2 for r in rows)
    print(json.dumps({"every_estimate_within_2x": within}))


if __name__ == "__main__":
    main()
