"""Where the studio keeps things and what a deployment allows: one module every store can import
without loading a model (it imports nothing heavy and nothing from studio).

- ``studio_home()``: STUDIO_HOME; on a Space with persistent storage /data/studio; else ~/.studio.
- ``public_mode()``: a Space (SPACE_ID) or STUDIO_PUBLIC=1: visitors are strangers to each other.
- ``operator_allows(setting)``: on a public deployment unsafe model settings need the operator's
  consent (STUDIO_ALLOW_<SETTING>=1).
- ``shows_server()`` / ``shown_path(path)``: server paths and host facts are for the machine's owner; a public
  deployment shows a file's name only.
- ``ASSETS`` / ``SAMPLES``: the shipped assets, in a source checkout or an installed package.
- ``quiet_libraries()``: library chatter (deprecations, load bars) is not for our users.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path


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
    home = Path(os.environ.get("STUDIO_HOME") or default).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def owner_id(name: str) -> str:
    """A user's id on disk and in the run store: their login, made safe for a folder name, one to one (letters,
    digits and ``-`` stay; any other character becomes ``_`` and its code point in hex, so ``carol.x`` and
    ``carol_x`` never share a folder)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "-") else f"_{ord(c):x}_" for c in name[:64])
    return "user-" + (safe or "unknown")


def public_mode() -> bool:
    return bool(os.environ.get("SPACE_ID") or os.environ.get("STUDIO_PUBLIC"))


def hub_token() -> bool | None:
    """The token argument of a hub call made for a visitor: False (send none) on a public deployment, so the
    operator's ``HF_TOKEN`` is never lent; None (the hub client's own default) locally."""
    return False if public_mode() else None


OPERATOR_SECRETS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN", "STUDIO_OPERATOR_TOKEN", "WANDB_API_KEY",
                    "MLFLOW_TRACKING_TOKEN", "OPENAI_API_KEY")


def visitor_process(public: bool) -> None:
    """Called first in every child (``isolate.Child``: training, a data check, a device job): on a public
    deployment (``public``, as the parent that started it saw it) the operator's secrets leave the child's
    environment and the hub client's saved login is out of reach, so no library the visitor's config switches on
    (a tracker, a hub download) can read or send them."""
    if not public:
        return
    for name in OPERATOR_SECRETS:
        os.environ.pop(name, None)
    os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    os.environ["HF_TOKEN_PATH"] = f"/nonexistent-hub-login-{os.getpid()}/token"  # the saved login: out of reach
    try:
        from huggingface_hub import constants

        constants.HF_TOKEN_PATH = os.environ["HF_TOKEN_PATH"]  # the fork server imported the client already
        constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = True
    except ImportError:
        pass


def operator_allows(setting: str) -> bool:
    return not public_mode() or os.environ.get(f"STUDIO_ALLOW_{setting.upper()}", "") in ("1", "true", "yes")


def shows_server() -> bool:
    """Whether a page or a message may show the server's paths and facts (its memory, its folders)."""
    return not public_mode()


def shown_path(path) -> str:
    """A server path as this deployment shows it: whole on one's own machine, its last part on a public one."""
    if not path:
        return ""
    return str(path) if shows_server() else Path(path).name


def quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not os.environ.get("STUDIO_DEBUG"):
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
