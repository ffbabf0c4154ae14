"""Load: 20 gradio_client clients on loopback for 60 s, each polling the training status and casting
blind votes, while a job trains. Counts errors and lost votes, prints p50/p95 latency per call and
the drop in training tokens/s against the same job before the load began.

Usage: python bench/load.py [--clients 20] [--seconds 60] [--baseline 20] [--nice 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="load-bench-"))


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1)))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--baseline", type=float, default=20)
    ap.add_argument("--nice", type=int, default=5, help="the web server's priority below training's (0: equal)")
    a = ap.parse_args()
    from gradio_client import Client, handle_file

    import app
    from studio.engine.judge.ratings import default_db

    db = default_db()
    for i in range(400):
        db.add_item(f"load-{i}", f"Question {i}?", {"base": f"answer {i}", "tuned": f"better answer {i}"})
    demo = app.launch(host="127.0.0.1", port=7931, block=False, nice=a.nice)  # as `python app.py` serves
    url = "http://127.0.0.1:7931/"
    trainer = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    trainer.predict(handle_file(str(ROOT / "assets/samples/chat.jsonl")), api_name="/upload")
    params = trainer.view_api(return_format="dict", print_info=False)["named_endpoints"]["/start"]["parameters"]
    steps = next(p["parameter_name"] for p in params if p["label"] == "max steps")
    trainer.predict(**{steps: 100000}, api_name="/start")
    while "Training" not in trainer.predict(api_name="/status")[0]:
        time.sleep(0.2)
    train_t0 = time.time()  # ~ the job's elapsed_s origin (to within the model load)
    time.sleep(a.baseline)
    load_start = time.time()
    # The clients run in their own process, as visitors' browsers would: the server process then
    # spends only what serving them costs, not what generating the load costs.
    child = subprocess.run([sys.executable, __file__, "--clients-only", url, str(a.clients), str(a.seconds)],
                           capture_output=True, text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    latencies, errors, voted = result["latencies"], result["errors"], [result["voted"]]
    load_end = time.time()
    report(a, trainer, db, latencies, errors, voted, load_start, load_end, train_t0, demo)


def clients_only(url: str, clients: int, seconds: float) -> None:
    from gradio_client import Client

    try:  # the visitors' browsers are not the server: back to the normal priority (needs root to raise it)
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except PermissionError:
        print("note: the clients run at the server's lowered priority", file=sys.stderr)

    load_start = time.time()
    latencies: dict[str, list[float]] = {"status": [], "vote": []}
    errors: list[str] = []
    voted = [0]
    lock = threading.Lock()
    a = argparse.Namespace(seconds=seconds)

    def client(n: int) -> None:
        c = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        end = load_start + a.seconds
        c.predict(f"rater-{n}", api_name="/rate_next_pair")
        while time.time() < end:
            for name, call in (("status", lambda: c.predict(api_name="/status")),
                               ("vote", lambda: c.predict(f"rater-{n}", api_name="/rate_vote_a"))):
                t = time.perf_counter()
                try:
                    out = call()
                    with lock:
                        latencies[name].append(time.perf_counter() - t)
                        if name == "vote" and "Recorded" in out[3]:  # the reveal (then counts and results)
                            voted[0] += 1
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    with lock:
                        errors.append(f"{name}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps({"latencies": latencies, "errors": errors, "voted": voted[0]}))


def report(a, trainer, db, latencies, errors, voted, load_start, load_end, train_t0, demo) -> None:
    from studio.engine import runs

    run_dir = trainer.predict(api_name="/status")[0].split("Run directory:")[1].strip().strip("`")
    trainer.predict(api_name="/stop")
    time.sleep(3)
    demo.close()
    stored = sum(1 for v in db.votes() if v["rater"].startswith("rater-"))
    metrics = [m for m in runs.read_metrics(Path(run_dir)) if m.get("tokens_per_s")]
    lo, hi = load_start - train_t0, load_end - train_t0
    before = [m["tokens_per_s"] for m in metrics if 3 < m["elapsed_s"] < lo]
    during = [m["tokens_per_s"] for m in metrics if lo <= m["elapsed_s"] <= hi]
    threads = os.environ.get("STUDIO_THREADS") or os.cpu_count()
    print(f"{a.clients} clients x {a.seconds:.0f} s on loopback while LoRA trains on studio-tiny ({threads} threads; "
          f"web server nice {a.nice})")
    print(f"errors: {len(errors)}{' e.g. ' + errors[0] if errors else ''}")
    print(f"votes acknowledged {voted[0]}, stored {stored}: lost {voted[0] - stored}")
    for name, xs in latencies.items():
        print(f"{name:6s} calls {len(xs):5d}  p50 {pct(xs, 0.5) * 1000:7.0f} ms  p95 {pct(xs, 0.95) * 1000:7.0f} ms")
    if before and during:
        b, d = statistics.median(before), statistics.median(during)
        print(f"training tokens/s: {b:.0f} before, {d:.0f} under load ({d / b:.2f}x)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--clients-only":
        clients_only(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
