"""Data tab: upload or pick a sample, see the detected format, problems by row, the first examples
as the model sees them (trained tokens highlighted) and the token-length histogram."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ...config import ConfigError
from ...engine.check import inspect_data
from ...engine.errors import StudioError
from ...engine.readers import SUFFIXES
from ..charts import length_histogram
from ..forms import Form, from_widget
from ..state import SAMPLES

FILE_TYPES = sorted(SUFFIXES)
PREVIEW = 3
COLORS = {"trained": "#3cb371", "prompt (masked)": "#d0d0d0"}


@dataclass
class DataTab:
    upload: gr.File
    sample: gr.Dropdown
    report: gr.Markdown
    preview: gr.HighlightedText
    histogram: gr.Plot


def build(form: Form) -> DataTab:
    gr.Markdown("### 1. Choose your data\nUpload a CSV, JSON, JSONL, Parquet or TXT file, or start with a sample. "
                "The format is detected; the preview shows each example exactly as the model will see it.")
    with gr.Row():
        upload = gr.File(label="Upload a dataset", file_types=FILE_TYPES, type="filepath", elem_id="data-upload",
                         scale=2)
        with gr.Column(scale=1):
            sample = gr.Dropdown(choices=sorted(p.name for p in SAMPLES.iterdir() if p.suffix in SUFFIXES),
                                 value=None, label="…or use a sample", elem_id="data-sample")
            form.add("data.path", label="dataset file", interactive=False)
    with gr.Row():
        form.add("data.format")
        form.add("data.columns", placeholder="instruction=question, output=answer")
    with gr.Row():
        form.add("data.max_length")
        form.add("data.val_size")
    with gr.Accordion("More data settings", open=False):
        with gr.Row():
            form.add("data.limit")
            form.add("data.system_prompt")
    report = gr.Markdown("No dataset yet.", elem_id="data-report")
    preview = gr.HighlightedText(label="As the model sees it (green: trained, grey: masked prompt)",
                                 color_map=COLORS, show_legend=True, combine_adjacent=True, elem_id="data-preview")
    histogram = gr.Plot(label="Token lengths", elem_id="data-histogram")
    return DataTab(upload, sample, report, preview, histogram)


def render_report(r: dict) -> str:
    ln = r["lengths"]
    lines = [f"**{r['file']}**: detected **{r['format']}** ({r['objective']} objective): "
             f"{r['records']} records, {r['examples']} usable",
             f"Tokens ({r['model']}): min {ln['min']}, median {ln['median']}, p95 {ln['p95']}, max {ln['max']}; "
             f"**{ln['over_max_length']}** over max_length {r['max_length']} (truncated)",
             f"Empty rows dropped: {r['empty']}; duplicate rows: {r['duplicates']}; columns: {', '.join(r['columns'])}"]
    lines += [f"- note: {n}" for n in r["notices"]]
    if r["problems"]:
        lines.append(f"\n**{len(r['problems'])} problem(s)** (fix them before training):")
        lines += [f"- {p}" for p in r["problems"][:20]]
    else:
        lines.append("\n✅ Ready to train: next, pick a base model and method in the **Model** tab, or go straight to "
                     "**Train** with the defaults (LoRA on studio-tiny).")
    return "\n\n".join(lines[:3]) + "\n" + "\n".join(lines[3:])


def check(path: str, fmt: str, columns: str, max_length, model: str, objective: str):
    """(report markdown, preview segments, histogram) for the current data settings."""
    if not path:
        return "No dataset yet: upload a file or pick a sample.", None, None
    try:
        ins = inspect_data(path, fmt, from_widget("data.columns", columns), model or "studio-tiny",
                           int(max_length), objective, preview=PREVIEW)
    except (StudioError, ConfigError, ValueError) as e:
        gr.Warning(str(e))
        return f"❌ {e}", None, None
    shown: list[tuple[str, str | None]] = []
    for i, segs in enumerate(ins.preview):
        shown.append((f"── example {i + 1} ──\n", None))
        shown += [(text, "trained" if trained else "prompt (masked)") for text, trained in segs]
        shown.append(("\n", None))
    return render_report(ins.report), shown, length_histogram(ins.lengths, int(max_length))
