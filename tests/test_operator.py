"""The operator's "stop every job" and "delete runs" reach sweep trials too: a trial being written is never
deleted, and a running sweep is asked to stop (fake sessions: no training needed)."""

from types import SimpleNamespace as NS

import pytest

from studio.engine import runs
from studio.ui import operator


class Stoppable(NS):
    def stop(self):
        self.stopped = True


@pytest.fixture
def handlers(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_OPERATOR_TOKEN", "tok")
    trial = runs.runs_root() / "sweep-trial-run"
    trial.mkdir(parents=True, exist_ok=True)
    (trial / "config.yaml").write_text("{}\n")
    sweep = Stoppable(done=False, jobs=[NS(run_dir=trial, done=False)], stopped=False)
    solo = Stoppable(done=False, run_dir=None, stopped=False)
    sessions = NS(all=lambda: [NS(job=None, sweep=sweep), NS(job=solo, sweep=None)])
    yield operator.Handlers(NS(sessions=sessions)), trial, sweep, solo
    import shutil

    shutil.rmtree(trial, ignore_errors=True)


def test_a_sweep_trial_being_written_is_never_deleted(handlers):
    h, trial, _, _ = handlers
    assert str(trial) in h.busy()
    said = h.delete("tok", [trial.name], None)
    assert trial.is_dir() and "Deleted 0 run(s). Running runs are kept." == said


def test_stop_every_job_stops_the_sweeps_too(handlers):
    h, _, sweep, solo = handlers
    said = h.stop_all("tok", None)
    assert sweep.stopped and solo.stopped and "1 job(s) and 1 sweep(s)" in said
