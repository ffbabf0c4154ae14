"""Shared fixtures: an isolated studio home with studio-tiny built once, and small dataset files."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHAPES = ROOT / "tests" / "data" / "shapes"  # our own file of each shape users bring (tests/data/make_shapes.py)
PEER = ROOT.parent / "shared" / "data" / "peer"  # LLaMA-Factory's demo files, on our own machines only


def peer(name: str) -> Path | None:
    """A peer tool's demo file, when a folder of them lies beside the clone: an extra check inside a test that
    already passes on our own files, never a test of its own (a fresh clone runs the same tests)."""
    path = PEER / name
    return path if path.is_file() else None
SAMPLES = ROOT / "assets" / "samples"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _own_core() -> None:
    """Under pytest-xdist (``-n 2``) each worker, and every process it starts, keeps to a core of its own: the
    tests' short studio-tiny runs gain little from a second thread (tests/test_methods.py: 46.5 s pinned to one
    core, 45.3 s on two), while two workers each spreading over both cores slowed every test about twofold."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) >= int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")):
            os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})


_own_core()


TEST_SEED = os.environ.get("STUDIO_TEST_SEED")  # e.g. 1: every config a test makes trains with train.seed 1


@pytest.fixture(scope="session", autouse=True)
def reseeded():
    """With STUDIO_TEST_SEED set, every config made from a dict that names no train.seed gets that seed: how a
    test of learning is checked to hold across seeds (``STUDIO_TEST_SEED=1 pytest tests/test_evaluate.py``)."""
    if not TEST_SEED:
        yield
        return
    from studio.config import StudioConfig

    made = StudioConfig.from_dict.__func__

    def from_dict(cls, raw):
        raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (raw or {}).items()}
        if isinstance(raw.setdefault("train", {}), dict):
            raw["train"].setdefault("seed", int(TEST_SEED))
        return made(cls, raw)

    StudioConfig.from_dict = classmethod(from_dict)
    yield
    StudioConfig.from_dict = classmethod(made)


@pytest.fixture(scope="session", autouse=True)
def studio_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("studio-home")
    os.environ["STUDIO_HOME"] = str(home)
    from studio.settings import quiet_libraries

    quiet_libraries()
    return home


@pytest.fixture(scope="session")
def tiny_path(studio_home) -> Path:
    from studio.engine.tiny import ensure_studio_tiny

    return ensure_studio_tiny(studio_home)


@pytest.fixture(scope="session")
def url(studio_home):
    """The real app (app.py's launch settings) serving on a free loopback port."""
    import socket

    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.launch(host="127.0.0.1", port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def alpaca_file(tmp_path) -> Path:
    rows = [{"instruction": f"Add {a} and {a + 1}.", "input": "", "output": f"{a} + {a + 1} = {2 * a + 1}."}
            for a in range(2, 26)]
    return write_jsonl(tmp_path / "alpaca.jsonl", rows)


def tiny_config(data_path: Path, **sections) -> dict:
    """A config dict for a few CPU steps on studio-tiny; ``sections`` update it per section."""
    cfg = {"data": {"path": str(data_path), "max_length": 64, "val_size": 0.1},
           "model": {"name": "studio-tiny"},
           "method": {"kind": "lora", "target_modules": "all-linear"},
           "train": {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1}}
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


def eventually(predicate, timeout: float = 60.0, every: float = 0.2, what: str = "the condition"):
    """Poll until ``predicate()`` is truthy and return its value; fail the test on timeout."""
    import time

    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


SERIAL_FILES = {"test_ui_browser.py"}  # chromium, the app and a training job at once: they need the whole machine
E2E_FILES = {"test_ui_browser.py", "test_ui_api.py", "test_public_security.py", "test_serve.py", "test_package.py",
             "test_safety.py"}  # browser, the app's HTTP API, a server, a pip install


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Every test is of one kind, so that `pytest -m unit` is the quick loop and .ci/run runs it first: e2e
    (its file, or the live app's `url` fixture), integration (marked so, or slow), unit (the rest)."""
    for item in items:
        if item.path.name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
        if item.path.name in E2E_FILES or "url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
        elif item.get_closest_marker("integration") or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fixtures can see whether their test failed (the browser test screenshots the page then)."""
    outcome = yield
    if call.when == "call" and outcome.get_result().failed:
        item.failed = True
