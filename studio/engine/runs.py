"""The run directory (docs/architecture.md): config, status, metrics, checkpoints, artifacts.

Contract: every file is written atomically (``storage.write_atomic``: a temporary file, then ``os.replace``), so
a reader or a killed process never sees half a status, and ``status.json`` is updated under a lock (the training
process and the app both write it); ``metrics.jsonl`` is appended a line at a time (a reader skips a line a kill
cut short). The names of a run folder's files are this module's (``CONFIG``, ``STATUS``...): no other module
writes one as a literal. A checkpoint counts as complete only once the
trainer has finished writing it and ``COMPLETE`` is inside; resume never picks another.
``Run(path)`` is the typed view of one run: its files, its config (read once), its ``Status``,
metrics, evaluations and checkpoints. ``status.json`` holds only ``Status``'s fields.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path

from studio.config import StudioConfig
from studio.engine import registry
from studio.engine.errors import StudioError
from studio.engine.events import Record
from studio.engine.storage import as_user_made, locked, write_atomic, write_jsonl  # noqa: F401  (the run store's)
from studio.policy import policy
from studio.settings import studio_home

STATES = ("queued", "running", "completed", "stopped", "failed", "diverged", "interrupted")
COMPLETE = "COMPLETE"
REGISTRY = "registry.txt"  # runs made outside STUDIO_HOME/runs, one path a line
# A run folder's files: nothing outside this module names one (tests/test_layers.py); ``Run`` hands out paths.
CONFIG, STATUS, METRICS, CHECKPOINTS = "config.yaml", "status.json", "metrics.jsonl", "checkpoints"
ADAPTER, MODEL, AS_BASE, SPLIT = "adapter", "model", "as-base", "split.json"
EVAL, SUMMARY, PREDICTIONS, BENCHMARKS = "eval", "summary.json", "predictions.jsonl", "benchmarks"
_CKPT = re.compile(r"^checkpoint-(\d+)$")
SAFE_RESULT = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # a saved result's name: a file name, never a path
# Who is acting: set where a request's visitor is known (the page's session, the training worker), read where a
# model name may name one of their runs (``run:NAME``). Unset, a public deployment lends no run to anyone.
ACTING: ContextVar[str | None] = ContextVar("studio_acting_owner", default=None)


def runs_root() -> Path:
    root = studio_home() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def new_run_dir(config: StudioConfig, output_dir: str | Path | None = None) -> Path:
    if output_dir:
        run = Path(output_dir)
        if (run / STATUS).exists():
            raise FileExistsError(f"{run} already holds a run; use `studio resume {run}` or another folder")
    else:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.run_name or f"{config.method.kind}").strip("-") or "run"
        run = runs_root() / f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
        n = 1
        while run.exists():
            n += 1
            run = run.with_name(f"{run.name.rsplit('~', 1)[0]}~{n}")
    run.mkdir(parents=True, exist_ok=True)
    write_atomic(run / CONFIG, config.to_yaml())
    if run.resolve().parent != runs_root().resolve():
        register(run)
    return run


def register(run: Path) -> None:
    """A run made outside the runs folder (``--output-dir``) is listed too: its path goes in the registry."""
    with (studio_home() / REGISTRY).open("a", encoding="utf-8") as f:
        f.write(str(Path(run).resolve()) + "\n")


def all_run_dirs() -> list[Path]:
    """The runs folder's runs and the registered ones that still exist, newest first."""
    found = {p.resolve() for p in runs_root().iterdir() if (p / CONFIG).is_file()}
    listed = studio_home() / REGISTRY
    if listed.is_file():
        found |= {Path(line) for line in listed.read_text().splitlines()
                  if line.strip() and (Path(line) / CONFIG).is_file()}
    return sorted(found, key=lambda p: (p / CONFIG).stat().st_mtime, reverse=True)


@dataclass
class Status:
    """``status.json``: where the run is and what it recorded along the way."""

    state: str = "unknown"  # one of STATES
    updated: float | None = None
    step: int = 0
    error: str | None = None  # one line, for a failed, diverged, interrupted or pruned run
    owner: str | None = None  # the visitor who made it (a public deployment)
    started: float | None = None
    pid: int | None = None  # the training process, and when it started (a pid is reused)
    pid_started: float | None = None
    model_source: str | None = None  # studio-tiny | local | hub | run
    model_revision: str | None = None
    objective: str | None = None  # the objective it trained (auto made definite)
    precision: str | None = None  # the precision it trained in (auto made definite: engine/precision.py)
    precision_why: str | None = None
    compiled: str | None = None  # why its layers were (or were not) compiled (train/compiled.py)
    checkpoint: str | None = None  # the last complete checkpoint saved
    resumable: str | None = None  # an interrupted run's checkpoint to resume from
    final_loss: float | None = None
    duration_s: float | None = None
    train_runtime: float | None = None
    findings: list = field(default_factory=list)  # the training doctor's, as dicts
    best_step: int | None = None  # early stopping: the step whose weights were kept
    best_eval_loss: float | None = None
    stopped_early: bool | None = None
    reward_accuracy: dict | None = None  # a reward run's held-out pair accuracy
    rl_reward: dict | None = None  # an RL run's reward of base and tuned answers
    pruned: bool | None = None  # a sweep trial stopped by the pruner

    @classmethod
    def from_dict(cls, raw: dict) -> Status:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


STATUS_FIELDS = frozenset(f.name for f in fields(Status))


def write_status(run: Path, state: str, **values) -> dict:
    """Update ``status.json``: ``state`` and any of ``Status``'s fields (another name is a bug, caught here)."""
    assert state in STATES, state
    unknown = set(values) - STATUS_FIELDS
    if unknown:
        raise TypeError(f"status.json has no field {', '.join(sorted(unknown))}")
    with locked(run / STATUS):  # the training process and the app both update it: no update lost between them
        old = read_status(run)
        status = {**old, "state": state, "updated": time.time(), **values}
        status.setdefault("error", None)
        write_atomic(run / STATUS, json.dumps(status, indent=1))
    return status


def read_status(run: Path) -> dict:
    """The run's status; a run still marked running whose process is gone is corrected to ``interrupted``."""
    try:
        status = json.loads((Path(run) / STATUS).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if status.get("state") == "running" and not process_alive(status.get("pid"), status.get("pid_started")):
        status = _interrupted(Path(run), status)
    return status


def process_started(pid: int) -> float | None:
    """When a process started (with the pid, it names the process even after the pid is reused)."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - no such process, or none we may look at
        return None


def process_alive(pid, started) -> bool:
    if not isinstance(pid, int):
        return True  # nothing to check against: trust the file
    now = process_started(pid)
    return now is not None and (started is None or abs(now - started) < 1.0)


def _interrupted(run: Path, status: dict) -> dict:
    last = last_complete_checkpoint(run)
    note = f"resumable from {last.name}" if last else "no complete checkpoint: start it again"
    status = {**status, "state": "interrupted", "error": f"the training process ended without a word ({note})",
              "resumable": last.name if last else None, "updated": time.time()}
    try:
        write_atomic(run / STATUS, json.dumps(status, indent=1))
    except OSError:
        pass  # a read-only run folder: the reader still gets the truth
    return status


def append_metrics(run: Path, record: dict) -> None:
    with (run / METRICS).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run: Path) -> list[Record]:
    path = Path(run) / METRICS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: skip it, keep the rest
            continue
    return out


def checkpoints(run: Path) -> list[tuple[int, Path, bool]]:
    """(step, path, complete) for each checkpoint folder, oldest first."""
    root = Path(run) / CHECKPOINTS
    found = []
    for p in root.iterdir() if root.is_dir() else []:
        m = _CKPT.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p, (p / COMPLETE).is_file()))
    return sorted(found)


def last_complete_checkpoint(run: Path) -> Path | None:
    done = [p for _, p, complete in checkpoints(run) if complete]
    return done[-1] if done else None


def flat_config(run: Path) -> dict:
    """``section.key -> value`` of a run's config, for diffs."""
    try:
        raw = Run(run).config.to_dict()
    except (ValueError, OSError):
        return {}
    out = {}
    for section, values in raw.items():
        if isinstance(values, dict):
            out.update({f"{section}.{k}": v for k, v in values.items()})
        else:
            out[section] = values
    return out


def config_diff(run_dirs: list[Path]) -> list[tuple[str, list]]:
    """The keys whose values differ between runs, with each run's value."""
    flats = [flat_config(r) for r in run_dirs]
    keys = sorted(set().union(*flats)) if flats else []
    return [(k, [f.get(k) for f in flats]) for k in keys if len({repr(f.get(k)) for f in flats}) > 1]


@dataclass
class RunInfo:
    path: Path
    name: str
    state: str
    method: str
    model: str
    step: int
    final_loss: float | None
    duration_s: float | None
    owner: str | None = None
    error: str | None = None
    findings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}

    def notes(self) -> list[str]:
        """Lines worth showing under the run in a listing: its error and the doctor's findings."""
        out = [f"error: {self.error}"] if self.error else []
        return out + [f"{f['severity']}: {f['evidence']}" for f in self.findings]


class Run:
    """One run directory, typed: its files, its config (read once), status, metrics, evaluations, checkpoints
    and what its training left (an adapter or a whole model)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = self.path.name

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    config_file = property(lambda self: self.path / CONFIG)
    status_file = property(lambda self: self.path / STATUS)
    metrics_file = property(lambda self: self.path / METRICS)
    checkpoint_dir = property(lambda self: self.path / CHECKPOINTS)  # the trainer's output_dir
    adapter = property(lambda self: self.path / ADAPTER)  # a PEFT adapter with its tokenizer
    model = property(lambda self: self.path / MODEL)  # a full fine-tune with its tokenizer
    as_base = property(lambda self: self.path / AS_BASE)  # an adapter merged into its base (run:NAME as a base)

    @cached_property
    def config(self) -> StudioConfig:
        return StudioConfig.load(self.config_file)

    @property
    def method(self):
        return registry.of(self.config)

    @property
    def status(self) -> Status:
        return Status.from_dict(read_status(self.path))

    @property
    def full(self) -> bool:
        """It saved a whole model (model/) rather than an adapter."""
        return (self.model / "config.json").is_file()

    @property
    def weights(self) -> Path | None:
        """The folder of what it trained: model/ or adapter/, or None before it has one."""
        if self.full:
            return self.model
        return self.adapter if (self.adapter / "adapter_config.json").is_file() else None

    def metrics(self) -> list[Record]:
        return read_metrics(self.path)

    def evals(self) -> list[str]:
        return evals(self.path)

    def checkpoints(self) -> list[tuple[int, Path, bool]]:
        return checkpoints(self.path)

    @property
    def resumable(self) -> Path | None:
        """The checkpoint a resume continues from (the last complete one), or None."""
        return last_complete_checkpoint(self.path)


def is_run(path: str | Path | None) -> bool:
    """Whether ``path`` is a run folder (it has its config)."""
    return bool(path) and (Path(path) / CONFIG).is_file()


def write_eval(run: Path, name: str | None, summary, rows: list[dict]) -> Path:
    """Save a comparison in the run (``name``: now's time if None): its per-example rows, then its summary (a
    comparison is listed once its summary is there); ``summary.dir`` is set to its folder."""
    out = Path(run) / EVAL / (name or time.strftime("%Y%m%d-%H%M%S"))
    write_jsonl(out / PREDICTIONS, rows)
    write_atomic(out / SUMMARY, json.dumps(summary.to_dict(), indent=1))
    summary.dir = str(out)
    return out


def run_info(run: Path) -> RunInfo:
    status = read_status(run)
    try:
        cfg = Run(run).config
        method, model = cfg.method.kind, cfg.model.name
    except ValueError:
        method, model = "?", "?"
    return RunInfo(run, run.name, status.get("state", "unknown"), method, model, status.get("step", 0),
                   status.get("final_loss"), status.get("duration_s"), status.get("owner"), status.get("error"),
                   status.get("findings", []))


def list_runs(owner: str | None = None, everyone: bool = False) -> list[RunInfo]:
    """Every run, newest first; on a public deployment only ``owner``'s (``everyone``: the operator's view)."""
    return [run_info(run) for run in all_run_dirs() if everyone or owns(run, owner)]


@contextlib.contextmanager
def acting_for(run: Path):
    """Load what a run was made from as the visitor who made it: its base may be another of their runs (the
    caller has already found ``run`` as theirs)."""
    token = ACTING.set(read_status(run).get("owner") or ACTING.get())
    try:
        yield
    finally:
        ACTING.reset(token)


def owns(run: Path, owner: str | None) -> bool:
    """On a public deployment a visitor reaches only their own runs; locally, every run is yours."""
    return not policy().scoped or (owner is not None and read_status(run).get("owner") == owner)


def find_run(name: str | None, owner: str | None = None) -> Path | None:
    """The run folder for a name from a page or a client, or None: never a path outside the runs folder,
    and on a public deployment never another visitor's run."""
    path = _confined(name)
    return path if path is not None and owns(path, owner) else None


def _confined(name: str | None) -> Path | None:
    """A run by its folder name: in the runs folder, or a registered one; never a path a client made up."""
    if not name:
        return None
    root = runs_root().resolve()
    path = (root / name).resolve()
    if path.parent == root and (path / CONFIG).is_file():
        return path
    return next((p for p in all_run_dirs() if p.name == name and p.parent != root), None)


def has_weights(run: Path) -> bool:
    return Run(run).weights is not None


def trained_runs(owner: str | None = None) -> list[str]:
    """Runs with an adapter or a model to compare, chat with or export, newest first."""
    return [run.name for run in all_run_dirs() if has_weights(run) and owns(run, owner)]  # no config parsed


def chat_runs(owner: str | None = None) -> list[str]:
    """Trained runs that write answers (Chat's list): not reward models, which score answers, nor a sweep's
    short trials."""
    out = []
    for name in trained_runs(owner):
        run = Run(_confined(name))
        try:
            method, sweep_trial = run.method, run.config.run_name.startswith("sweep-")
        except (OSError, ValueError):
            continue
        if not method.score_head and not sweep_trial:
            out.append(name)
    return out


def delete_run(name: str, busy: set[str] = frozenset()) -> bool:
    """Remove a run that no job is using (the operator's action, whoever owns it)."""
    path = _confined(name)
    if path is None or str(path) in {str(Path(b).resolve()) for b in busy}:
        return False
    owner = read_status(path).get("owner")
    shutil.rmtree(path)
    if policy().scoped and owner:  # what was exported from it goes too (on a public deployment, the owner's folder)
        for made in exports_of(path.name, studio_home() / "exports" / owner):
            shutil.rmtree(made) if made.is_dir() else made.unlink(missing_ok=True)
    return True


EXPORT_NAMES = re.compile(r"-(adapter\.zip|merged|int8|nf4|[a-z0-9_]+(-f16)?\.(gguf|Modelfile))")


def exports_of(run_name: str, folder: Path) -> list[Path]:
    """The files and folders exported from ``run_name`` in ``folder`` (the exporters name them ``<run>-<kind>``;
    another run whose name starts with this one's keeps its own)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.startswith(run_name + "-")
            and EXPORT_NAMES.fullmatch(p.name[len(run_name):])]


def evals(run: Path) -> list[str]:
    """The run's saved comparisons, newest first."""
    root = Path(run) / EVAL
    found = [p.name for p in root.iterdir() if (p / SUMMARY).is_file()] if root.is_dir() else []
    return sorted(found, reverse=True)



def benchmarks(run: Path) -> list[str]:
    """The run's saved benchmark results (``studio benchmark``), newest first."""
    root = Path(run) / BENCHMARKS
    return sorted((p.stem for p in root.glob("*.json")), reverse=True) if root.is_dir() else []


def benchmark_file(run: Path, name: str) -> Path:
    if not SAFE_RESULT.fullmatch(name or ""):
        raise StudioError(f"{name!r}: a benchmark result's name is letters, digits, '-', '_' and '.'")
    return Path(run) / BENCHMARKS / f"{name}.json"


def write_benchmark(run: Path, name: str, result: dict) -> Path:
    path = benchmark_file(run, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(result, indent=1))
    return path


def read_eval(run: Path, name: str) -> tuple[dict, list[dict], Path]:
    """A saved comparison's files: its summary (a dict: ``judge.summary.read_eval`` types it), its per-example
    rows, and its folder."""
    if name not in evals(run):
        raise StudioError(f"{Path(run).name}: no saved comparison named {name!r}")
    folder = Path(run) / EVAL / name
    rows = [json.loads(line) for line in (folder / PREDICTIONS).read_text().splitlines() if line.strip()]
    return json.loads((folder / SUMMARY).read_text()), [_nested_scores(r) for r in rows], folder


def _nested_scores(row: dict) -> dict:
    """Per-example scores as {side: {metric: value}}; comparisons saved before that wrote "base_rougeL"."""
    scores = row.get("scores") or {}
    if scores and not all(isinstance(v, dict) for v in scores.values()):
        nested: dict = {"base": {}, "tuned": {}}
        for key, value in scores.items():
            side, _, metric = key.partition("_")
            nested.setdefault(side, {})[metric] = value
        row = {**row, "scores": nested}
    return row
