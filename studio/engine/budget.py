"""What one visitor may use on a public deployment: steps and minutes per job, disk, upload lifetime.

Contract: the operator sets the numbers in the environment (they apply in public mode only; a local
studio has no limits). ``check_disk(owner, adding)`` raises ``StudioError`` when a visitor's uploads and
runs would pass their quota; ``over_budget(steps, seconds)`` says in a sentence why a job must stop;
``clean_uploads()`` removes uploads older than their lifetime (called as uploads arrive, and at shutdown
for everything).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from studio.engine.errors import StudioError
from studio.settings import public_mode, studio_home

MAX_STEPS = int(os.environ.get("STUDIO_MAX_STEPS", "2000"))
MAX_MINUTES = float(os.environ.get("STUDIO_MAX_MINUTES", "30"))
USER_QUOTA_MB = float(os.environ.get("STUDIO_USER_QUOTA_MB", "500"))
UPLOAD_TTL_S = float(os.environ.get("STUDIO_UPLOAD_TTL_S", str(24 * 3600)))


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20 if Path(path).exists() else 0.0


def usage_mb(owner: str) -> float:
    from studio.engine import runs

    return folder_mb(studio_home() / "uploads" / owner) + sum(folder_mb(r.path) for r in runs.list_runs(owner)
                                                              if r.owner == owner)


def check_disk(owner: str | None, adding: int = 0) -> None:
    if not public_mode() or owner is None:
        return
    used = usage_mb(owner) + adding / 2**20
    if used > USER_QUOTA_MB:
        raise StudioError(f"your uploads and runs would take {used:,.0f} MB, more than the {USER_QUOTA_MB:,.0f} MB "
                          "this deployment gives each visitor: delete some runs first")


def over_budget(step: int, seconds: float) -> str | None:
    if not public_mode():
        return None
    if step >= MAX_STEPS:
        return f"stopped at this deployment's limit of {MAX_STEPS} steps a run"
    if seconds >= MAX_MINUTES * 60:
        return f"stopped at this deployment's limit of {MAX_MINUTES:g} minutes a run"
    return None


def clean_uploads(ttl_s: float | None = None) -> int:
    """Remove uploads older than ``ttl_s`` (default: the operator's lifetime); 0 removes them all."""
    ttl = UPLOAD_TTL_S if ttl_s is None else ttl_s
    root, now, removed = studio_home() / "uploads", time.time(), 0
    for f in root.rglob("*") if root.is_dir() else []:
        if f.is_file() and now - f.stat().st_mtime >= ttl:
            f.unlink(missing_ok=True)
            removed += 1
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True) if root.is_dir() else []:
        if not any(d.iterdir()):
            shutil.rmtree(d, ignore_errors=True)
    return removed
