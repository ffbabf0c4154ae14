"""Tabs whose issue has not landed yet say what is coming, and nothing else."""

import gradio as gr

COMING = {
    "Export": "One-click adapter zip with a model card; merged and quantized exports; push to the hub.",
}


def build(name: str) -> gr.Markdown:
    return gr.Markdown(f"### Coming soon\n{COMING[name]}")
