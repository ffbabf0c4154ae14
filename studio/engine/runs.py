"""The run directory (DESIGN.md section 3): config, status, metrics, checkpoints, artifacts.

Contract: every file is written atomically (a temporary file, then ``os.replace``), so a reader
or a killed process never sees half a status. A checkpoint counts as complete only once the
trainer has finished writing it and ``COMPLETE`` is inside; resume never picks another.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import StudioConfig
from .models import studio_home

STATES = ("queued", "running", "completed", "stopped", "failed", "diverged")
COMPLETE = "COMPLETE"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def runs_root() -> Path:
    root = studio_home() / "runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_atomic(path: Path, text: str, durable: bool = False) -> None:
    """Readers see the old or the new file, never half of one; ``durable`` also survives power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_run_dir(config: StudioConfig, output_dir: str | Path | None = None) -> Path:
    if output_dir:
        run = Path(output_dir)
        if (run / "status.json").exists():
            raise FileExistsError(f"{run} already holds a run; use `studio resume {run}` or another folder")
    else:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.run_name or f"{config.method.kind}").strip("-") or "run"
        run = runs_root() / f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}"
        n = 1
        while run.exists():
            n += 1
            run = run.with_name(f"{run.name.rsplit('~', 1)[0]}~{n}")
    run.mkdir(parents=True, exist_ok=True)
    write_atomic(run / "config.yaml", config.to_yaml())
    return run


def write_status(run: Path, state: str, **fields) -> dict:
    assert state in STATES, state
    old = read_status(run)
    status = {**old, "state": state, "updated": time.time(), **fields}
    status.setdefault("error", None)
    write_atomic(run / "status.json", json.dumps(status, indent=1))
    return status


def read_status(run: Path) -> dict:
    try:
        return json.loads((Path(run) / "status.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def append_metrics(run: Path, record: dict) -> None:
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run: Path) -> list[dict]:
    path = Path(run) / "metrics.jsonl"
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
    root = Path(run) / "checkpoints"
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
        raw = StudioConfig.load(Path(run) / "config.yaml").to_dict()
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


def list_runs() -> list[RunInfo]:
    out = []
    for run in sorted(runs_root().iterdir(), reverse=True):
        if not (run / "config.yaml").is_file():
            continue
        status = read_status(run)
        try:
            cfg = StudioConfig.load(run / "config.yaml")
            method, model = cfg.method.kind, cfg.model.name
        except ValueError:
            method, model = "?", "?"
        out.append(RunInfo(run, run.name, status.get("state", "unknown"), method, model, status.get("step", 0),
                           status.get("final_loss"), status.get("duration_s"), status.get("owner")))
    return out
