"""Per-session state: which job and uploads belong to which visitor.

A session's key is a random id the browser keeps (``gr.BrowserState``), so a reloaded page finds
its running job again; API clients without a browser use Gradio's session hash. The registry
belongs to one app instance (built in ``ui/app.py``), never to the module.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from studio.engine import budget, gate, runs
from studio.engine.errors import StudioError
from studio.engine.judge.pool import Answer, Pair
from studio.engine.train.jobs import Job, SweepJob
from studio.policy import policy
from studio.settings import settings, studio_home
from studio.ui.identity import visitor_of


@dataclass
class Session:
    key: str
    owner: str | None = None  # whose runs, uploads and jobs: the login in public mode (None: anonymous)
    job: Job | None = None
    settings: object = None  # StudioConfig last submitted (Start, a sweep, the LR finder): a reload shows it
    drawn: int = -1  # metrics already drawn by this page (skip identical redraws)
    announced: str = ""  # the last state announced (a toast at the end, the run history at start and end)
    data_path: str = ""  # the last dataset uploaded or picked (API clients have no form to keep it)
    pair: Pair | None = None  # the blind pair on screen (identities stay here until the vote)
    answer: Answer | None = None  # the answer being rated on the Likert panel
    runs: list[str] = field(default_factory=list)
    sweep: SweepJob | None = None
    pages: set = field(default_factory=set)  # Gradio session hashes of the pages open on this session
    last_seen: float = field(default_factory=time.time)
    offer: tuple[str, str] | None = None  # preference pairs made from votes, offered as (data file, method)

    def stop_checks(self) -> int:
        """Stop this visitor's data checks and device jobs (Compare, merge, ...) in progress."""
        return gate.stop(self.key)

    @property
    def busy(self) -> bool:
        return (self.job is not None and not self.job.done) or (self.sweep is not None and not self.sweep.done)

    @property
    def upload_dir(self) -> Path:
        d = studio_home() / "uploads" / self.key
        d.mkdir(parents=True, exist_ok=True)
        return d


    def checked(self, config):
        """The config as this visitor may run it (``gate.check_config``): the dataset defaults to their last one."""
        if not config.data.path:
            config = replace(config, data=replace(config.data, path=self.data_path))
        self.settings = gate.check_config(config)  # what a reload shows: the settings last put to work
        return self.settings

    def keep_upload(self, temp_path: str) -> Path:
        """Copy an upload out of Gradio's temporary cache into this session's folder."""
        src = Path(temp_path)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", src.name) or "upload"
        try:
            if policy().needs_login(self.owner):
                raise StudioError("Log in to upload a file: visitors who are not logged in can try the samples.")
            budget.check_disk(self.owner, src.stat().st_size)
            dst = self.upload_dir / name
        except Exception:
            src.unlink(missing_ok=True)  # a refused upload does not stay in Gradio's cache either
            raise
        shutil.move(src, dst)  # not a copy: the upload is stored once
        return dst


IDLE_S = settings().session_idle_s  # a session unseen this long is dropped (if idle)
RELOAD_S = settings().session_reload_s  # a session whose pages all closed waits this long


class Sessions:
    """The registry of sessions. A session whose pages all closed ``RELOAD_S`` ago (a reload comes back sooner and
    finds its data, settings and runs), or that has not been seen for ``IDLE_S``, is dropped unless a job or a
    sweep of it is still going."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_key: dict[str, Session] = {}
        self._swept = time.time()
        # The operator's switch; STUDIO_TRAINING=off starts a deployment with training refused.
        self.training_allowed = settings().training

    def all(self) -> list[Session]:
        with self._lock:
            return list(self._by_key.values())

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    def get(self, key: str | None, request=None) -> Session:
        """The session of this request. On a public deployment it is the logged-in user's (the key the client
        sends grants nothing); an anonymous visitor gets one per page, which owns nothing."""
        page = getattr(request, "session_hash", None)
        if policy().identity_from_login:
            owner, key = visitor_of(request)
        else:
            if not key and page:  # an event before the page's key arrived: the session this page already uses
                key = next((k for k, s in self.all_items() if page in s.pages), page)
            key = _safe(key or "local")
            owner = key
        with self._lock:
            self._drop_idle(keep=key)
            if key not in self._by_key:
                self._by_key[key] = Session(key, owner)
            session = self._by_key[key]
            session.last_seen = time.time()
            runs.ACTING.set(session.owner)  # this request acts for this visitor (a model may be one of their runs)
            if getattr(request, "session_hash", None):
                session.pages.add(request.session_hash)
            return session

    def all_items(self) -> list[tuple[str, Session]]:
        with self._lock:
            return list(self._by_key.items())

    def adopt(self, key: str, request) -> Session:
        """The page's key arrived (demo.load): a session its events made before that, under the page's Gradio
        hash, becomes this key's, so a job started in that moment is not lost. (Public mode: the login's.)"""
        if policy().identity_from_login:
            return self.get(key, request)
        page = getattr(request, "session_hash", None)
        with self._lock:
            early = self._by_key.pop(page, None) if page and page != key else None
            session = self._by_key.setdefault(key, Session(key, key))
            if early is not None:
                for name in ("job", "sweep", "data_path", "pair", "answer"):
                    if getattr(session, name) in (None, "") and getattr(early, name) not in (None, ""):
                        setattr(session, name, getattr(early, name))
            if page:
                session.pages.add(page)
            return session

    def page_closed(self, request) -> None:
        """A page went away (Gradio's unload, a reload too): its sessions forget it; one with no page left is
        dropped ``RELOAD_S`` later unless a page comes back to it."""
        page = getattr(request, "session_hash", None)
        with self._lock:
            for s in self._by_key.values():
                if page in s.pages:
                    s.pages.discard(page)
                    s.last_seen = time.time()

    def _drop_idle(self, keep: str) -> None:
        now = time.time()
        if now - self._swept < 60:
            return
        self._swept = now
        for key, s in list(self._by_key.items()):
            gone = now - s.last_seen > (IDLE_S if s.pages else min(IDLE_S, RELOAD_S))
            if key != keep and gone and not s.busy:
                del self._by_key[key]


@dataclass
class Context:
    """What every tab's ``wire`` needs: the app, the shared form, the sessions and the session key."""
    demo: object  # gr.Blocks
    form: object  # forms.Form
    sessions: Sessions
    key: object  # gr.State holding the session key
    current_run: object = None  # gr.State: the run just trained or last viewed (the other tabs preselect it)
    current_eval: object = None  # gr.State: (run, comparison) just made (Rate preselects it)

    def session(self, key: str | None, request=None) -> Session:
        return self.sessions.get(key, request)

    def trained(self, key: str | None, current: str | None, just: str | None, request=None,
                chat: bool = False) -> dict:
        """A run picker's update: its choices, and a value only where it shows none that still exists (the run
        just trained, else the newest); a refresh that answers late never undoes what the visitor picked.
        ``chat``: only runs that write answers (no reward models, no sweep trials)."""
        owner = self.session(key, request).owner
        names = runs.chat_runs(owner) if chat else runs.trained_runs(owner)
        if current in names:
            return {"choices": names}
        return {"choices": names, "value": next((n for n in (just,) if n in names), next(iter(names), None))}


def _safe(key: str) -> str:
    """A key fit for a folder name; any other string maps to its own hash (never to a shared folder)."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key):
        return key
    return "k" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]
