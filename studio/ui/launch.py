"""Launch the app with the studio's secure defaults (DESIGN.md, RELIABILITY.md): analytics off, SSR off,
upload size capped, errors shown as friendly messages only, bound to 127.0.0.1 unless STUDIO_HOST says
otherwise (0.0.0.0 on a Space), password auth when STUDIO_AUTH=user:password is set."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

MAX_UPLOAD = os.environ.get("STUDIO_MAX_UPLOAD", "200mb")


def launch(host: str | None = None, port: int | None = None, block: bool = True):
    from studio.settings import quiet_libraries
    from studio.ui.app import build_app

    quiet_libraries()
    auth = os.environ.get("STUDIO_AUTH")
    demo = build_app().queue(default_concurrency_limit=1, max_size=64)
    demo.launch(
        server_name=host or os.environ.get("STUDIO_HOST", "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"),
        server_port=port or int(os.environ.get("STUDIO_PORT", 7860)),
        auth=tuple(auth.split(":", 1)) if auth and ":" in auth else None,
        max_file_size=MAX_UPLOAD, ssr_mode=False, show_error=False, share=False, prevent_thread_lock=not block,
        quiet=not block,
    )
    return demo
