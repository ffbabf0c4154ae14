"""Reliability, round 2: a dead run is "interrupted", ratings round-trip and import atomically and fast,
every bad input gets one line with the same exit code from every command, exports are mode 0644."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, eventually, write_jsonl

from studio.engine import runs
from studio.engine.judge.ratings import Ratings
from studio.engine.judge.ratings_io import export_file, import_file


def studio(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "studio", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=600, **kw)


@pytest.mark.slow
def test_a_killed_run_shows_interrupted_and_where_it_can_resume(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "studio", "train", ROOT / "assets/configs/quickstart.yaml",
                             "--set", "train.max_steps=5000", "--set", "train.save_steps=2", "--output-dir", run],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    eventually(lambda: runs.last_complete_checkpoint(run), timeout=180, what="a complete checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    listed = {r["path"]: r for r in json.loads(studio("runs", "--json").stdout)}
    mine = listed[str(run.resolve())]
    assert mine["state"] == "interrupted" and "resumable from checkpoint-" in mine["error"]
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"  # corrected on the read
    assert "interrupted" in studio("runs").stdout


def battles(n: int, judge: str = "ann") -> list[dict]:
    return [{"question_id": f"q{i}", "model_a": "base", "model_b": f"run-{i % 3}", "judge": judge,
             "winner": ("model_a", "model_b", "tie", "tie (bothbad)")[i % 4], "prompt": f"=SUM(A{i})",
             "output_a": f"+{i}", "output_b": f"-{i}"} for i in range(n)]


def likert(n: int) -> list[dict]:
    return [{"question_id": f"q{i}", "judge": "@bob", "model": "base", "quality": 1 + i % 5, "relevance": 3,
             "comment": "=cmd|' /C calc'!A0"} for i in range(n)]


def snapshot(db: Ratings) -> tuple:
    drop = lambda rows: sorted(json.dumps({k: v for k, v in r.items() if k not in ("id", "item_id")},  # noqa: E731
                                          sort_keys=True) for r in rows)
    return drop(db.votes()), drop(db.likert()), sorted(it["key"] for it in db.items())


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_export_then_import_restores_votes_likert_and_names(tmp_path, suffix):
    source = Ratings(tmp_path / "a.sqlite")
    src = write_jsonl(tmp_path / "in.jsonl", battles(40) + likert(10))
    counts = import_file(source, src)
    assert counts == {"added": 50, "replaced": 0, "skipped": 0, "pairwise": 40, "likert": 10}
    out = tmp_path / f"out{suffix}"
    export_file(source, out)
    if suffix == ".jsonl":
        assert "'=" not in out.read_text()  # the spreadsheet guard is for CSV only
    copy = Ratings(tmp_path / "b.sqlite")
    assert import_file(copy, out)["added"] == 50
    assert snapshot(copy) == snapshot(source)
    assert {v["rater"] for v in copy.votes()} == {"ann"} and {r["rater"] for r in copy.likert()} == {"@bob"}
    again = import_file(copy, out)
    assert again["added"] == 0 and again["skipped"] == 50 and snapshot(copy) == snapshot(source)


def test_a_bad_last_line_imports_nothing_and_names_the_line(tmp_path):
    from studio.engine.errors import DataError

    db = Ratings(tmp_path / "r.sqlite")
    rows = battles(300) + [{"model_a": "x", "model_b": "y", "winner": "model_c"}]
    with pytest.raises(DataError, match="line 301, field 'winner'"):
        import_file(db, write_jsonl(tmp_path / "bad.jsonl", rows))
    assert db.counts() == {"items": 0, "votes": 0, "likert": 0, "history": 0}


def test_a_changed_vote_replaces_and_the_count_says_so(tmp_path):
    db = Ratings(tmp_path / "r.sqlite")
    import_file(db, write_jsonl(tmp_path / "a.jsonl", battles(4)))
    changed = battles(4)
    changed[0]["winner"] = "model_b" if changed[0]["winner"] != "model_b" else "model_a"
    counts = import_file(db, write_jsonl(tmp_path / "b.jsonl", changed))
    assert (counts["added"], counts["replaced"], counts["skipped"]) == (0, 1, 3) and db.counts()["history"] == 1


@pytest.mark.slow
def test_preferences_say_why_votes_gave_no_pair(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    bare = [{k: v for k, v in b.items() if not k.startswith("output")} for b in battles(8)]
    assert studio("ratings", "import", write_jsonl(tmp_path / "b.jsonl", bare),
                  env={"STUDIO_HOME": str(tmp_path / "home")}).returncode == 0
    out = studio("ratings", "export", "--preferences", "--out", tmp_path / "p.jsonl",
                 env={"STUDIO_HOME": str(tmp_path / "home")})
    assert "wrote 0 preference pairs" in out.stdout and "4 (ties or both bad)" in out.stdout
    assert "4 (an output is missing)" in out.stdout


DEEP = '{"text": ' + "[" * 5000 + "]" * 5000 + "}\n"


@pytest.mark.slow
@pytest.mark.parametrize("name, content, message", [
    ("deep.jsonl", DEEP.encode(), "line 1: nested more than 64 levels deep"),
    ("wide.txt", "héllo wörld\nsecond line\n".encode("utf-16-le"), None),
    ("late.txt", b"good line\n" * 2000 + b"bad \x00 line\n", "line 2001: binary content"),
    ("late.csv", b"text\n" + b"fine\n" * 3000 + b"b\x00d\n", "line 3002: binary content"),
])
def test_bad_files_get_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    out = studio("check-data", path)
    if message is None:  # UTF-16 without a byte-order mark is read, with a notice
        assert out.returncode == 0 and "UTF-16-LE (no byte-order mark)" in out.stdout, out.stderr
        return
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


@pytest.mark.slow
def test_a_directory_and_a_list_config_get_one_line_and_the_same_code_everywhere(tmp_path):
    (tmp_path / "list.yaml").write_text("- data\n- model\n")
    (tmp_path / "dir.yaml").write_text(f"data:\n  path: {tmp_path}\n")
    out = studio("train", tmp_path / "list.yaml")
    assert out.returncode == 2 and out.stderr.strip() == "error: a config must be a mapping of sections (data, " \
                                                         "model, ...), got list"
    for args in (("check-data", tmp_path), ("train", tmp_path / "dir.yaml")):
        out = studio(*args)
        assert out.returncode == 2 and "is a directory" in out.stderr and out.stderr.count("\n") == 1, args


@pytest.mark.slow
def test_data_that_fails_the_check_leaves_no_run_directory_and_exits_2_like_check_data(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n')
    (tmp_path / "c.yaml").write_text(f"data:\n  path: {bad}\n")
    trained, checked = studio("train", tmp_path / "c.yaml", "--output-dir", tmp_path / "r"), studio("check-data", bad)
    assert trained.returncode == checked.returncode == 2
    assert "bad.jsonl: line 2" in trained.stderr and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_sparse_gigabyte_is_refused_in_little_memory(tmp_path):
    big = tmp_path / "big.jsonl"
    with big.open("wb") as f:
        f.truncate(2**30)
    # VmHWM (peak resident memory of this program), not ru_maxrss, which Linux carries over from the parent
    code = ("import re, sys\nfrom studio.engine.data.readers import read_records\n"
            "try:\n    read_records(sys.argv[1])\nexcept Exception as e:\n    print(e)\n"
            "status = open('/proc/self/status').read()\n"
            "print(int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)) // 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, cwd=ROOT)
    message, rss_mb = out.stdout.strip().splitlines()
    assert "line 1: binary content" in message and int(rss_mb) <= 300, (message, rss_mb)


@pytest.mark.integration
def test_exports_get_the_users_umask(tmp_path):
    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.export import exporters as E
    from studio.engine.train import loop

    run = loop.run(StudioConfig.from_dict(tiny_config(SAMPLES / "qa.csv", train={"max_steps": 1})),
                   tmp_path / "r").run_dir
    old = os.umask(0o022)
    try:
        zipped = E.export_adapter(run, tmp_path / "a.zip")
        merged = Path(E.export_merged(run, tmp_path / "m")["path"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(zipped.stat().st_mode) == 0o644 and stat.S_IMODE(merged.stat().st_mode) == 0o755
    assert stat.S_IMODE((merged / "config.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((run / "status.json").stat().st_mode) == 0o644


@pytest.mark.integration
def test_the_engine_refuses_another_visitors_run(tmp_path, monkeypatch):
    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.train import loop

    theirs = loop.run(StudioConfig.from_dict(tiny_config(SAMPLES / "qa.csv", train={"max_steps": 1})),
                      owner="them").run_dir
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    assert runs.find_run(theirs.name, "them") == theirs.resolve()
    assert runs.find_run(theirs.name, "me") is None and runs.find_run(theirs.name, None) is None
    assert theirs.name not in runs.trained_runs("me") and theirs.name not in [r.name for r in runs.list_runs("me")]


def test_idle_and_closed_sessions_are_dropped_unless_busy(monkeypatch):
    from types import SimpleNamespace

    from studio.ui import state

    sessions = state.Sessions()
    a = sessions.get("a", SimpleNamespace(session_hash="page-1"))
    sessions.get("b", SimpleNamespace(session_hash="page-2")).job = SimpleNamespace(done=False)
    sessions.page_closed(SimpleNamespace(session_hash="page-1"))
    sessions.page_closed(SimpleNamespace(session_hash="page-2"))
    sessions._swept = time.time() - 120
    assert sessions.get("a", SimpleNamespace(session_hash="page-3")) is a  # a reload comes back to its session
    sessions.page_closed(SimpleNamespace(session_hash="page-3"))
    monkeypatch.setattr(state, "RELOAD_S", 0.0)
    sessions._swept = time.time() - 120
    sessions.get("b")
    assert [s.key for s in sessions.all()] == ["b"]  # a's page did not come back: gone; b still trains
    monkeypatch.setattr(state, "IDLE_S", 0.0)
    sessions.get("b").job.done = True
    sessions._swept = time.time() - 120
    sessions.get("c")
    assert [s.key for s in sessions.all()] == ["c"] and a.key == "a"


def _update_status_often(run: str, field: str, n: int) -> None:
    """Each update of its own field, after checking that its previous one is still there; exits with how many
    were lost (the other process wrote a status it had read before this one's update)."""
    lost = 0
    for i in range(1, n + 1):
        lost += runs.read_status(Path(run)).get(field) != i - 1
        runs.write_status(Path(run), "running", **{field: i})
    os._exit(min(lost, 100))


def test_two_processes_updating_a_runs_status_lose_neither_ones_fields(tmp_path):
    """The training process writes the step while the app writes other fields of the same status.json: each
    update reads, changes and writes the file under a lock, so no update of either process is lost."""
    import multiprocessing as mp

    runs.write_status(tmp_path, "running", step=0, duration_s=0)
    ctx = mp.get_context("fork")
    writers = [ctx.Process(target=_update_status_often, args=(str(tmp_path), field, 300))
               for field in ("step", "duration_s")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(60)
    assert [w.exitcode for w in writers] == [0, 0]  # updates lost by each
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["step"] == 300 and status["duration_s"] == 300, status
