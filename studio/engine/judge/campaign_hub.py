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

import os
import tempfile
import threading
from pathlib import Path

from studio.engine.errors import ModelError
from studio.engine.judge import campaign as C
from studio.engine.judge.ratings import Ratings

PREFIX = "campaigns"
SYNC_S = float(os.environ.get("STUDIO_RATINGS_SYNC_S", "300"))


def from_env() -> tuple[str, str | None] | None:
    repo = os.environ.get("STUDIO_RATINGS_REPO", "").strip()
    return (repo, os.environ.get("HF_TOKEN") or None) if repo else None


def _api(token: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=token)


def state(db: Ratings) -> dict[str, tuple]:
    """What a sync compares: each campaign's state and number of answers."""
    C._ensure(db)
    rows = db.db.execute("SELECT c.id, c.state, COUNT(a.id) FROM campaigns c LEFT JOIN campaign_answers a "
                         "ON a.campaign = c.id GROUP BY c.id").fetchall()
    return {cid: (s, n) for cid, s, n in rows}


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


def restore(db: Ratings, repo: str, token: str | None = None) -> list[str]:
    """Import the repo's campaigns this database does not have; returns their ids."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, repo_type="dataset", token=token, allow_patterns=f"{PREFIX}/*",
                                        endpoint=os.environ.get("HF_ENDPOINT") or None,
                                        cache_dir=tempfile.mkdtemp(prefix="ratings-")))
    except Exception as e:  # noqa: BLE001 - a new repo, offline, refused: said in one line
        raise ModelError(f"ratings from {repo}: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    have = {c["id"] for c in C.campaigns(db)}
    restored = []
    for path in sorted((folder / PREFIX).iterdir()) if (folder / PREFIX).is_dir() else []:
        if path.name not in have and (path / "campaign.json").is_file():
            restored.append(C.import_export(db, path))
    return restored


def keep_synced(db: Ratings, repo: str, token: str | None, stop: threading.Event, every: float = SYNC_S,
                say=print) -> threading.Thread:
    """A daemon thread that restores once, then pushes what changed every ``every`` seconds and at ``stop``."""

    def loop() -> None:
        try:
            got = restore(db, repo, token)
            say(f"ratings: restored {len(got)} campaign(s) from {repo}" if got else f"ratings: syncing to {repo}")
        except ModelError as e:
            say(f"ratings: {e}")
        last = state(db)
        while True:
            stopping = stop.wait(every)
            try:
                last = sync(db, repo, token, last)
            except ModelError as e:
                say(f"ratings: {e}")
            if stopping:
                return

    thread = threading.Thread(target=loop, name="ratings-sync", daemon=True)
    thread.start()
    return thread
