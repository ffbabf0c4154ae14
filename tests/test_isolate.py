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
