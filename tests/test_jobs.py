"""Background jobs: one on the device at a time, the others queued; stop stops only its own."""

import shutil
import time

import psutil
import pytest
from conftest import tiny_config

from studio.config import StudioConfig
from studio.engine.device import DeviceQueue
from studio.engine.train.jobs import Job
from studio.settings import studio_home


def wait_for(predicate, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.integration
def test_second_job_queues_and_each_stop_is_its_own(alpaca_file, tmp_path):
    queue = DeviceQueue()
    long = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 500}))
    short = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 2}))
    a = Job(long, tmp_path / "a", queue=queue, isolate=False).start()
    assert wait_for(lambda: len(a.snapshot().metrics) >= 1)
    b = Job(long, tmp_path / "b", queue=queue, isolate=False).start()
    c = Job(short, tmp_path / "c", queue=queue, isolate=False).start()
    assert wait_for(lambda: c.snapshot().queue_position == 2, timeout=30)  # both have entered the queue
    assert b.snapshot().state == "queued" and b.snapshot().queue_position == 1
    b.stop()  # leaves the queue; a keeps training
    assert b.wait(10) and b.state == "stopped" and not (tmp_path / "b" / "status.json").exists()
    assert c.snapshot().queue_position == 1
    n = len(a.snapshot().metrics)
    assert wait_for(lambda: len(a.snapshot().metrics) > n) and a.state == "running"
    a.stop()
    assert a.wait(30) and a.state == "stopped"
    assert c.wait(60) and c.state == "completed" and c.snapshot().metrics
    assert not queue.busy


@pytest.mark.integration
def test_a_failing_job_frees_the_device(tmp_path):
    queue = DeviceQueue()
    bad = StudioConfig.from_dict(tiny_config(tmp_path / "missing.jsonl"))
    job = Job(bad, tmp_path / "r", queue=queue).start()
    assert job.wait(30) and job.state == "failed" and "file not found" in job.snapshot().error
    assert not queue.busy and not (tmp_path / "r").exists()  # bad input leaves no run directory


@pytest.mark.integration
def test_the_queue_has_a_maximum(alpaca_file, tmp_path):
    import pytest

    from studio.engine.errors import JobError

    queue = DeviceQueue(max_waiting=1)
    long = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 500}))
    a = Job(long, tmp_path / "a", queue=queue, isolate=False).start()
    assert wait_for(lambda: a.snapshot().state == "running")
    b = Job(long, tmp_path / "b", queue=queue, isolate=False).start()
    with pytest.raises(JobError, match="queue is full"):
        Job(long, tmp_path / "c", queue=queue, isolate=False).start()
    b.stop()
    a.stop()
    assert a.wait(30) and b.wait(30)


@pytest.mark.slow
def test_the_worker_process_trains_and_a_kill_fails_the_run_which_resumes(alpaca_file, tmp_path):
    import json
    import os
    import signal

    from studio.engine import runs

    queue = DeviceQueue()
    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 5000, "save_steps": 2}))
    job = Job(cfg, tmp_path / "r", queue=queue).start()  # isolate=True: a child process trains
    assert wait_for(lambda: runs.last_complete_checkpoint(tmp_path / "r") is not None, timeout=120)
    assert job.worker.proc.pid != os.getpid() and job.snapshot().metrics  # events cross the pipe
    os.kill(job.worker.proc.pid, signal.SIGKILL)
    assert job.wait(60) and job.state == "failed" and "SIGKILL" in job.snapshot().error
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "failed" and "SIGKILL" in status["error"] and not queue.busy
    again = Job(cfg, tmp_path / "r", resume=True, queue=queue).start()
    assert wait_for(lambda: len(again.snapshot().metrics) > 0, timeout=120)
    again.stop()
    assert again.wait(120) and again.state == "stopped"
    first = again.snapshot().metrics[0]["step"]
    assert first == 1  # the chart kept the points before the kill (the run resumed from its checkpoint)


LOOPING_TEMPLATE = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x"


@pytest.mark.integration
def test_stop_while_preparing_ends_the_worker_at_once(alpaca_file, tmp_path):
    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, model={"chat_template": LOOPING_TEMPLATE}))
    job = Job(cfg, tmp_path / "r", queue=DeviceQueue()).start()
    assert wait_for(lambda: getattr(job, "worker", None) is not None and job.worker.proc.is_alive(), timeout=30)
    child = psutil.Process(job.worker.proc.pid)  # past its imports and into the template's loop: 5 s of its own CPU
    assert wait_for(lambda: sum(child.cpu_times()[:2]) > 5, timeout=120)
    asked = time.time()
    job.stop()
    assert job.wait(30) and job.state == "stopped" and "nothing was trained" in job.snapshot().error
    assert time.time() - asked < 10 and not job.worker.proc.is_alive()


@pytest.mark.integration
def test_preparing_a_visitors_data_has_the_checks_time_limit(alpaca_file, tmp_path, monkeypatch):
    from studio.engine import isolate

    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    monkeypatch.setattr(isolate, "CHECK_SECONDS", 6.0)
    mine = studio_home() / "uploads" / "user-prep" / alpaca_file.name  # a visitor trains on their own upload only
    mine.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(alpaca_file, mine)
    cfg = StudioConfig.from_dict(tiny_config(mine, model={"chat_template": LOOPING_TEMPLATE}))
    job = Job(cfg, tmp_path / "r", queue=DeviceQueue(), owner="user-prep").start()
    assert job.wait(60) and job.state == "failed"
    assert "longer than this deployment's 6 s" in job.snapshot().error


def test_one_visitors_queued_jobs_do_not_hold_up_anothers():
    """One visitor queued four comparisons and another's waited behind all of them; now each visitor's k-th waiting
    job goes after every other visitor's (k-1)-th, first come first served among equals."""
    from studio.engine.device import Ticket

    queue = DeviceQueue()
    holder = Ticket("someone")
    queue.enter(holder)
    assert queue.acquire(holder)
    alice = [Ticket("alice") for _ in range(4)]
    bob, nobody = Ticket("bob"), Ticket()
    for t in (*alice, bob, nobody):
        queue.enter(t)
    assert queue.order() == [alice[0], bob, nobody, *alice[1:]]
    assert [queue.position(t) for t in (bob, nobody, alice[3])] == [2, 3, 6]
    served = []

    def take(t):
        assert queue.acquire(t)
        served.append(t)
        queue.release(t)

    import threading

    threads = [threading.Thread(target=take, args=(t,)) for t in (*alice, bob, nobody)]
    for th in threads:
        th.start()
    queue.release(holder)
    for th in threads:
        th.join(10)
    assert served == [alice[0], bob, nobody, *alice[1:]]
