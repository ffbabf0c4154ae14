"""Launch the app with the studio's secure defaults: analytics off, SSR off, upload size capped, errors shown as
friendly messages only, bound to 127.0.0.1 unless STUDIO_HOST or Gradio's GRADIO_SERVER_NAME says otherwise
(0.0.0.0 on a Space; the port: STUDIO_PORT, else GRADIO_SERVER_PORT, else 7860: ``address``), password
auth when STUDIO_AUTH=user:password[,user:password] is set. On a public deployment ``ui/gateway.py`` stands in
front of Gradio's own upload and queue routes, and Gradio keeps a bounded number of lean sessions. Files are
served from Gradio's own upload cache only (no export folder: a download is handed to the visitor who asked for
it, under a random name); that cache lives in the studio's home (``GRADIO_TEMP_DIR``) and is emptied at start,
aged out while the server runs and emptied at shutdown, SIGTERM and SIGINT included. On a public deployment no
hub call the library makes on its own carries the operator's ``HF_TOKEN`` (``HF_HUB_DISABLE_IMPLICIT_TOKEN``),
and the studio's own pass ``token=False`` (``engine/gate.py``)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import threading

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from studio.settings import settings  # noqa: E402  (after the two defaults above: it imports nothing heavy)

MAX_UPLOAD = settings().max_upload
TEMP_AGE_S = settings().temp_age_s  # Gradio's temporary files older than this go
RATINGS_STOP = threading.Event()  # set at shutdown: the ratings sync pushes once more and ends
RATINGS: list[threading.Thread] = []


def users(spec: str | None) -> list[tuple[str, str]] | None:
    """STUDIO_AUTH: ``user:password`` pairs separated by commas (Gradio's password login)."""
    pairs = [tuple(p.split(":", 1)) for p in (spec or "").split(",") if ":" in p]
    return pairs or None


def gradio_temp() -> str:
    """Gradio's upload cache, inside the studio's home unless the operator put it elsewhere."""
    from studio.settings import studio_home

    return os.environ.setdefault("GRADIO_TEMP_DIR", str(studio_home() / "gradio"))


def clean_temp() -> None:
    """Empty Gradio's upload cache when it is the studio's own (what a visitor uploaded, downloads handed out)."""
    from studio.settings import studio_home

    temp = os.environ.get("GRADIO_TEMP_DIR", "")
    if temp and os.path.realpath(temp).startswith(os.path.realpath(studio_home()) + os.sep):
        shutil.rmtree(temp, ignore_errors=True)


def _cleanup() -> None:
    from studio.engine import budget
    from studio.engine.export.serve import SERVED
    from studio.policy import policy

    SERVED.stop_all()  # a server started from the Export tab ends with the app
    RATINGS_STOP.set()  # the campaigns' last answers go to STUDIO_RATINGS_REPO before the Space's disk does
    for thread in RATINGS:
        thread.join(60)
    clean_temp()
    if policy().guards_routes:
        budget.clean_uploads(0)


def _on_signal(signum, frame) -> None:
    _cleanup()
    raise SystemExit(128 + signum)


def sync_ratings() -> None:
    """With STUDIO_RATINGS_REPO set (a Space's disk is wiped on restart): the campaigns are restored from that
    dataset repo now and pushed to it when they change (engine/judge/campaign_hub.py)."""
    from studio.engine.judge import campaign_hub
    from studio.engine.judge.ratings import default_db

    where = campaign_hub.from_env()
    if where and not RATINGS:
        RATINGS.append(campaign_hub.keep_synced(default_db(), *where, RATINGS_STOP))


def address(host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """Where the app listens: the argument (``--host`` / ``--port``), else the studio's own STUDIO_HOST /
    STUDIO_PORT, else Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (as every Gradio app honours them), else
    127.0.0.1 (0.0.0.0 on a Space) and 7860."""
    env, s = os.environ, settings()
    host = host or s.host or env.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if s.space_id else "127.0.0.1")
    return host, int(port or s.port or env.get("GRADIO_SERVER_PORT") or 7860)


def launch(host: str | None = None, port: int | None = None, block: bool = True, nice: int | None = None):
    """``nice``: how far the web server lowers its own CPU priority below training's (default
    ``STUDIO_SERVER_NICE``, 5, for the server that ``python app.py`` runs; 0 for an embedded one), so that a
    crowd of visitors slows the pages, not the run. Training workers keep the normal priority."""
    from starlette.middleware import Middleware

    from studio.engine import budget
    from studio.engine.train import worker
    from studio.policy import policy
    from studio.settings import quiet_libraries
    from studio.ui import gateway
    from studio.ui.app import build_app

    quiet_libraries()
    gradio_temp()
    if not policy().lends_operator_token:
        os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"  # children (workers, checks) read it at import
        from huggingface_hub import constants

        constants.HF_HUB_DISABLE_IMPLICIT_TOKEN = True  # this process already imported the hub client
    nice = settings().server_nice if nice is None and block else (nice or 0)
    if nice > 0 and hasattr(os, "nice"):
        worker.prestart()
        os.nice(nice)  # this thread and every thread it starts from now on: the web server's, not the workers'
    if block:
        clean_temp()  # what an earlier run of the server left
    if policy().guards_routes:
        budget.clean_uploads()
    atexit.register(_cleanup)
    if block and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _on_signal)
    sync_ratings()
    gateway.lean_sessions()  # Gradio keeps each session's own values, not a copy of every component
    demo = build_app(delete_cache=(min(900, int(TEMP_AGE_S)), int(TEMP_AGE_S)))
    demo.queue(default_concurrency_limit=1, max_size=gateway.QUEUE_SIZE)
    server_name, server_port = address(host, port)
    demo.launch(
        server_name=server_name, server_port=server_port,
        auth=users(settings().auth), max_file_size=MAX_UPLOAD, ssr_mode=False, show_error=False,
        share=False, prevent_thread_lock=not block, quiet=not block, state_session_capacity=gateway.SESSIONS,
        # the door in front of Gradio's own routes (upload, queue join): identity, quota and shares, public mode
        app_kwargs={"middleware": [Middleware(gateway.Gateway, window_s=TEMP_AGE_S)]},
        # no run history: Gradio's recorder keeps what was typed (a token field too) in the browser's storage; on a
        # public deployment no "Use via API" page either (the door still stands in front of every named event)
        run_history=False,
        footer_links=["gradio", "settings"] if policy().guards_routes else ["api", "gradio", "settings"],
    )
    return demo
