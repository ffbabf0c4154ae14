"""The studio's entry point, locally and as a Hugging Face Space: build the UI, launch it.

Until the UI issue lands this shows the engine's status and the CLI quickstart; the tabs follow.
Secure defaults (DESIGN.md, RELIABILITY.md): analytics off, SSR off, upload size capped,
bound to 127.0.0.1 unless told otherwise, password auth when STUDIO_AUTH=user:password is set.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

MAX_UPLOAD = os.environ.get("STUDIO_MAX_UPLOAD", "200mb")
TABS = ("Data", "Model", "Train", "Compare", "Rate", "Export")


def build_app():
    import gradio as gr

    with gr.Blocks(title="Fine-tuning studio", analytics_enabled=False) as demo:
        gr.Markdown("# Fine-tuning studio\nData in, a base model and a method chosen, training watched, "
                    "the result judged by metrics and by people.")
        with gr.Tabs():
            for name in TABS:
                with gr.Tab(name):
                    gr.Markdown(f"The {name} tab is coming. Meanwhile the engine works from the command line:\n\n"
                                "```\npython -m studio check-data assets/samples/instructions.json\n"
                                "python -m studio train assets/configs/quickstart.yaml\n```")
    return demo


def launch(host: str | None = None, port: int | None = None) -> None:
    auth = os.environ.get("STUDIO_AUTH")
    build_app().queue(default_concurrency_limit=1, max_size=64).launch(
        server_name=host or os.environ.get("STUDIO_HOST", "127.0.0.1"),
        server_port=port or int(os.environ.get("STUDIO_PORT", 7860)),
        auth=tuple(auth.split(":", 1)) if auth and ":" in auth else None,
        max_file_size=MAX_UPLOAD, ssr_mode=False, show_error=False, share=False,
    )


if __name__ == "__main__":
    launch()
