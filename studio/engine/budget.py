"""What one visitor may use on a public deployment: steps and minutes per job, disk, upload lifetime.

Contract: the operator sets the numbers in the environment (they apply in public mode only; a local
studio has no limits). ``holdings(owner)`` is the one ledger of what a visitor holds (uploads, runs, exports,
campaigns); ``check_disk(owner, adding)`` raises ``StudioError`` when what they hold would pass their quota;
``check_campaign`` bounds their campaigns; ``over_budget(steps, seconds)`` says in a sentence why a job must stop;
``clean_uploads()`` removes uploads older than their lifetime (called as uploads arrive, and at shutdown
for everything).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from studio.engine.errors import StudioError
from studio.policy import policy
from studio.settings import owner_id, settings, studio_home

MAX_STEPS = settings().max_steps
MAX_MINUTES = settings().max_minutes
USER_QUOTA_MB = settings().user_quota_mb
MAX_CAMPAIGNS = settings().max_campaigns  # per visitor
MAX_CAMPAIGN_UNITS = settings().max_campaign_units  # items in one campaign
UPLOAD_TTL_S = settings().upload_ttl_s


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 2**20 if Path(path).exists() else 0.0


def holdings(owner: str) -> dict:
    """The one ledger of what a visitor holds on this machine: MB of uploads, runs and exports (handed-out files
    they made: zips, merged and quantized models, GGUF), and their campaigns. The quota and the operator's
    listing both read it."""
    from studio.engine import runs

    held = {"uploads_mb": folder_mb(studio_home() / "uploads" / owner),
            "runs_mb": sum(folder_mb(r.path) for r in runs.list_runs(owner) if r.owner == owner),
            "exports_mb": folder_mb(studio_home() / "exports" / owner)}
    held["campaigns"] = sum(1 for name in _campaign_owners() if owner_id(name) == owner)  # filed by login
    return held


def _campaign_owners() -> list[str]:
    """The login each campaign was made under (the campaigns table of the ratings database)."""
    import sqlite3

    from studio.engine.judge.ratings import default_db

    try:
        return [r[0] for r in default_db().db.execute("SELECT owner FROM campaigns WHERE owner IS NOT NULL")]
    except sqlite3.Error:  # no campaign made yet (no table), or a database that cannot be read: none counted
        return []


def usage_mb(owner: str) -> float:
    held = holdings(owner)
    return held["uploads_mb"] + held["runs_mb"] + held["exports_mb"]


def owners() -> list[str]:
    """Everyone who holds something: a folder of uploads or exports, or a run."""
    from studio.engine import runs

    found = {p.name for kind in ("uploads", "exports") for p in (studio_home() / kind).glob("user-*") if p.is_dir()}
    return sorted(found | {r.owner for r in runs.list_runs(None, everyone=True) if r.owner})


def check_campaign(owner: str | None, units: int) -> None:
    """A visitor's campaign: at most ``MAX_CAMPAIGNS`` of them and ``MAX_CAMPAIGN_UNITS`` items each (each copies
    its answers into the shared ratings database)."""
    if not policy().caps or owner is None:
        return
    if units > MAX_CAMPAIGN_UNITS:
        raise StudioError(f"a campaign of {units:,} items: this deployment takes at most {MAX_CAMPAIGN_UNITS:,}")
    if holdings(owner)["campaigns"] >= MAX_CAMPAIGNS:
        raise StudioError(f"you have {MAX_CAMPAIGNS} campaigns, as many as this deployment keeps for one visitor: "
                          "export and close one first")


def check_disk(owner: str | None, adding: int = 0) -> None:
    if not policy().caps or owner is None:
        return
    used = usage_mb(owner) + adding / 2**20
    if used > USER_QUOTA_MB:
        raise StudioError(f"your uploads, runs and exports would take {used:,.0f} MB, more than the "
                          f"{USER_QUOTA_MB:,.0f} MB this deployment gives each visitor: delete some runs first")


def over_budget(step: int, seconds: float) -> str | None:
    if not policy().caps:
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
