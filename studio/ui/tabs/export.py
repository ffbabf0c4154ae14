"""Export tab: the adapter as a zip with its model card (one click), a merged model, quantized
models with their size / speed / perplexity table, a push to the hub, and the multi-GPU command."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import pandas as pd

from ...engine import export as E
from .compare import run_dir, trained_runs


@dataclass
class ExportTab:
    run: gr.Dropdown
    adapter: gr.Button
    merged: gr.Button
    quantize: gr.Button
    files: gr.File
    status: gr.Markdown
    table: gr.Dataframe
    repo: gr.Textbox
    token: gr.Textbox
    private: gr.Checkbox
    push: gr.Button


def build() -> ExportTab:
    gr.Markdown("### 6. Export\nThe adapter as a zip that loads with plain `transformers` + `peft`, with a model "
                "card carrying the config, the evaluation and the human leaderboard.")
    run = gr.Dropdown(choices=trained_runs(), label="Run", allow_custom_value=True, elem_id="export-run")
    with gr.Row():
        adapter = gr.Button("Download adapter (zip)", variant="primary", elem_id="export-adapter")
        merged = gr.Button("Merge into the base", elem_id="export-merged")
        quantize = gr.Button("Quantize (8-bit, 4-bit) and compare", elem_id="export-quantize")
    files = gr.File(label="Exported files", interactive=False, file_count="multiple", elem_id="export-files")
    status = gr.Markdown(elem_id="export-status")
    table = gr.Dataframe(label="Quantization: size, speed, perplexity on the run's eval set", interactive=False)
    with gr.Accordion("Push to the Hugging Face Hub", open=False):
        with gr.Row():
            repo = gr.Textbox(label="Repo id", placeholder="you/my-adapter")
            token = gr.Textbox(label="Token (or set HF_TOKEN)", type="password")
            private = gr.Checkbox(True, label="Private")
        push = gr.Button("Push the adapter zip's contents")
    return ExportTab(run, adapter, merged, quantize, files, status, table, repo, token, private, push)


def checked(name: str, owner: str | None = None):
    path = run_dir(name, owner)
    if path is None:
        raise ValueError("Pick a trained run first.")
    return path


def quant_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([[r["export"], round(r["size_mb"], 2), round(r["tokens_per_s"]), round(r["perplexity"], 4)]
                         for r in rows], columns=["export", "size (MB)", "generation tokens/s", "perplexity"])


def adapter_zip(name: str, leaderboard, owner: str | None = None) -> tuple[list[str], str]:
    path = E.export_adapter(checked(name, owner), leaderboard=leaderboard)
    return [str(path)], f"Adapter zip written to `{path}`."
