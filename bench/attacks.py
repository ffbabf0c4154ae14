"""Small inputs that used to take the server down, measured (issue 17): peak memory and time of refusing them.

    python bench/attacks.py

- a ~1 KB YAML "billion laughs" config (anchors nested 9 deep): refused at the first alias;
- a Parquet file of a few hundred bytes that unpacks to 80 MB of text: refused from its metadata in public
  mode (the 64 MB cap), read in under a second locally;
- 30 uploads of 10 MB each by one visitor: stored once each (moved out of Gradio's cache), 500 MB quota;
- a 300,000-row file checked as the public Data tab checks it: in a child process with time and memory limits.
Each case runs in a fresh process; peak memory is that process's VmHWM.
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


if __name__ == "__main__":
    main()
