"""Campaigns that outlive a Space: each campaign as a dataset folder (``campaign.export``) under
``campaigns/<id>/`` of a Hugging Face dataset repo, pushed when it changed and restored at start.

Contract: ``push(db, ids, repo)`` uploads those campaigns in one commit; ``sync(db, repo, last)`` pushes the
campaigns whose answers or state moved since ``last`` (what it returns); ``restore(db, repo)`` imports every
campaign of the repo that this database lacks. ``from_env()`` gives the repo and token a deployment set up:
``STUDIO_RATINGS_REPO`` and the operator's ``HF_TOKEN`` (the operator's own repo, never a visitor's call),
with ``STUDIO_RATINGS_SYNC_S`` (300) between syncs. The hub is ``HF_ENDPOINT`` (a stand-in on loopback in the
tests). Failures are one line; the campaigns stay in the database either way.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path

from studio.engine.errors import ModelError
from studio.engine.judge import campaign as C
from studio.engine.judge.ratings import Ratings
from studio.settings import settings

PREFIX = "campaigns"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # one part of a campaign file's path in the repo
RESTORE_FILE_MB = settings().restore_file_mb
SYNC_S = settings().ratings_sync_s


def from_env() -> tuple[str, str | None] | None:
    repo = settings().ratings_repo.strip()
    return (repo, os.environ.get("HF_TOKEN") or None) if repo else None


def _api(token: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)


def state(db: Ratings) -> dict[str, tuple]:
    """What a sync compares: each published campaign's state and number of answers. Published: the operator's
    own (made from the command line: no owner; the operator set the repo) and a visitor's whose owner chose to
    publish it (``Spec.publish``); another visitor's campaign never leaves the machine."""
    rows = db.db.execute("SELECT c.id, c.state, c.owner, c.spec, COUNT(a.id) FROM campaigns c LEFT JOIN "
                         "campaign_answers a ON a.campaign = c.id GROUP BY c.id").fetchall()
    return {cid: (s, n) for cid, s, owner, spec, n in rows
            if owner is None or json.loads(spec or "{}").get("publish") is True}


def push(db: Ratings, ids: list[str], repo: str, token: str | None = None, private: bool = True) -> None:
    if not ids:
        return
    api = _api(token)
    with tempfile.TemporaryDirectory() as tmp:
        for cid in ids:
            C.export(db, cid, Path(tmp) / PREFIX / cid)
        try:
            api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(folder_path=tmp, repo_id=repo, repo_type="dataset",
                              commit_message=f"Ratings of {len(ids)} campaign(s) from the studio")
        except Exception as e:  # noqa: BLE001 - the hub client's errors are many; one line says which
            raise ModelError(f"ratings to {repo}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None


def sync(db: Ratings, repo: str, token: str | None = None, last: dict | None = None) -> dict:
    """Push what changed since ``last``; returns the state pushed (the next call's ``last``)."""
    now = state(db)
    changed = [cid for cid, s in now.items() if (last or {}).get(cid) != s]
    push(db, changed, repo, token)
    return now


def restore(db: Ratings, repo: str, token: str | None = None, refused: list[str] | None = None) -> list[str]:
    """Import the repo's campaigns this database does not have; returns their ids. Every file is checked before
    it is fetched: its name (``campaigns/<id>/<file>``, no ``..``, no odd characters) and its size
    (``RESTORE_FILE_MB``); a campaign with a refused file, or whose files do not import, is skipped and named in
    ``refused`` (one line each); the others are restored. What was fetched is deleted afterwards."""
    from huggingface_hub import hf_hub_download

    refused = [] if refused is None else refused
    try:
        listing = [e for e in _api(token).list_repo_tree(repo, repo_type="dataset", recursive=True)
                   if getattr(e, "size", None) is not None]
    except Exception as e:  # noqa: BLE001 - a new repo, offline, refused: said in one line
        raise ModelError(f"ratings from {repo}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    have = {c["id"] for c in C.campaigns(db)}
    wanted: dict[str, list | None] = {}
    for entry in listing:
        parts = entry.path.split("/")
        if parts[0] != PREFIX:
            continue
        if len(parts) < 3 or not all(SAFE_NAME.fullmatch(p) for p in parts[1:]):
            refused.append(f"{entry.path[:200]!r}: not a name a campaign's file has")
            if len(parts) >= 3 and SAFE_NAME.fullmatch(parts[1]):
                wanted[parts[1]] = None
            continue
        if entry.size > RESTORE_FILE_MB * 2**20:
            refused.append(f"{entry.path}: {entry.size / 2**20:,.1f} MB, more than the {RESTORE_FILE_MB:g} MB a "
                           f"campaign file may have here")
            wanted[parts[1]] = None
            continue
        if wanted.get(parts[1], []) is not None:
            wanted.setdefault(parts[1], []).append(entry.path)
    restored = []
    with tempfile.TemporaryDirectory(prefix="ratings-") as tmp:
        for cid, files in sorted(wanted.items()):
            if cid in have:
                continue
            if files is None:
                refused.append(f"campaign {cid}: not restored (a file of it was refused)")
                continue
            try:
                for path in files:
                    hf_hub_download(repo, path, repo_type="dataset", token=token, local_dir=tmp,
                                    endpoint=os.environ.get("HF_ENDPOINT") or None)
                folder = Path(tmp) / PREFIX / cid
                if json.loads((folder / "campaign.json").read_text()).get("id") != cid:
                    raise ValueError("its campaign.json names another campaign")
                restored.append(C.import_export(db, folder))
            except Exception as e:  # noqa: BLE001 - one campaign's fault never stops the others
                refused.append(f"campaign {cid}: not restored ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
    return restored


def keep_synced(db: Ratings, repo: str, token: str | None, stop: threading.Event, every: float = SYNC_S,
                say=print) -> threading.Thread:
    """A daemon thread that restores once, then pushes what changed every ``every`` seconds and at ``stop``."""

    def loop() -> None:
        try:
            refused: list[str] = []
            got = restore(db, repo, token, refused)
            say(f"ratings: restored {len(got)} campaign(s) from {repo}" if got else f"ratings: syncing to {repo}")
            for line in refused:
                say(f"ratings: refused {line}")
        except Exception as e:  # noqa: BLE001 - whatever the repo holds, the pushes below still happen
            say(f"ratings: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        try:
            last = state(db)  # what is there now (restored campaigns included) is not pushed back
        except Exception:  # noqa: BLE001 - a database that cannot be read now: everything is pushed when it can
            last = {}
        while True:
            stopping = stop.wait(every)
            try:
                last = sync(db, repo, token, last)
            except Exception as e:  # noqa: BLE001 - the thread lives on and tries again next time
                say(f"ratings: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            if stopping:
                return

    thread = threading.Thread(target=loop, name="ratings-sync", daemon=True)
    thread.start()
    return thread
