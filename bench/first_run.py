"""The first run, measured: the default path must train in about a minute and prove itself.

For each dataset (the bundled chat sample, and a held-out task in a format of its own) it trains with
nothing set but ``data.path`` (the CLI, through the same defaults rule as the UI's untouched form),
compares base and tuned on the run's validation split with the default generation settings, and prints:
training seconds, comparing seconds, ROUGE-L / token F1 / BERTScore F1 differences with their 95 %
intervals, distinct-1 of the base answers, and the tuned answers' median length against the references.

    python bench/first_run.py [--data FILE ...] [--threads N]

Baseline: the measurement of the default path before the small-model defaults (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = [ROOT / "assets/samples/chat.jsonl", ROOT / "bench/data/plurals.json"]
GATES = ("rougeL", "token_f1", "bertscore_f1")


def distinct_1(texts: list[str]) -> float:
    words = [w for t in texts for w in t.split()]
    return len(set(words)) / max(1, len(words))


def train_cli(data: Path, home: str, work: Path, threads: int) -> tuple[Path, float]:
    cfg = work / "only-data.yaml"
    cfg.write_text(f"data:\n  path: {data}\n")
    env = {**os.environ, "STUDIO_HOME": home, "STUDIO_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "studio", "train", str(cfg), "--output-dir", str(work / "run")],
                         capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"training failed: {out.stderr[-2000:]}")
    print(out.stderr.strip().splitlines()[0], file=sys.stderr)  # the defaults line
    return work / "run", seconds


def measure(data: Path, threads: int) -> dict:
    from studio.engine import runs
    from studio.engine.judge.evaluate import evaluate_run
    from studio.engine.train.loop import set_threads

    work = Path(tempfile.mkdtemp(prefix="first-run-"))
    run, train_s = train_cli(data, os.environ["STUDIO_HOME"], work, threads)
    set_threads(threads)
    started = time.perf_counter()
    s = evaluate_run(run, name="first-run")
    compare_s = time.perf_counter() - started
    _, rows = runs.read_eval(run, "first-run")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run / "adapter")
    ratio = [len(tok(r["tuned"])["input_ids"]) / max(1, len(tok(r["reference"])["input_ids"])) for r in rows]
    losses = [m["loss"] for m in runs.read_metrics(run) if m.get("loss") is not None]
    return {"data": data.name, "train_s": round(train_s, 1), "steps": runs.read_status(run)["step"],
            "loss_first": round(losses[0], 3), "loss_last": round(losses[-1], 3), "compare_s": round(compare_s, 1),
            "examples": s.examples, "distinct1_base": round(distinct_1([r["base"] for r in rows]), 3),
            "median_len_ratio": round(statistics.median(ratio), 2),
            **{m: {"base": s.base[m].value, "tuned": s.tuned[m].value, "delta": s.delta[m].value,
                   "ci_low": s.delta[m].ci_low, "ci_high": s.delta[m].ci_high} for m in GATES},
            "samples": [{k: rows[i][k] for k in ("reference", "base", "tuned")} for i in range(3)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="first-run-home-"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from studio.settings import quiet_libraries

    quiet_libraries()
    results = [measure(d, a.threads) for d in a.data]
    print(json.dumps(results, indent=1))
    print(f"\n{'data':16s} {'train s':>8s} {'steps':>6s} {'loss':>13s} {'compare s':>10s} "
          + " ".join(f"{m + ' delta [95% CI]':>30s}" for m in GATES) + f" {'distinct-1':>10s} {'len ratio':>9s}")
    for r in results:
        cells = " ".join(f"{r[m]['delta']:+8.3f} [{r[m]['ci_low']:+.3f}, {r[m]['ci_high']:+.3f}]".rjust(30)
                         for m in GATES)
        print(f"{r['data']:16s} {r['train_s']:8.1f} {r['steps']:6d} {r['loss_first']:6.2f}->{r['loss_last']:5.2f} "
              f"{r['compare_s']:10.1f} {cells} {r['distinct1_base']:10.3f} {r['median_len_ratio']:9.2f}")


if __name__ == "__main__":
    main()
