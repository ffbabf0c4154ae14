"""A visitor's data is read in a child process with limits: the child's answer or error comes back as itself;
past its time, its memory or a Stop it is killed and the reason is one line; the server's memory stays put."""

import os
import time

import psutil
import pytest
from conftest import SAMPLES

from studio.engine.data.check import inspect_data
from studio.engine.errors import DataError, StudioError
from studio.engine.isolate import isolated


def hog(mb: int) -> int:
    """Takes memory a megabyte at a time, slowly enough for the limit to see it."""
    kept = []
    for _ in range(mb):
        kept.append(b"x" * 2**20)
        time.sleep(0.002)
    return len(kept)


@pytest.mark.integration
def test_the_answer_comes_back_from_the_child():
    ins = isolated(inspect_data, str(SAMPLES / "chat.jsonl"), "auto", {}, "studio-tiny", 256, "auto", 2)
    assert ins.report["format"] == "messages" and ins.report["examples"] > 50 and len(ins.preview) == 2
    assert ins.report == inspect_data(str(SAMPLES / "chat.jsonl"), max_length=256).report


@pytest.mark.integration
def test_the_childs_error_is_the_studios_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "hi", "output": "ho"}\n{"instruction": \n')
    with pytest.raises(DataError, match="bad.jsonl.*line 2"):
        isolated(inspect_data, str(bad), "auto", {}, "studio-tiny", 256, "auto", 0)


@pytest.mark.integration
def test_past_its_time_the_child_is_killed():
    t0 = time.time()
    with pytest.raises(StudioError, match="longer than this deployment's 1 s"):
        isolated(time.sleep, 60, seconds=1)
    assert time.time() - t0 < 15


@pytest.mark.integration
def test_past_its_memory_the_child_is_killed_and_the_server_keeps_its_own():
    before = psutil.Process(os.getpid()).memory_info().rss
    with pytest.raises(StudioError, match="more than this deployment's 300 MB"):
        isolated(hog, 3000, memory_mb=300)
    assert psutil.Process(os.getpid()).memory_info().rss - before < 100 * 2**20


@pytest.mark.integration
def test_a_stop_ends_the_child():
    asked = time.time() + 1.5
    t0 = time.time()
    with pytest.raises(StudioError, match="was stopped"):
        isolated(time.sleep, 60, should_stop=lambda: time.time() > asked)
    assert time.time() - t0 < 10


SEES = r"""
import json, sys
sys.path.insert(0, "tests")
from test_isolate import secrets_seen
from studio.engine.isolate import isolated
print(json.dumps(isolated(secrets_seen, what="the probe")))
"""


def secrets_seen() -> dict:
    """What a library in a visitor's job could read of the operator's login (as trackio reads HF_TOKEN)."""
    from huggingface_hub import get_token

    return {"env": os.environ.get("HF_TOKEN"), "hub": get_token()}


@pytest.mark.integration
@pytest.mark.parametrize("public", [True, False])
def test_a_visitors_job_never_sees_the_operators_token_on_a_public_deployment(public, tmp_path):
    """A fresh server process with the operator's HF_TOKEN set (and a saved hub login): the job child it starts
    for a visitor reads neither on a public deployment; on the operator's own machine the token is theirs to use."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text("hf_saved_login")
    env = {k: v for k, v in os.environ.items() if k not in ("STUDIO_PUBLIC", "SPACE_ID")}
    env.update(HF_TOKEN="hf_operator_secret", HF_HOME=str(tmp_path / "hf"), STUDIO_HOME=str(tmp_path / "home"),
               **({"STUDIO_PUBLIC": "1"} if public else {}))
    done = subprocess.run([sys.executable, "-c", SEES], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    operator = "hf_operator_secret"
    assert seen == ({"env": None, "hub": None} if public else {"env": operator, "hub": operator})


@pytest.mark.integration
def test_an_anonymous_visitors_child_runs_below_everyone_elses(monkeypatch):
    """On a public deployment a data check nobody can be named for (an anonymous page checking a sample) runs at a
    lower priority than training and logged-in visitors' work; locally nothing is lowered."""
    from studio.engine import isolate, runs

    here = os.nice(0)
    lowered = min(19, here + isolate.ANON_NICE)
    for public, owner, expected in (("1", None, lowered), ("1", "user-alice", here), ("", None, here)):
        monkeypatch.setenv("STUDIO_PUBLIC", public)
        token = runs.ACTING.set(owner)
        try:
            assert isolated(os.nice, 0, owner=owner) == expected, (public, owner)
        finally:
            runs.ACTING.reset(token)
