"""The one door (studio/engine/gate.py, studio/ui/door.py) on its own: what a public deployment lets a visitor
name and spend, decided in one place. Fast: no app, no training."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest
from conftest import SAMPLES, eventually, tiny_config

from studio.config import StudioConfig
from studio.engine import gate
from studio.engine.device import DEVICE
from studio.engine.errors import StudioError
from studio.settings import studio_home


@pytest.fixture
def public(monkeypatch):
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    alice = gate.admit("test", "user-alice", "user-alice")
    upload = alice.uploads / "mine.csv"
    upload.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / "qa.csv", upload)
    bob = studio_home() / "uploads" / "user-bob" / "theirs.csv"
    bob.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SAMPLES / "qa.csv", bob)
    yield upload, bob
    gate.admit("test", None, "local")


def test_a_visitor_names_their_own_uploads_and_the_samples_only(public):
    mine, theirs = public
    assert gate.data_file("mine.csv") == str(mine.resolve())
    assert gate.data_file("qa.csv") == str((SAMPLES / "qa.csv").resolve())
    answers = set()
    for name in (str(theirs), "../user-bob/theirs.csv", "/etc/passwd", str(theirs.with_name("missing.csv"))):
        with pytest.raises(StudioError) as err:
            gate.data_file(name)
        answers.add(str(err.value).replace(repr(name.rsplit("/", 1)[-1]), "<file>"))
    assert len(answers) == 1 and "only your own uploads" in answers.pop()  # there or not: one answer


def test_every_file_and_model_a_config_names_passes_the_gate(public):
    mine, theirs = public
    ok = gate.check_config(StudioConfig.from_dict(tiny_config(mine)))
    assert ok.data.path == str(mine.resolve())
    base = StudioConfig.from_dict(tiny_config(mine))
    for bad in (f"data.path={theirs}", f"data.val_path={theirs}", "model.name=/etc", f"model.name={studio_home()}",
                "model.name=run:someone-elses", "method.reward_model=run:nope", "eval.reward_model=run:nope",
                "model.trust_remote_code=true", 'eval.extra_metrics=["./my_metric"]'):
        with pytest.raises((StudioError, ValueError)):
            gate.check_config(base.with_overrides([bad]))


def test_a_sweep_checks_every_trials_final_config_before_anything_trains(public):
    from studio.engine.train.jobs import SweepJob
    from studio.engine.train.sweep import parse_grid

    mine, theirs = public
    cfg = StudioConfig.from_dict(tiny_config(mine))
    with pytest.raises(StudioError, match="only your own uploads"):
        SweepJob(cfg, parse_grid([f"data.path={mine},{theirs}"]), owner="user-alice")
    with pytest.raises(ValueError, match=r"27,000 runs; a sweep runs at most 16 "):  # counted, not enumerated
        SweepJob(cfg, parse_grid([f"train.{k}=" + ",".join(map(str, range(30)))
                                  for k in ("seed", "logging_steps", "threads")]), owner="user-alice")


def test_a_visitor_may_neither_serve_a_run_nor_record_it_remotely(public, monkeypatch):
    with pytest.raises(StudioError, match="serving a run is not offered"):
        gate.check_serving()
    with pytest.raises(StudioError, match="report_to wandb is not offered"):
        gate.check_config(StudioConfig.from_dict(tiny_config(public[0], train={"report_to": ["wandb"]})))
    monkeypatch.delenv("STUDIO_PUBLIC")
    gate.check_serving()  # locally the Export tab serves


def test_device_work_is_capped_and_one_chat_at_a_time(public):
    from studio.config import EvalConfig

    s = gate.capped(EvalConfig(limit=10**6, max_new_tokens=2500))
    assert s.limit == gate.MAX_EXAMPLES and s.max_new_tokens == gate.MAX_NEW_TOKENS
    with pytest.raises(StudioError, match="at most"):
        gate.capped_text("word " * 12_000)
    with gate.solo("chat", "Your previous message"):
        with pytest.raises(StudioError, match="still going"):
            with gate.solo("chat", "Your previous message"):
                pass
    with gate.solo("chat", "again"):  # released after the first
        pass


@pytest.mark.integration
def test_stop_ends_a_visitors_device_job_and_stop_all_everyones(public):
    outcome = {}

    def job():
        gate.enter(gate.Visitor("user-alice", "user-alice"))
        try:
            gate.device_job(time.sleep, 60, device=False, what="the test job")
        except StudioError as e:
            outcome["error"] = str(e)

    for stop in (lambda: gate.stop("user-alice"), gate.stop_all):
        outcome.clear()
        worker = threading.Thread(target=job)
        worker.start()
        eventually(lambda: gate.going("user-alice") == 1, 30, what="alice's job to start")
        asked = time.time()
        assert stop() == 1
        worker.join(50)
        # stopped, not run out: the job would sleep 60 s (the margin is for a busy machine, not a timing goal)
        assert "the test job was stopped" in outcome.get("error", "") and time.time() - asked < 50


def test_a_stop_before_the_job_starts_ends_the_action_at_any_stage(public, monkeypatch):
    """Stop pressed while an action still gets ready (reading its file) or waits behind training for the device:
    the job never starts, and says it was stopped."""
    from studio.engine.device import exclusive
    from studio.ui import door

    ran, outcome, ready, prepared, held, free = [], {}, *(threading.Event() for _ in range(4))
    monkeypatch.setattr(door, "_admit",
                        lambda action, *inputs: gate.admit(action, "user-alice", "user-alice"))  # her login

    def compare_like():  # an app handler: some preparing, then the device job
        ready.set()
        prepared.wait(10)
        return gate.device_job(ran.append, "ran", what="the comparison")

    def visit():
        try:
            outcome["value"] = door.through(compare_like, "compare")()
        except StudioError as e:
            outcome["error"] = str(e)

    worker = threading.Thread(target=visit)
    worker.start()
    ready.wait(10)
    assert gate.stop("user-alice") == 0  # pressed while the handler is still preparing: no job is going yet
    prepared.set()
    worker.join(20)
    assert outcome == {"error": "the comparison was stopped"} and ran == []

    def training():  # the device is busy: the next job waits in the queue
        with exclusive():
            held.set()
            free.wait(10)

    busy = threading.Thread(target=training)
    busy.start()
    held.wait(10)
    outcome.clear()
    worker = threading.Thread(target=visit)
    worker.start()
    eventually(lambda: len(DEVICE.order()) == 1, 10, what="the comparison to wait for the device")
    gate.stop("user-alice")
    free.set()
    worker.join(20)
    busy.join(20)
    assert outcome == {"error": "the comparison was stopped"} and ran == []


def test_every_handler_of_the_app_is_behind_the_door():
    from studio.ui import door
    from studio.ui.app import build_app

    demo = build_app()
    handlers = [f for f in demo.fns.values() if f.fn is not None]
    assert len(handlers) > 50 and all(getattr(f.fn, "__studio_door__", False) for f in handlers)

    async def sneaky():
        return None

    with pytest.raises(TypeError, match="pass the door unchecked"):
        door.through(sneaky, "sneaky")


def test_a_parquet_bomb_is_measured_on_its_values_not_its_metadata(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from studio.engine.data import readers
    from studio.engine.errors import DataError

    column = pa.DictionaryArray.from_arrays(pa.array([0] * 20_000, pa.int32()), pa.array(["x" * 100_000]))
    bomb = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"text": column}), bomb, compression="zstd")
    assert bomb.stat().st_size < 2048 and pq.ParquetFile(bomb).metadata.row_group(0).total_byte_size < 2**20
    monkeypatch.setattr(readers, "MAX_BYTES", 50 * 2**20)
    started = time.time()
    with pytest.raises(DataError, match="once decoded"):
        readers.read_records(bomb)
    assert time.time() - started < 10
    small = tmp_path / "ok.parquet"
    pq.write_table(pa.table({"instruction": ["a", "b"], "output": ["c", "d"]}), small)
    rows = readers.read_records(small).rows
    assert rows == [{"instruction": "a", "output": "c"}, {"instruction": "b", "output": "d"}]


def test_no_text_input_of_any_action_is_larger_than_the_deployments_cap(public, monkeypatch):
    """A 16 MB setting (a config estimate, a column map) cost the web server its CPU before any check of its
    meaning: on a public deployment the door refuses it, for every handler, in one line that is audited."""
    import gradio as gr

    from studio.ui import door

    monkeypatch.setattr(gate, "MAX_FIELD_CHARS", 1000)
    handler = door.through(lambda text, n: f"{len(text)} {n}", "estimate")
    assert handler("x" * 1000, 3) == "1000 3"
    with pytest.raises(gr.Error, match="1,001 characters.*at most 1,000"):
        handler("x" * 1001, 3)
    with pytest.raises(gr.Error, match="at most 1,000"):
        handler("x", n="y" * 5000)
    log = (studio_home() / "audit" / "gate.jsonl").read_text().splitlines()
    assert '"estimate-refused"' in log[-1] and '"chars": 5000' in log[-1]
    monkeypatch.delenv("STUDIO_PUBLIC")
    assert door.through(lambda text: len(text), "estimate")("x" * 5000) == 5000  # locally: no cap


def test_config_files_for_download_live_in_gradios_cache_and_do_not_pile_up(monkeypatch, tmp_path):
    from studio.ui.tabs import model

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setattr(model, "KEEP_CONFIGS", 3)
    made = []
    for steps in range(1, 6):
        cfg = tiny_config(SAMPLES / "qa.csv")
        cfg["train"]["max_steps"] = steps
        made.append(model.yaml_file(StudioConfig.from_dict(cfg)))
        os.utime(made[-1].parent, (1e9 + steps,) * 2)  # made one after another, as the pruning reads them
    assert all(p.is_relative_to(tmp_path / "studio-configs") for p in made)
    kept = sorted((tmp_path / "studio-configs").iterdir())
    assert len(kept) == 3 and all(p.exists() for p in made[-3:]) and not made[0].exists()
    assert "max_steps: 5" in made[-1].read_text()


def test_one_ledger_counts_uploads_runs_exports_and_campaigns_and_a_deleted_run_takes_its_exports(public):
    """Exports were outside the quota (51 MB of exports from a 3 MB run) and outlived the run."""
    from studio.engine import budget, runs
    from studio.engine.judge import campaign
    from studio.engine.judge.ratings import default_db

    home = studio_home()
    for name in ("r1", "r1-long"):
        run = home / "runs" / name
        run.mkdir(parents=True)
        (run / "status.json").write_text('{"owner": "user-alice", "state": "completed"}')
        shutil.copy(SAMPLES.parent / "configs" / "quickstart.yaml", run / "config.yaml")
    mine = home / "exports" / "user-alice"
    mine.mkdir(parents=True)
    (mine / "r1-adapter.zip").write_bytes(b"z" * 2**20)
    (mine / "r1-merged").mkdir()
    (mine / "r1-merged" / "model.safetensors").write_bytes(b"m" * 3 * 2**20)
    (mine / "r1-long-adapter.zip").write_bytes(b"z" * 2**20)  # another run's, whose name starts with r1's
    held = budget.holdings("user-alice")
    assert round(held["exports_mb"]) == 5 and held["campaigns"] == 0 and held["uploads_mb"] > 0
    assert budget.usage_mb("user-alice") == pytest.approx(held["uploads_mb"] + held["runs_mb"] + 5, abs=0.01)
    assert "user-alice" in budget.owners() and "user-bob" in budget.owners()
    with pytest.MonkeyPatch.context() as m:
        m.setattr(budget, "USER_QUOTA_MB", 5.5)
        with pytest.raises(StudioError, match="uploads, runs and exports"):
            budget.check_disk("user-alice", 2**20)
    assert runs.delete_run("r1")
    assert sorted(p.name for p in mine.iterdir()) == ["r1-long-adapter.zip"]
    items = [{"question_id": "q", "prompt": "p", "model": m, "output": m} for m in ("a", "b")]
    campaign.create(default_db(), items, campaign.Spec(name="mine"), owner="alice")
    assert budget.holdings("user-alice")["campaigns"] == 1 and budget.holdings("user-bob")["campaigns"] == 0


def test_a_visitor_makes_a_bounded_number_of_campaigns_of_a_bounded_size(public, monkeypatch):
    from studio.engine import budget

    monkeypatch.setattr(budget, "MAX_CAMPAIGNS", 0)
    with pytest.raises(StudioError, match="0 campaigns"):
        budget.check_campaign("user-alice", 10)
    monkeypatch.setattr(budget, "MAX_CAMPAIGNS", 5)
    budget.check_campaign("user-alice", 10)
    with pytest.raises(StudioError, match="at most 2,000"):
        budget.check_campaign("user-alice", 2001)
    monkeypatch.delenv("STUDIO_PUBLIC")
    budget.check_campaign("user-alice", 10**6)  # locally: no limit


def test_a_logged_in_rater_rates_under_their_login_whatever_name_is_typed(monkeypatch):
    """With STUDIO_AUTH on one's own machine, a logged-in rater could rate under another's typed name."""
    from types import SimpleNamespace

    from studio.ui.identity import rater

    monkeypatch.delenv("STUDIO_PUBLIC", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    alice = SimpleNamespace(username="alice", headers={})
    nobody = SimpleNamespace(username=None, headers={})
    assert rater("bob", alice) == "alice" and rater("", alice) == "alice"
    assert rater(" bob ", nobody) == "bob"
    with pytest.raises(StudioError, match="Type your name"):
        rater("  ", nobody)
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    assert rater("bob", alice) == "alice"
    with pytest.raises(StudioError, match="Log in to rate"):
        rater("bob", nobody)
