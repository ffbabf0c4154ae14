"""What watching costs: training tokens/s with the Train tab open and polling (a real chromium page
on the real app) ÷ the same run headless, alternated; and the median latency of a UI event (the
estimate refresh, through gradio_client) while a job trains.

Goals: tokens/s ratio >= 0.95; event latency < 300 ms.
Usage: python bench/ui_overhead.py [--steps 150] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="ui-bench-"))
DATA = ROOT / "assets" / "samples" / "chat.jsonl"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def median_tps(run_dir: str | Path) -> float:
    from studio.engine import runs

    lines = [m for m in runs.read_metrics(Path(run_dir)) if m.get("loss") is not None][3:]
    return statistics.median(m["tokens_per_s"] for m in lines)


def headless(steps: int) -> float:
    from studio.config import StudioConfig
    from studio.engine.train.jobs import Job

    job = Job(StudioConfig.from_dict({"data": {"path": str(DATA)}, "train": {"max_steps": steps}})).start()
    job.wait()
    return median_tps(job.snapshot().run_dir)


def watched(url: str, steps: int, probe=None) -> float:
    """Start the same run from a real page and keep its Train tab open until it completes."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(url)
        page.set_input_files("#data-upload input[type=file]", str(DATA))
        page.wait_for_function("document.querySelector('#data-report').innerText.includes('detected')")
        page.get_by_role("tab", name="Model").click()
        page.fill("#train-max_steps input", str(steps))
        page.press("#train-max_steps input", "Tab")
        page.get_by_role("tab", name="Train").click()
        time.sleep(1.0)
        page.click("#start")
        page.wait_for_function("document.querySelector('#status').innerText.includes('Training')")
        if probe:
            probe()
        page.wait_for_function("document.querySelector('#status').innerText.includes('Completed')", timeout=600000)
        run_dir = page.inner_text("#status").split("Run directory:")[1].strip()
        browser.close()
    return median_tps(run_dir)


def estimate_latencies(url: str, n: int = 20) -> list[float]:
    from gradio_client import Client

    c = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        c.predict(api_name="/estimate")
        out.append((time.perf_counter() - t) * 1000)
        time.sleep(0.3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    import app

    demo = app.launch(host="127.0.0.1", port=7911, block=False)
    url = "http://127.0.0.1:7911/"
    try:
        heads, views = [], []
        for _ in range(a.rounds):
            heads.append(headless(a.steps))
            views.append(watched(url, a.steps))
        latencies: list[float] = []
        probe = threading.Thread(target=lambda: latencies.extend(estimate_latencies(url)))
        watched(url, a.steps, probe=probe.start)
        probe.join()
        idle = estimate_latencies(url, 10)
    finally:
        demo.close()
    print(f"LoRA on studio-tiny, chat sample, {a.steps} steps, defaults otherwise; {a.rounds} alternated rounds")
    print(f"headless tokens/s: {[round(x) for x in heads]}  median {statistics.median(heads):.0f}")
    print(f"Train tab open:    {[round(x) for x in views]}  median {statistics.median(views):.0f}")
    print(f"ratio watched / headless: {statistics.median(views) / statistics.median(heads):.3f} (goal >= 0.95)")
    print(f"estimate refresh while training: median {statistics.median(latencies):.0f} ms, "
          f"p95 {sorted(latencies)[int(0.95 * (len(latencies) - 1))]:.0f} ms (goal < 300 ms); "
          f"idle median {statistics.median(idle):.0f} ms")


if __name__ == "__main__":
    main()
