"""Time estimates from this machine's own measurements: a job records its seconds per unit of work, the next
one of its kind and shape is expected to take that rate times its units, and the page's progress moves by the
time spent against it (or says it is measuring)."""

import threading
import time

import pytest

from studio.engine import calibration, timing
from studio.ui import timed as T


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))


def test_a_job_is_expected_to_take_its_kinds_last_rates_times_its_units():
    assert timing.expected("compare", "llama-256", 12) is None  # never measured here: no claim
    timing.record("compare", "llama-256", 10, 5.0)  # 0.5 s an example
    assert timing.expected("compare", "llama-256", 12) == pytest.approx(6.0)
    assert timing.expected("compare", "llama-512", 12) is None  # another shape: its own measurement
    for seconds in (10.0, 10.0, 10.0):  # a slower machine day: the last three are kept, the first forgotten
        timing.record("compare", "llama-256", 10, seconds)
    assert timing.expected("compare", "llama-256", 10) == pytest.approx(10.0)
    assert all(key.startswith(calibration.machine()) for key in calibration.read()["took"])


def test_a_stopwatch_records_a_finished_block_only():
    with timing.Stopwatch("serve", "s", 1):
        time.sleep(0.05)
    assert 0.04 < timing.expected("serve", "s", 1) < 2
    with pytest.raises(RuntimeError), timing.Stopwatch("serve", "t", 1):
        raise RuntimeError("it failed")
    assert timing.expected("serve", "t", 1) is None


def test_the_progress_says_waiting_then_spent_of_expected_then_longer_or_measuring():
    assert T.tick("comparing", 40.0, None) == (0.0, "waiting for the device")
    fraction, words = T.tick("comparing", 40.0, 10.0, "generating with the base model")
    assert fraction == pytest.approx(0.25) and words == "comparing (generating with the base model): 10 s of about 40 s"
    assert T.tick("comparing", 40.0, 50.0)[1].startswith("comparing: 50 s, longer than the about 40 s")
    fraction, words = T.tick("comparing", None, 3.0)
    assert fraction is None and "first on this machine" in words
    assert timing.said(200) == "about 3 min" and timing.said(12.4) == "about 12 s"


def test_timed_runs_the_job_in_a_thread_and_ticks_until_it_ends():
    shown, queued, release = [], threading.Event(), threading.Event()

    def job(x, started, scale=1):
        queued.wait(5)  # in the device queue until the page has said so once
        started()
        release.wait(5)
        return x * scale

    def progress(fraction, desc):
        shown.append(desc)
        queued.set()
        if len(shown) == 4:
            release.set()

    assert T.timed(progress, "working", 60.0, job, 21, scale=2) == 42
    assert shown[0] == "waiting for the device" and shown[-1].startswith("working: ") and "of about 60 s" in shown[-1]

    def broken(started):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        T.timed(lambda *a, **k: None, "working", None, broken)
