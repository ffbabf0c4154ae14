"""Where the studio keeps things and every setting a deployment reads from its environment: one module every
store can import without loading a model (it imports nothing heavy and nothing from studio).

- ``settings()``: the ``STUDIO_*`` variables (and ``SPACE_ID``), typed, in one ``Settings`` object; no other
  module reads a ``STUDIO_*`` variable (a test holds it). What they mean for a visitor is ``studio/policy.py``'s.
- ``studio_home()``: STUDIO_HOME; on a Space with persistent storage /data/studio; else ~/.studio.
- ``ASSETS`` / ``SAMPLES``: the shipped assets, in a source checkout or an installed package.
- ``quiet_libraries()``: library chatter (deprecations, load bars) is not for our users.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

OFF = ("", "0", "false", "no", "off")


class Settings(BaseSettings):
    """Every ``STUDIO_<NAME>`` variable the studio reads (``name`` below, upper-cased), with its default. Read
    afresh by each ``settings()`` call, so a test or an operator's change to the environment is seen."""

    model_config = SettingsConfigDict(env_prefix="STUDIO_", extra="ignore", populate_by_name=True,
                                      env_ignore_empty=True)

    # the deployment
    home: str = ""  # where runs, uploads, ratings and caches live (default: ~/.studio, /data/studio on a Space)
    public: bool = False  # strangers use it (also: a Space, SPACE_ID); any value but 0/false/no/off is public
    space_id: str = Field("", validation_alias=AliasChoices("SPACE_ID"))
    debug: bool = False  # tracebacks in the CLI, library warnings shown
    host: str = ""
    port: int | None = None
    server_nice: int = 5  # how far the web server lowers its CPU priority below training's
    training: bool = True  # off: a deployment that refuses training (the operator's switch)
    threads: int = 0  # training threads (0: the studio's default)
    # who the visitor is
    auth: str = ""  # user:password[,user:password]: Gradio's password login
    trusted_user_header: str = ""  # a login proxy's header naming the user
    trusted_proxy: str = ""  # set: X-Forwarded-For names the client (the operator's proxy is in front)
    operator_token: str = ""  # the operator's actions on the page
    serve_api_key: str = ""  # studio serve's key, when --api-key is not given
    # the web server's shares
    max_upload: str = "200mb"
    temp_age_s: float = 3600  # Gradio's temporary files older than this go
    queue_size: int = 64  # events waiting, everyone together
    anon_queue_share: int = 8  # of those, anonymous visitors together
    queue_per_visitor: int = 8  # of those, one visitor's
    sessions: int = 2000  # Gradio sessions kept in memory (oldest go first)
    uploads_per_minute: int = 30
    session_idle_s: float = 3600  # a session unseen this long is dropped (if idle)
    session_reload_s: float = 600  # a session whose pages all closed waits this long
    check_pool: int = 4  # visitors' data checks side by side, each in a child
    check_seconds: float = 120
    check_memory_mb: float = 3072
    anon_nice: int = 10  # public deployment: anonymous visitors' children run this much nicer
    queue_max: int = 16  # device jobs waiting
    # what a visitor may spend on a public deployment
    max_examples: int = 200  # per comparison / measurement
    max_new_tokens: int = 256  # per answer
    max_prompt_chars: int = 4000  # a typed message
    max_field_chars: int = 65536  # any one text input
    job_seconds: float = 600  # one device job (Compare, merge, ...)
    job_memory_mb: float = 6144
    chat_seconds: float = 120  # one answer pair
    max_steps: int = 2000
    max_minutes: float = 30
    user_quota_mb: float = 500
    max_campaigns: int = 10  # per visitor
    max_campaign_units: int = 2000  # items in one campaign
    upload_ttl_s: float = 24 * 3600
    max_trials: int | None = None  # a sweep's (default 16 on a public deployment, else 256)
    max_data_bytes: int | None = None  # one data file (default 256 MiB on a public deployment, else 1 GiB)
    # campaigns kept in a dataset repo (a Space's disk is wiped on restart)
    ratings_repo: str = ""
    ratings_sync_s: float = 300
    restore_file_mb: float = 64

    @field_validator("public", "debug", "training", mode="before")
    @classmethod
    def _switch(cls, value):
        """Any value but an 'off' word is on (``STUDIO_PUBLIC=yes`` is public, never an error at start)."""
        return str(value).strip().lower() not in OFF if value is not None else False

    @property
    def is_public(self) -> bool:
        return bool(self.public or self.space_id)

    def allows(self, setting: str) -> bool:
        """The operator's consent to an unsafe setting: ``STUDIO_ALLOW_<SETTING>=1`` (or true / yes)."""
        return os.environ.get(f"STUDIO_ALLOW_{setting.upper()}", "").strip().lower() in ("1", "true", "yes")


_read: tuple[tuple, Settings] | None = None


def settings() -> Settings:
    """The settings as the environment has them now (read again only when a ``STUDIO_*`` variable changed)."""
    global _read
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("STUDIO_") or k == "SPACE_ID"))
    if _read is None or _read[0] != key:
        _read = (key, Settings())
    return _read[1]


def _assets() -> Path:
    """``assets/`` beside the package in a checkout; ``studio/_assets`` once installed (pyproject maps it)."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "assets"
    return checkout if (checkout / "studio-tiny").is_dir() else here / "_assets"


ASSETS = _assets()
SAMPLES = ASSETS / "samples"


def studio_home() -> Path:
    default = Path.home() / ".studio"
    if os.environ.get("SPACE_ID") and Path("/data").is_dir() and os.access("/data", os.W_OK):
        default = Path("/data/studio")
    home = Path(settings().home or default).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def owner_id(name: str) -> str:
    """A user's id on disk and in the run store: their login, made safe for a folder name, one to one (letters,
    digits and ``-`` stay; any other character becomes ``_`` and its code point in hex, so ``carol.x`` and
    ``carol_x`` never share a folder)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "-") else f"_{ord(c):x}_" for c in name[:64])
    return "user-" + (safe or "unknown")


def quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not settings().debug:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        for name in ("bitsandbytes", "datasets", "transformers", "trl", "peft", "accelerate", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:
        pass
