"""Data tab: upload or pick a sample, see the detected format, problems by row, the first examples
as the model sees them (trained tokens highlighted) and the token-length histogram."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.config import ConfigError
from studio.engine import budget, gate
from studio.engine.data.check import inspect_data, report_lines
from studio.engine.data.readers import SUFFIXES
from studio.engine.errors import FormatUnknown, StudioError
from studio.engine.isolate import CHECK_MEMORY_MB, CHECK_SECONDS
from studio.policy import policy
from studio.settings import SAMPLES
from studio.ui.charts import length_histogram
from studio.ui.forms import Form, from_widget
from studio.ui.handlers import CHECK_POOL, guard, safe_md, scrub
from studio.ui.state import Context

FILE_TYPES = sorted(SUFFIXES)
PREVIEW = 3
COLORS = {"trained": "#3cb371", "prompt (masked)": "#d0d0d0"}


@dataclass
class DataTab:
    page: gr.Tab
    upload: gr.File
    sample: gr.Dropdown
    report: gr.Markdown
    preview: gr.HighlightedText
    histogram: gr.Plot
    map_prompt: gr.Dropdown
    map_answer: gr.Dropdown


def build(form: Form) -> DataTab:
    with gr.Tab("Data") as page:
        gr.Markdown("### 1. Choose your data\nUpload a CSV, JSON, JSONL, Parquet or TXT file, or start with a "
                    "sample. The format is detected; the preview shows each example exactly as the model will see it.")
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
        with gr.Row():  # shown when the format cannot be told: the file's own columns to choose from
            map_prompt = gr.Dropdown(label="Prompt column", choices=[], visible=False, elem_id="data-map-prompt")
            map_answer = gr.Dropdown(label="Answer column", choices=[], visible=False, elem_id="data-map-answer")
        with gr.Row():
            form.add("data.max_length")
            form.add("data.val_size")
        with gr.Accordion("More data settings", open=False):
            with gr.Row():
                form.add("data.limit")
                form.add("data.system_prompt")
            with gr.Row():
                form.add("data.val_path", placeholder="a path, or empty to split the dataset")
                form.add("data.pack_documents")
        report = gr.Markdown("No dataset yet.", elem_id="data-report")
        preview = gr.HighlightedText(label="As the model sees it (green: trained, grey: masked prompt)",
                                     color_map=COLORS, show_legend=True, combine_adjacent=True, elem_id="data-preview")
        histogram = gr.Plot(label="Token lengths", elem_id="data-histogram")
    return DataTab(page, upload, sample, report, preview, histogram, map_prompt, map_answer)


def render_report(r: dict) -> str:
    head, *rest = (safe_md(line, literal=True) for line in report_lines(r))  # names and cells are the user's
    lines = [f"**{head}**", *rest[:2], *(f"- {line}" for line in rest[2:])]
    if r["problems"]:
        lines.append(f"\n**{len(r['problems'])} problem(s)** (fix them before training).")
    else:
        lines.append("\n✓ Ready to train: next, pick a base model and method in the **Model** tab, or go straight to "
                     "**Train** with the defaults.")
    return "\n\n".join(lines[:3]) + "\n" + "\n".join(lines[3:])


NO_MAPPING = (gr.Dropdown(visible=False), gr.Dropdown(visible=False))


def check(path: str, fmt: str, columns: str, max_length, model: str, objective: str):
    """(report markdown, preview segments, histogram, prompt column, answer column) for the current data settings.
    The gate decides what the visitor may read; on a public deployment the file is read in a child process with
    time and memory limits (a visitor's Stop ends it too), several visitors' checks side by side. A file whose
    format cannot be told offers its own columns for the prompt and the answer."""
    if not path:
        return "No dataset yet: upload a file or pick a sample.", None, None, *NO_MAPPING
    try:
        args = (gate.data_file(path), fmt, from_widget("data.columns", columns), model or "studio-tiny",
                int(max_length), objective, PREVIEW)
        gate.check_model_name(model or "studio-tiny")
        ins = gate.device_job(inspect_data, *args, device=False, seconds=CHECK_SECONDS, memory_mb=CHECK_MEMORY_MB,
                              what="the data check")
    except FormatUnknown as e:
        choices = e.columns
        return (f"✗ {safe_md(scrub(str(e)), literal=True)}", None, None,
                gr.Dropdown(choices=choices, value=None, visible=True),
                gr.Dropdown(choices=choices, value=None, visible=True))
    except (StudioError, ConfigError, ValueError) as e:
        gr.Warning(scrub(str(e)))
        return f"✗ {safe_md(scrub(str(e)), literal=True)}", None, None, *NO_MAPPING
    shown: list[tuple[str, str | None]] = []
    for i, segs in enumerate(ins.preview):
        shown.append((f"── example {i + 1} ──\n", None))
        shown += [(text, "trained" if trained else "prompt (masked)") for text, trained in segs]
        shown.append(("\n", None))
    return (render_report(ins.report), shown, length_histogram(ins.lengths, int(max_length)),
            gr.skip() if fmt == "alpaca" and columns else NO_MAPPING[0], gr.skip() if fmt == "alpaca" and columns
            else NO_MAPPING[1])


class Handlers:
    def __init__(self, t: DataTab, ctx: Context):
        self.t, self.ctx = t, ctx

    def uploaded(self, k, path, request: gr.Request):
        """A new file starts from detection: the last file's format and mapping do not stick to it, and the
        sample picker lets go of the last sample (picking it again then loads it again)."""
        if not path:
            return (gr.skip(),) * 4
        budget.clean_uploads()
        s = self.ctx.session(k, request)
        s.data_path = str(s.keep_upload(path))  # the dataset (Compare's evaluation file is kept, not made one)
        return policy().shown_path(s.data_path), "auto", "", None

    def sampled(self, k, name, request: gr.Request):
        if not name:
            return (gr.skip(),) * 3
        s = self.ctx.session(k, request)
        s.data_path = str(SAMPLES / name)
        return policy().shown_path(s.data_path), "auto", ""

    def mapped(self, k, path, prompt, answer, max_length, model, objective, request: gr.Request):
        """Both columns chosen: the file reads as prompt -> answer (alpaca with that mapping), checked at once."""
        self.ctx.session(k, request)
        if not (prompt and answer):
            return (gr.skip(),) * 5
        columns = f"instruction={prompt}, output={answer}"
        return ("alpaca", columns, *check(path, "alpaca", columns, max_length, model, objective)[:3])

    def check(self, k, path, fmt, columns, max_length, model, objective, request: gr.Request):
        self.ctx.session(k, request)
        return check(path, fmt, columns, max_length, model, objective)


def wire(t: DataTab, ctx: Context) -> None:
    h, w = Handlers(t, ctx), ctx.form.widgets
    t.upload.upload(guard(h.uploaded), [ctx.key, t.upload], [w["data.path"], w["data.format"], w["data.columns"],
                                                             t.sample], api_name="upload")
    t.sample.change(h.sampled, [ctx.key, t.sample], [w["data.path"], w["data.format"], w["data.columns"]],
                    api_name="use_sample")
    gr.on([t.map_prompt.input, t.map_answer.input], guard(h.mapped),
          [ctx.key, w["data.path"], t.map_prompt, t.map_answer, w["data.max_length"], w["model.name"],
           w["method.objective"]], [w["data.format"], w["data.columns"], t.report, t.preview, t.histogram],
          api_name="map_columns")
    gr.on([w["data.path"].change, w["data.format"].input, w["data.columns"].submit, w["data.max_length"].release,
           w["model.name"].change, w["method.objective"].input],
          h.check, [ctx.key, w["data.path"], w["data.format"], w["data.columns"], w["data.max_length"],
                    w["model.name"], w["method.objective"]],
          [t.report, t.preview, t.histogram, t.map_prompt, t.map_answer], api_name="check_data",
          trigger_mode="always_last",
          concurrency_limit=CHECK_POOL, concurrency_id="data-checks")
