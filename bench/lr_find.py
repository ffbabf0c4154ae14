"""Does the LR finder's suggestion train better? For each bundled sample: `studio lr-find` on the
config a newcomer gets (only ``data.path`` set; the model's defaults fill the rest), then three 60-step runs
from the same seed that differ only in the learning rate: the schema's generic default (2e-4, what a hub
model gets), the default fitted to studio-tiny, and the finder's suggestion. Prints the final training loss
(mean of the last 10 logged steps) and the validation loss of each.

    python bench/lr_find.py [--steps 60] [--samples chat.jsonl instructions.json qa.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERIC = 2e-4  # the learning rate a hub-sized model gets (and every model got before the small-model defaults)


def studio(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return out.stdout


def losses(run: Path) -> tuple[float, float | None]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in records if r.get("loss") is not None]
    evals = [r["eval_loss"] for r in records if r.get("eval_loss") is not None]
    return statistics.mean(train[-10:]), (evals[-1] if evals else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--samples", nargs="+", default=["chat.jsonl", "instructions.json", "qa.csv"])
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from studio.engine.train.defaults import with_defaults

    work = Path(tempfile.mkdtemp(prefix="lr-find-bench-"))
    os.environ.setdefault("STUDIO_HOME", str(work / "home"))
    print(f"{'sample':18s} {'lr':>9s} {'which':>10s} {'train loss':>10s} {'val loss':>9s}")
    for sample in a.samples:
        cfg = work / f"{sample}.yaml"
        cfg.write_text(f"data:\n  path: {ROOT / 'assets' / 'samples' / sample}\n")
        curve = json.loads(studio("lr-find", str(cfg), "--json"))
        fitted = with_defaults({"data": {"path": str(ROOT / "assets" / "samples" / sample)}})[0].train.learning_rate
        rows = [("generic", GENERIC), ("fitted", fitted), ("suggested", curve["suggestion"])]
        for which, lr in rows:
            if lr is None:
                print(f"{sample:18s} {'-':>9s} {which:>10s}  (no value)")
                continue
            run = work / f"{sample}-{which}"
            studio("train", str(cfg), "--set", f"train.learning_rate={lr}", "--set", f"train.max_steps={a.steps}",
                   "--set", f"train.eval_steps={a.steps}", "--output-dir", str(run))
            train, val = losses(run)
            print(f"{sample:18s} {lr:9.2e} {which:>10s} {train:10.4f} {val if val is None else round(val, 4)!s:>9s}")


if __name__ == "__main__":
    main()
