"""The one door: what a visitor may name and spend, decided in one place before any work starts.

Every visitor action passes ``admit(action, owner, key)`` first (the web app does it for every event in
``ui/door.py``; a training job, a sweep trial and a device job do it again in their own threads). It sets who
is acting for the rest of the action and, on a public deployment, appends one line to the audit log
(``STUDIO_HOME/audit/gate.jsonl``: time, action, owner). What a deployment allows is ``studio/policy.py``'s
answer; the checks below ask it and apply it (locally every check passes: you own everything), though
admissions are still counted.

- files: ``data_file(path)`` -> the real path of one of the visitor's own uploads or a bundled sample;
- configs: ``check_config(cfg)`` -> every file, model, run and reward model a config names, and the settings
  that run code (remote code, pickle, metric scripts), as the visitor may have them: Start, Resume, each sweep
  trial's final config, the LR finder and Compare all ask it;
- runs: ``own_run(name)`` -> a run folder of the visitor's, or None (someone else's and a missing one look
  alike);
- the hub: ``policy().hub_token()`` (which the model loader reads too) is False on a public deployment: the
  operator's token is never lent;
- device time: ``device_job(fn, *args)`` waits for the device, then, on a public deployment, runs ``fn`` in a
  child process with the deployment's time and memory limits, ended by the visitor's Stop and the operator's
  "stop all"; ``capped(settings)`` bounds examples and new tokens, ``capped_text`` a typed prompt; ``solo``
  lets a visitor run one of a kind at a time (one chat generation).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path

from studio.engine.errors import StudioError
from studio.policy import policy
from studio.settings import SAMPLES, owner_id, settings, studio_home  # noqa: F401

MAX_EXAMPLES = settings().max_examples  # per comparison / measurement, public mode
MAX_NEW_TOKENS = settings().max_new_tokens  # per answer, public mode
MAX_PROMPT_CHARS = settings().max_prompt_chars  # a typed message, public mode
MAX_FIELD_CHARS = settings().max_field_chars  # any one text input, public mode
JOB_SECONDS = settings().job_seconds  # one device job (Compare, merge, ...), public
JOB_MEMORY_MB = settings().job_memory_mb
AUDIT_MAX_BYTES = 8 * 2**20  # the audit log is rotated once past this size


@dataclass(frozen=True)
class Visitor:
    owner: str | None  # whose runs, uploads and jobs (the login's id on a public deployment; None: anonymous)
    key: str  # the session's key: what Stop and "stop all" find this visitor's device jobs by

    @property
    def uploads(self) -> Path:
        return studio_home() / "uploads" / self.key


LOCAL = Visitor(None, "local")
_visitor: ContextVar[Visitor | None] = ContextVar("studio_visitor", default=None)
ADMITTED: Counter = Counter()  # (action, owner) -> how often the door was passed, in this process
_lock = threading.Lock()
_stops: dict[str, set[threading.Event]] = {}  # a visitor's work in progress (device jobs, data checks)
_actions: dict[str, set[threading.Event]] = {}  # a visitor's actions in progress (the door's, one per request)
_halt: ContextVar[threading.Event | None] = ContextVar("studio_halt", default=None)  # this action's event
_solo: set[tuple[str, str]] = set()


def admit(action: str, owner: str | None, key: str | None = None) -> Visitor:
    """The door: who is acting from here on (this thread or context), recorded before any work."""
    from studio.engine import runs

    visitor = Visitor(owner, key or owner or "local")
    _visitor.set(visitor)
    runs.ACTING.set(owner)
    with _lock:
        ADMITTED[(action, owner)] += 1
    if policy().audits:
        _audit({"t": round(time.time(), 3), "action": action, "owner": owner,
                **({"key": visitor.key} if owner is None else {})})  # anonymous visitors told apart by page
    return visitor


def check_inputs(action: str, values) -> None:
    """On a public deployment no text input of any action is longer than ``MAX_FIELD_CHARS`` (a 16 MB setting
    would cost the web server its CPU before any check of its meaning); refused in one line, audited."""
    if not policy().caps:
        return
    longest = max((len(v) for v in values if isinstance(v, str)), default=0)
    if longest > MAX_FIELD_CHARS:
        _audit({"t": round(time.time(), 3), "action": f"{action}-refused", "owner": current().owner,
                "why": "field size", "chars": longest})
        raise StudioError(f"a field of {longest:,} characters: this deployment takes at most {MAX_FIELD_CHARS:,} "
                          f"in one field")


def enter(visitor: Visitor) -> None:
    """Go on acting for a visitor already admitted (a generator resumed in another thread)."""
    from studio.engine import runs

    _visitor.set(visitor)
    runs.ACTING.set(visitor.owner)


def current() -> Visitor:
    v = _visitor.get()
    if v is not None:
        return v
    from studio.engine import runs

    owner = runs.ACTING.get()
    return Visitor(owner, owner) if owner else LOCAL


def _audit(line: dict) -> None:
    log = studio_home() / "audit" / "gate.jsonl"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        if log.is_file() and log.stat().st_size > AUDIT_MAX_BYTES:
            os.replace(log, log.with_suffix(".jsonl.1"))
        with log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    except OSError:  # a full disk never stops a visitor's action; the counter above still has it
        pass


# -- files, runs, models ---------------------------------------------------------------------------------------
NOT_YOURS = "only your own uploads and the bundled samples can be used here"


def data_file(path: str, what: str = "data.path") -> str:
    """The real path of a data file the visitor names: on a public deployment one of their own uploads (by its
    name) or a bundled sample, else a ``StudioError`` that is the same whether the file exists or not."""
    if not path or policy().names_folders:
        return path
    v = current()
    name = Path(path).name
    candidates = [v.uploads / name, SAMPLES / name] if not Path(path).is_absolute() else [Path(path)]
    for p in candidates:
        real = p.resolve()
        if real.is_file() and (real.is_relative_to(v.uploads.resolve()) or real.is_relative_to(SAMPLES.resolve())):
            return str(real)
    raise StudioError(f"{what} {name!r}: {NOT_YOURS}")


def own_run(name: str | None) -> Path | None:
    """A run of the acting visitor's by its name, or None (another visitor's run and no run look alike)."""
    from studio.engine import runs

    return runs.find_run(name, current().owner)


def check_model_name(name: str, what: str = "model.name") -> None:
    """A model a visitor may name: a hub id, a starter, or run:<one of theirs> (never a folder)."""
    from studio.engine import hub, models

    name = (name or "").strip()
    if policy().names_folders or name in models.STARTERS or hub.hub_id(name):
        return
    if name.startswith(models.RUN_PREFIX) and own_run(name[len(models.RUN_PREFIX):]) is not None:
        return
    raise models.not_usable(name, what)


def _refuse_code(where: str, extra: str = "") -> StudioError:
    setting = where.split(".")[-1]
    return StudioError(f"{where} is switched off on this public deployment{extra} (the operator can allow it with "
                       f"STUDIO_ALLOW_{setting.upper()}=1)")


def check_references(section_name: str, section):
    """``section`` (one of the config's) with every file and model it names as the acting visitor may have them
    (the fields marked ``names=`` in ``studio/config.py``: a data file becomes its real path) and every setting
    marked ``runs_code`` refused unless the operator allows it."""
    from studio.config import marked

    changes = {}
    for sec, name, kind in marked("names"):
        value = getattr(section, name) if sec == section_name else None
        if value and kind == "data":
            changes[name] = data_file(value, f"{sec}.{name}")
        elif value and kind == "model":
            check_model_name(value, f"{sec}.{name}")
    for sec, name, _ in marked("runs_code"):
        if sec == section_name and getattr(section, name) and not policy().allows(name):
            raise _refuse_code(f"{sec}.{name}", ": it runs code that is not the studio's")
    return replace(section, **changes) if changes else section


def check_config(cfg):
    """Every file, model, run and setting that runs code in ``cfg``, as the acting visitor may have them. Returns
    the config with its data files made real paths (a public page shows only their names)."""
    from studio.config import SECTIONS

    checked = {name: check_references(name, getattr(cfg, name)) for name in SECTIONS}
    checked["eval"] = capped(checked["eval"])
    check_trackers(cfg.train.report_to)
    if all(checked[name] is getattr(cfg, name) for name in checked):
        return cfg
    return replace(cfg, **checked)


def check_serving() -> None:
    """A server for a run is the operator's to start (``studio serve`` from a shell), never a visitor's."""
    if not policy().serves:
        raise StudioError("serving a run is not offered on this public deployment (the operator can run "
                          "`studio serve` from a shell)")


LOCAL_TRACKERS = ("tensorboard", "trackio")


def check_trackers(chosen: list[str]) -> None:
    """A visitor's run is recorded on this machine only: a remote tracker (W&B, MLflow, a trackio Space) would
    log with the operator's credentials from the environment."""
    if policy().lends_operator_token:
        return
    remote = [t for t in chosen if t not in LOCAL_TRACKERS or (t == "trackio" and os.environ.get("TRACKIO_SPACE_ID"))]
    if remote:
        raise StudioError(f"train.report_to {remote[0]} is not offered on this public deployment: it would record "
                          f"with the operator's account (tensorboard and a local trackio are)")


def check_eval(settings):
    """Evaluation settings as the visitor may have them: their own reward model, no metric that runs code from
    the hub or a folder, and the deployment's caps on examples and new tokens."""
    return capped(check_references("eval", settings))



MAX_BENCHMARK_ITEMS = 200  # a public visitor's benchmark: at most this many items a task


def check_benchmark(tasks: list[str], limit: int | None) -> tuple[list[str], int | None]:
    """Benchmark tasks as the visitor may name them: on a public deployment the studio's own tasks only (a path
    reads the operator's disk; an lm-eval task downloads its dataset onto it, and some run their own code), and at
    most ``MAX_BENCHMARK_ITEMS`` items each."""
    from studio.engine.judge.benchmark import DEFAULT_TASKS

    tasks = [t.strip() for t in tasks if t.strip()]
    if policy().names_folders:
        return tasks, limit
    other = [t for t in tasks if t not in DEFAULT_TASKS]
    if other:
        raise StudioError(f"{other[0]!r}: this public deployment runs the studio's own benchmark "
                          f"({', '.join(DEFAULT_TASKS)}); run others on your own machine (studio benchmark)")
    return tasks, min(limit or MAX_BENCHMARK_ITEMS, MAX_BENCHMARK_ITEMS)

# -- device time -----------------------------------------------------------------------------------------------
def capped(settings):
    """Generation settings inside the deployment's caps (examples, new tokens); locally unchanged."""
    if not policy().caps:
        return settings
    return replace(settings, limit=min(settings.limit, MAX_EXAMPLES),
                   max_new_tokens=min(settings.max_new_tokens or MAX_NEW_TOKENS, MAX_NEW_TOKENS))


def capped_text(text: str, what: str = "the message") -> str:
    if policy().caps and len(text) > MAX_PROMPT_CHARS:
        raise StudioError(f"{what} is {len(text):,} characters; this deployment takes at most {MAX_PROMPT_CHARS:,}")
    return text


@contextlib.contextmanager
def solo(kind: str, what: str):
    """One ``kind`` of work a visitor at a time on a public deployment (a second one is refused in a line)."""
    key = (current().key, kind)
    with _lock:
        if policy().caps and key in _solo:
            raise StudioError(f"{what} is still going: wait for it to finish")
        _solo.add(key)
    try:
        yield
    finally:
        with _lock:
            _solo.discard(key)


@contextlib.contextmanager
def action():
    """The door's: one stop event for a visitor's action (a request), from its first line to its last, so a Stop
    pressed while the action still gets ready (reading its file, waiting behind training for the device) ends
    the work it then starts. Not work itself: Stop counts the work in progress, not the actions."""
    key, event = current().key, threading.Event()
    with _lock:
        _actions.setdefault(key, set()).add(event)
    token = _halt.set(event)
    try:
        yield event
    finally:
        _halt.reset(token)
        with _lock:
            _actions.get(key, set()).discard(event)


@contextlib.contextmanager
def stoppable():
    """A stop event for the acting visitor's work in progress (a device job, a data check): their Stop and the
    operator's "stop all" set it. Inside an action it is the action's own event (set already if Stop came early)."""
    key, event = current().key, _halt.get() or threading.Event()
    with _lock:
        _stops.setdefault(key, set()).add(event)
    try:
        yield event
    finally:
        with _lock:
            _stops.get(key, set()).discard(event)


def going(key: str) -> int:
    """How many of a visitor's device jobs and data checks are in progress (what their Stop would end)."""
    with _lock:
        return sum(not e.is_set() for e in _stops.get(key, ()))


def stop(key: str) -> int:
    """Stop a visitor's device jobs and data checks, and whatever their actions in progress start next; how many
    jobs and checks were going."""
    with _lock:
        going = [e for e in _stops.get(key, ()) if not e.is_set()]
        actions = list(_actions.get(key, ()))
    for e in (*going, *actions):
        e.set()
    return len(going)


def stop_all() -> int:
    with _lock:
        keys = set(_stops) | set(_actions)
    return sum(stop(k) for k in keys)


def device_job(fn, *args, what: str = "the job", seconds: float | None = None, memory_mb: float | None = None,
               device: bool = True, started=None):
    """``fn(*args)`` as a job: behind training on the device queue (``device``), and on a public deployment in a
    child process with time and memory limits that Stop and "stop all" end (``fn`` and its arguments must then
    be picklable). Locally it runs here. ``started()`` is called once the job holds the device (its own clock
    starts there, not in the queue)."""
    from studio.engine.device import exclusive
    from studio.engine.isolate import isolated

    with stoppable() as halt, exclusive(visitor=current().key) if device else contextlib.nullcontext():
        if halt.is_set():  # stopped while it waited for the device or got ready
            raise StudioError(f"{what} was stopped")
        if started is not None:
            started()
        if not policy().isolates_jobs:
            return fn(*args)
        return isolated(fn, *args, owner=current().owner, seconds=seconds or JOB_SECONDS,
                        memory_mb=memory_mb or JOB_MEMORY_MB, should_stop=halt.is_set, what=what)
