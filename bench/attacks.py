"""Small inputs that used to take the server down, measured: peak memory and time of refusing them.

    python bench/attacks.py

- a ~1 KB YAML "billion laughs" config (anchors nested 9 deep): refused at the first alias;
- a Parquet file of a few hundred bytes that unpacks to 80 MB of text: refused from its metadata in public
  mode (the 64 MB cap), read in under a second locally;
- 30 uploads of 10 MB each by one visitor: stored once each (moved out of Gradio's cache), 500 MB quota;
- a 300,000-row file checked as the public Data tab checks it: in a child process with time and memory limits.
Each case runs in a fresh process; peak memory is that process's VmHWM.

    python bench/attacks.py --gradio

runs the public app and measures Gradio's own routes (ui/gateway.py): 800 new anonymous sessions (the web server's
growth), a 20 s flood of anonymous data checks from new sessions (alice's own check alone, during, after), and a
50 MB anonymous upload (refused; bytes stored).

    python bench/attacks.py --server

runs the public app (STUDIO_PUBLIC=1, two logged-in visitors by a trusted header, as the security tests do) and
measures what one visitor can do to the web server and to another visitor:

- H4: an 814-byte-class Parquet bomb (2 GB of text once decoded) given to Compare: the server's RSS before and
  after, and the time to the refusal; a 12,000-word chat message: time to the refusal; alice's chat answer
  alone and while bob sends five chat messages at once;
- M1: a comparison asking for 10^6 examples and 2,500 new tokens: how many it measured and how long, and how
  long after the visitor's Stop a long one ends;
- M3: carol's check of a sample alone, and while bob's 300,000-row check runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import re, sys, time
t = time.perf_counter()
try:
    {call}
    outcome = "accepted"
except Exception as e:
    outcome = str(e)[:120]
hwm = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) // 1024
print(outcome); print(hwm); print(round(time.perf_counter() - t, 2))
"""


def probe(call: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(call=call)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **(env or {})}).stdout.splitlines()
    return {"outcome": out[0], "peak_mb": int(out[1]), "seconds": float(out[2])}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="attacks-"))
    bomb = work / "bomb.yaml"
    levels = ["a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
    bomb.write_text("data:\n  columns:\n" + "\n".join("    " + line for line in levels) + "\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = work / "bomb.parquet"
    pq.write_table(pa.table({"text": ["a" * (80 * 2**20)]}), parquet, compression="zstd")
    results = {"yaml_bomb_bytes": bomb.stat().st_size,
               "yaml_bomb": probe(f"from studio.config import StudioConfig; StudioConfig.load({str(bomb)!r})"),
               "parquet_bomb_bytes": parquet.stat().st_size,
               "parquet_bomb_public": probe(f"from studio.engine.data.readers import read_records; "
                                            f"read_records({str(parquet)!r})", {"STUDIO_PUBLIC": "1"}),
               "parquet_bomb_local": probe(f"from studio.engine.data.readers import read_records; "
                                           f"read_records({str(parquet)!r})", {"STUDIO_PUBLIC": ""})}
    results["upload_flood"] = upload_flood(work)
    results["data_check_apart"] = data_check_apart(work)
    print(json.dumps(results, indent=1))


def upload_flood(work: Path) -> dict:
    """30 x 10 MB through the session's own upload path (what the Data tab's handler calls)."""
    os.environ.update({"STUDIO_PUBLIC": "1", "STUDIO_HOME": str(work / "home")})
    sys.path.insert(0, str(ROOT))
    from studio.engine.budget import folder_mb
    from studio.engine.errors import StudioError
    from studio.ui.state import Session

    s, started, refused = Session("user-mallory", "user-mallory"), time.perf_counter(), 0
    cache = work / "gradio-cache"
    cache.mkdir()
    for i in range(60):
        f = cache / f"up{i}.jsonl"
        f.write_bytes(b'{"text": "x"}\n' * (10 * 2**20 // 14))
        try:
            s.keep_upload(str(f))
        except StudioError:
            refused += 1
    return {"uploads": 60, "refused_by_quota": refused, "stored_mb": round(folder_mb(work / "home"), 1),
            "left_in_cache_mb": round(folder_mb(cache), 1), "seconds": round(time.perf_counter() - started, 2)}


def data_check_apart(work: Path) -> dict:
    """A 300,000-row file checked the way a public Data tab checks it (a child process with limits): what the
    server's own memory does, with the default limits and with a 600 MB one."""
    import psutil

    from studio.engine.data.check import inspect_data
    from studio.engine.isolate import isolated

    big = work / "big.csv"
    big.write_text("instruction,output\n" + "".join(f"What is {i} plus {i}?,{2 * i} since {i} and {i} make {2 * i}.\n"
                                                     for i in range(300_000)))
    out = {"file_mb": round(big.stat().st_size / 2**20, 1)}
    for label, limit in (("default_limits", None), ("limit_600_mb", 600)):
        me, t = psutil.Process(), time.perf_counter()
        before = me.memory_info().rss
        try:
            kw = {"memory_mb": limit} if limit else {}
            ins = isolated(inspect_data, str(big), "auto", {}, "studio-tiny", 256, "auto", 0, **kw)
            outcome = f"checked: {ins.report['examples']} examples"
        except Exception as e:  # noqa: BLE001 - the outcome is the measurement
            outcome = str(e)
        out[label] = {"outcome": outcome, "seconds": round(time.perf_counter() - t, 2),
                      "server_rss_growth_mb": round((me.memory_info().rss - before) / 2**20, 1)}
    return out


# -- against the public app ---------------------------------------------------------------------------------------
def server_attacks() -> dict:
    import socket

    import httpx
    import psutil
    from gradio_client import Client, handle_file

    work = Path(tempfile.mkdtemp(prefix="attacks-server-"))
    home = work / "home"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "STUDIO_PUBLIC": "1", "STUDIO_HOME": str(home), "STUDIO_HOST": "127.0.0.1",
           "STUDIO_PORT": str(port), "STUDIO_TRUSTED_USER_HEADER": "X-Studio-User", "HF_HUB_OFFLINE": "1",
           "HF_TOKEN": "hf_operator_secret"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(600):
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        server = psutil.Process(proc.pid)
        rss = lambda: round(server.memory_info().rss / 2**20, 1)  # noqa: E731
        who = lambda name: Client(url, verbose=False, analytics_enabled=False, download_files=False,  # noqa: E731
                                  headers={"X-Studio-User": name})
        alice, bob, carol = who("alice"), who("bob"), who("carol")
        qa = ROOT / "assets" / "samples" / "qa.csv"
        runs_of = {}
        for name, c in (("alice", alice), ("bob", bob)):
            c.predict(handle_file(str(qa)), api_name="/upload")
            _call(c, "/start", {"max steps": 3})
            while not any(w in (status := c.predict(api_name="/status")[0]) for w in ("Completed", "Failed")):
                time.sleep(0.5)
            runs_of[name] = status.split("Run `")[1].split("`")[0]
        out = {"server_rss_after_two_runs_mb": rss()}

        import pyarrow as pa
        import pyarrow.parquet as pq

        column = pa.DictionaryArray.from_arrays(pa.array([0] * 20_000, pa.int32()), pa.array(["x" * 100_000]))
        bomb = work / "eval.parquet"
        pq.write_table(pa.table({"instruction": column, "output": column}), bomb, compression="zstd")
        before, t = rss(), time.perf_counter()
        said = _try(lambda: _call(alice, "/compare", {"Run": runs_of["alice"], "Prompts from": "upload a file",
                                                      "Evaluation file (with references)": handle_file(str(bomb)),
                                                      "bertscore": False}))
        out["h4_parquet_bomb_compare"] = {"file_bytes": bomb.stat().st_size, "answer": said[:160],
                                          "seconds": round(time.perf_counter() - t, 2),
                                          "server_rss_before_mb": before, "server_rss_after_mb": rss()}
        t = time.perf_counter()
        said = _try(lambda: _chat(alice, runs_of["alice"], " ".join(["word"] * 12_000)))
        out["h4_12000_word_chat"] = {"answer": said[:120], "seconds": round(time.perf_counter() - t, 2),
                                     "server_rss_after_mb": rss()}
        alone = [_timed(lambda: _chat(alice, runs_of["alice"], "Add 2 and 3.")) for _ in range(3)]
        flood = [bob.submit(*_chat_args(bob, runs_of["bob"], "Tell me a long story."), api_name="/chat")
                 for _ in range(5)]
        time.sleep(0.5)
        crowded = [_timed(lambda: _chat(alice, runs_of["alice"], "Add 2 and 3.")) for _ in range(3)]
        bob_answers = [_try(lambda j=j: str(j.result(timeout=300))) for j in flood]
        out["h4_chat_latency"] = {"alice_alone_s": sorted(alone)[1], "alice_while_bob_sends_5_s": sorted(crowded)[1],
                                  "bob_refused": sum("still going" in a for a in bob_answers)}
        t = time.perf_counter()
        said = _try(lambda: _call(alice, "/compare", {"Run": runs_of["alice"], "at most N examples": 10**6,
                                                      "max new tokens": 2500, "bertscore": False}))
        out["m1_compare_1e6_examples_2500_tokens"] = {"answer": said[:120],
                                                      "seconds": round(time.perf_counter() - t, 2)}
        job = bob.submit(**_args(bob, "/compare", {"Run": runs_of["bob"], "at most N examples": 10**6,
                                                   "max new tokens": 2500, "bertscore": False}), api_name="/compare")
        time.sleep(3)
        t = time.perf_counter()
        bob.predict(api_name="/stop")
        said = _try(lambda: str(job.result(timeout=300)))
        out["m1_stop_ends_a_comparison"] = {"answer": said[:120], "seconds_after_stop": round(time.perf_counter() - t,
                                                                                              2)}
        check = lambda: carol.predict("qa.csv", "auto", "", 256, "studio-tiny", "auto",  # noqa: E731
                                      api_name="/check_data")
        alone = _timed(check)
        big = work / "big.csv"
        big.write_text("instruction,output\n" + "".join(f"What is {i} plus {i}?,{2 * i}.\n" for i in range(300_000)))
        slow = bob.submit(bob.predict(handle_file(str(big)), api_name="/upload")[0], "auto", "", 256, "studio-tiny",
                          "auto", api_name="/check_data")
        time.sleep(2)
        during = _timed(check)
        out["m3_data_check_latency"] = {"carol_alone_s": alone, "carol_while_bob_checks_300k_rows_s": during,
                                        "bob_still_checking": not slow.done()}
        bob.predict(api_name="/stop")
        out["server_rss_end_mb"] = rss()
        return out
    finally:
        proc.terminate()
        proc.wait(30)


def _args(c, api: str, by_label: dict) -> dict:
    info = c.view_api(return_format="dict", print_info=False)["named_endpoints"][api]["parameters"]
    return {p["parameter_name"]: by_label.get(p["label"], p.get("parameter_default")) for p in info}


def _call(c, api: str, by_label: dict):
    return c.predict(**_args(c, api, by_label), api_name=api)


def _chat_args(c, run: str, message: str) -> list:
    info = c.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]["parameters"]
    return [run, message, *[p.get("parameter_default") for p in info[2:]]]


def _chat(c, run: str, message: str):
    return c.predict(*_chat_args(c, run, message), api_name="/chat")


def _try(fn) -> str:
    try:
        return str(fn())
    except Exception as e:  # noqa: BLE001 - a refusal is the measurement
        return f"refused: {e}"


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return round(time.perf_counter() - t, 2)


def gradio_routes(sessions: int = 800, flood_s: float = 20.0) -> dict:
    """Gradio's own routes on a public app: new anonymous sessions (each asks for the status panel once: the web
    server's growth), a flood of anonymous data checks from new sessions (alice's own check during and after),
    and an anonymous upload (refused, nothing stored)."""
    import socket
    import threading
    import uuid

    import httpx
    import psutil
    from gradio_client import Client

    work = Path(tempfile.mkdtemp(prefix="attacks-gradio-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "STUDIO_PUBLIC": "1", "STUDIO_HOME": str(work / "home"), "STUDIO_HOST": "127.0.0.1",
           "STUDIO_PORT": str(port), "STUDIO_TRUSTED_USER_HEADER": "X-Studio-User", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url, out = f"http://127.0.0.1:{port}/", {}
    try:
        for _ in range(600):
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        server = psutil.Process(proc.pid)
        page = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        for _ in range(30):
            page.session_hash = uuid.uuid4().hex
            page.predict(api_name="/status")
        before, t = server.memory_info().rss, time.perf_counter()
        for _ in range(sessions):
            page.session_hash = uuid.uuid4().hex
            page.predict(api_name="/status")
        grown = (server.memory_info().rss - before) / 2**20
        out["new_sessions"] = {"sessions": sessions, "grown_mb": round(grown, 1), "seconds": timed_since(t),
                               "kb_per_session": round(grown * 1024 / sessions, 1)}
        alice = Client(url, verbose=False, analytics_enabled=False, download_files=False,
                       headers={"X-Studio-User": "alice"})
        check = ("qa.csv", "auto", "", 256, "studio-tiny", "auto")
        out["alice_check_alone_s"] = _timed(lambda: alice.predict(*check, api_name="/check_data"))
        outcomes: dict = {}
        until = time.time() + flood_s

        def flood():
            flooder = Client(url, verbose=False, analytics_enabled=False, download_files=False)
            while time.time() < until:
                flooder.session_hash = uuid.uuid4().hex
                try:
                    flooder.predict(*check, api_name="/check_data")
                    kind = "answered"
                except Exception as e:  # noqa: BLE001 - refused at the door
                    kind = "refused" if "busy" in str(e) or "503" in str(e) else type(e).__name__
                outcomes[kind] = outcomes.get(kind, 0) + 1

        threads = [threading.Thread(target=flood) for _ in range(12)]
        for th in threads:
            th.start()
        time.sleep(3)
        during = []
        while time.time() < until - 2:
            try:
                during.append(_timed(lambda: alice.predict(*check, api_name="/check_data")))
            except Exception as e:  # noqa: BLE001
                during.append(f"refused: {str(e)[:60]}")
        for th in threads:
            th.join()
        out["flood"] = {"threads": 12, "seconds": flood_s, "anonymous": outcomes, "alice_during_s": during,
                        "alice_after_s": _timed(lambda: alice.predict(*check, api_name="/check_data"))}
        answer = httpx.post(url + "gradio_api/upload", files={"files": ("big.bin", b"x" * 50 * 2**20)}, timeout=60)
        stored = sum(f.stat().st_size for f in (work / "home" / "gradio").rglob("*") if f.is_file()) \
            if (work / "home" / "gradio").exists() else 0
        out["anonymous_upload_50mb"] = {"status": answer.status_code, "bytes_stored": stored}
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def timed_since(t: float) -> float:
    return round(time.perf_counter() - t, 1)


if __name__ == "__main__":
    if "--server" in sys.argv:
        print(json.dumps(server_attacks(), indent=1))
    elif "--gradio" in sys.argv:
        print(json.dumps(gradio_routes(), indent=1))
    else:
        main()
