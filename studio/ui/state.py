"""Per-session state: which job and uploads belong to which visitor.

A session's key is a random id the browser keeps (``gr.BrowserState``), so a reloaded page finds
its running job again; API clients without a browser use Gradio's session hash. The registry
belongs to one app instance (built in ``ui/app.py``), never to the module.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.jobs import Job
from ..engine.models import public_mode, studio_home

SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "samples"


@dataclass
class Session:
    key: str
    job: Job | None = None
    drawn: int = -1  # metrics already drawn by this page (skip identical redraws)
    announced: str = ""  # the last final state announced as a toast
    data_path: str = ""  # the last dataset uploaded or picked (API clients have no form to keep it)
    pair: dict | None = None  # the blind pair on screen (identities stay here until the vote)
    answer: dict | None = None  # the answer being rated on the Likert panel
    runs: list[str] = field(default_factory=list)

    @property
    def upload_dir(self) -> Path:
        d = studio_home() / "uploads" / self.key
        d.mkdir(parents=True, exist_ok=True)
        return d

    def allows(self, path: str) -> bool:
        """On a public deployment a session reads only its own uploads and the bundled samples."""
        if not public_mode():
            return True
        p = Path(path).resolve()
        return p.is_relative_to(self.upload_dir.resolve()) or p.is_relative_to(SAMPLES.resolve())

    def keep_upload(self, temp_path: str) -> Path:
        """Copy an upload out of Gradio's temporary cache into this session's folder."""
        src = Path(temp_path)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", src.name) or "upload"
        dst = self.upload_dir / name
        shutil.copyfile(src, dst)
        self.data_path = str(dst)
        return dst


class Sessions:
    def __init__(self):
        self._lock = threading.Lock()
        self._by_key: dict[str, Session] = {}
        # The operator's switch; STUDIO_TRAINING=off starts a deployment with training refused.
        self.training_allowed = os.environ.get("STUDIO_TRAINING", "on").lower() not in ("off", "0", "false", "no")

    def all(self) -> list[Session]:
        with self._lock:
            return list(self._by_key.values())

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    def get(self, key: str | None, request=None) -> Session:
        key = key or getattr(request, "session_hash", None) or "local"
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key):
            key = "local"
        with self._lock:
            if key not in self._by_key:
                self._by_key[key] = Session(key)
            return self._by_key[key]
