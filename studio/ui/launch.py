"""Launch the app with the studio's secure defaults (DESIGN.md, RELIABILITY.md): analytics off, SSR off,
upload size capped, errors shown as friendly messages only, bound to 127.0.0.1 unless STUDIO_HOST says
otherwise (0.0.0.0 on a Space), password auth when STUDIO_AUTH=user:password[,user:password] is set, file
routes limited to Gradio's cache and the export folder (wherever STUDIO_HOME is, /data/studio included);
in public mode uploads older than their lifetime are removed at start and all of them at shutdown."""

from __future__ import annotations

import atexit
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

MAX_UPLOAD = os.environ.get("STUDIO_MAX_UPLOAD", "200mb")


def users(spec: str | None) -> list[tuple[str, str]] | None:
    """STUDIO_AUTH: ``user:password`` pairs separated by commas (Gradio's password login)."""
    pairs = [tuple(p.split(":", 1)) for p in (spec or "").split(",") if ":" in p]
    return pairs or None


def launch(host: str | None = None, port: int | None = None, block: bool = True, nice: int | None = None):
    """``nice``: how far the web server lowers its own CPU priority below training's (default
    ``STUDIO_SERVER_NICE``, 5, for the server that ``python app.py`` runs; 0 for an embedded one), so that a
    crowd of visitors slows the pages, not the run. Training workers keep the normal priority."""
    from studio.engine import budget
    from studio.engine.export.exporters import export_root
    from studio.engine.train import worker
    from studio.settings import public_mode, quiet_libraries
    from studio.ui.app import build_app

    quiet_libraries()
    nice = int(os.environ.get("STUDIO_SERVER_NICE", "5")) if nice is None and block else (nice or 0)
    if nice > 0 and hasattr(os, "nice"):
        worker.prestart()
        os.nice(nice)  # this thread and every thread it starts from now on: the web server's, not the workers'
    if public_mode():
        budget.clean_uploads()  # what an earlier run of the server left
        atexit.register(budget.clean_uploads, 0)  # and at shutdown, everything
    demo = build_app().queue(default_concurrency_limit=1, max_size=64)
    demo.launch(
        server_name=host or os.environ.get("STUDIO_HOST", "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"),
        server_port=port or int(os.environ.get("STUDIO_PORT", 7860)),
        auth=users(os.environ.get("STUDIO_AUTH")), allowed_paths=[str(export_root())],
        max_file_size=MAX_UPLOAD, ssr_mode=False, show_error=False, share=False, prevent_thread_lock=not block,
        quiet=not block,
    )
    return demo
