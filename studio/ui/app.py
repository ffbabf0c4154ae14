"""build_app(): the tabs in order, then the wiring that crosses tabs.

Handlers are thin: they turn widget values into a config (``forms.py``), call the engine, and
turn its answers into widget updates. Errors reach the page as one readable message
(``gr.Warning`` / ``gr.Error`` with the engine's own sentence), never a traceback.
"""

from __future__ import annotations

import hmac
import os
import shutil
from pathlib import Path

import gradio as gr

from ..config import ConfigError, StudioConfig
from ..engine import runs
from ..engine.jobs import Job
from . import judge
from .forms import Form, apply_preset
from .handlers import guard
from .state import Sessions
from .tabs import compare as compare_tab
from .tabs import data as data_tab
from .tabs import export as export_tab
from .tabs import model as model_tab
from .tabs import rate as rate_tab
from .tabs import train as train_tab

TABS = ("Data", "Model", "Train", "Compare", "Rate", "Export")



def build_app() -> gr.Blocks:
    sessions = Sessions()
    form = Form()
    with gr.Blocks(title="Fine-tuning studio", analytics_enabled=False) as demo:
        gr.Markdown("# Fine-tuning studio\n**Data → Model → Train → Compare → Rate → Export**: pick a dataset, a base "
                    "model and a method, press Start and watch the loss; then see whether the tuned model got "
                    "better, by metrics and by people.")
        key = gr.State(None)
        stored_key = gr.BrowserState(None, storage_key="studio-session")
        with gr.Tabs():
            with gr.Tab("Data"):
                d = data_tab.build(form)
            with gr.Tab("Model"):
                m = model_tab.build(form)
            with gr.Tab("Train"):
                t = train_tab.build()
            with gr.Tab("Compare") as compare_page:
                c = compare_tab.build(form)
            with gr.Tab("Rate") as rate_page:
                r = rate_tab.build()
            with gr.Tab("Export") as export_page:
                x = export_tab.build()
        _wire_session(demo, key, stored_key, sessions)
        _wire_data(form, d, sessions, key)
        _wire_model(demo, form, m)
        _wire_train(demo, form, t, sessions, key)
        judge.wire_compare(form, c, sessions, key, compare_page)
        judge.wire_rate(demo, form, r, sessions, key, rate_page)
        judge.wire_export(form, x, export_page, sessions, key)

    return demo


def _wire_session(demo, key, stored_key, sessions: Sessions) -> None:
    def init(stored):
        """A reloaded page keeps its key, so the timer finds the running job and redraws it."""
        k = stored or Sessions.new_key()
        sessions.get(k).drawn = -1
        return k, k

    demo.load(init, [stored_key], [key, stored_key], api_visibility="private")


def _wire_data(form: Form, d: data_tab.DataTab, sessions: Sessions, key) -> None:
    w = form.widgets
    check_inputs = [key, w["data.path"], w["data.format"], w["data.columns"], w["data.max_length"],
                    w["model.name"], w["method.objective"]]
    outputs = [d.report, d.preview, d.histogram]

    def uploaded(k, path, request: gr.Request):
        if not path:
            return gr.skip()
        return str(sessions.get(k, request).keep_upload(path))

    def sampled(k, name, request: gr.Request):
        if not name:
            return gr.skip()
        s = sessions.get(k, request)
        s.data_path = str(data_tab.SAMPLES / name)
        return s.data_path

    def check(k, path, fmt, columns, max_length, model, objective, request: gr.Request):
        if path and not sessions.get(k, request).allows(path):
            return "❌ Only your own uploads and the bundled samples can be read here.", None, None
        return data_tab.check(path, fmt, columns, max_length, model, objective)

    d.upload.upload(uploaded, [key, d.upload], [w["data.path"]], api_name="upload")
    d.sample.change(sampled, [key, d.sample], [w["data.path"]], api_name="use_sample")
    gr.on([w["data.path"].change, w["data.format"].input, w["data.columns"].submit, w["data.max_length"].release,
           w["model.name"].change, w["method.objective"].input],
          check, check_inputs, outputs, api_name="check_data", trigger_mode="always_last")


def _wire_model(demo, form: Form, m: model_tab.ModelTab) -> None:
    outputs = [m.estimate, m.yaml, m.cli, m.save]

    def describe(values: dict):
        try:
            return model_tab.describe(form.to_config(values))
        except (ConfigError, ValueError) as e:
            return f"**Setting to fix:** {e}", gr.skip(), gr.skip(), gr.skip()

    triggers = [c.change for c in form.components if c is not form.widgets["data.path"]]
    gr.on([demo.load, *triggers], describe, form.inputs, outputs, api_name="estimate", trigger_mode="always_last",
          show_progress="hidden")

    def preset(name, values: dict):
        if not name:
            raise gr.Error("Pick a preset first.")
        return form.values_of(apply_preset(form.to_config(values), name))

    m.apply_preset.click(lambda values: preset(values[m.preset], values), form.inputs | {m.preset}, form.components,
                         api_name="apply_preset")

    def load(path):
        if not path:
            return gr.skip()
        return form.values_of(StudioConfig.load(path))

    m.load.upload(guard(load), m.load, form.components, api_name="load_config")


def _wire_train(demo, form: Form, t: train_tab.TrainTab, sessions: Sessions, key) -> None:
    status_outputs = [t.status, t.progress, t.loss, t.system, t.log]

    def start(values: dict, request: gr.Request):
        s = sessions.get(values[key], request)
        if not sessions.training_allowed:
            raise gr.Error("Training is switched off on this deployment.", print_exception=False)
        if s.job is not None and not s.job.done:
            raise gr.Error("Your run is still going: stop it first.", print_exception=False)
        cfg = form.to_config(values)
        cfg.data.path = cfg.data.path or s.data_path
        if not cfg.data.path:
            raise gr.Error("Choose a dataset in the Data tab first.", print_exception=False)
        if not s.allows(cfg.data.path):
            raise gr.Error("Only your own uploads and the bundled samples can be used here.", print_exception=False)
        cfg.run_name = (values[t.run_name] or "").strip()
        s.job, s.drawn, s.announced = Job(cfg, owner=s.key).start(), -1, ""
        return train_tab.status_text(s.job.snapshot())

    t.start.click(guard(start), form.inputs | {key, t.run_name}, t.status, api_name="start")

    def stop(k, request: gr.Request):
        s = sessions.get(k, request)
        if s.job is None or s.job.done:
            return gr.skip()
        s.job.stop()
        return "Stopping after the current step…"

    t.stop.click(stop, [key], t.status, api_name="stop")

    def resume(k, picked, request: gr.Request):
        s = sessions.get(k, request)
        if s.job is not None and not s.job.done:
            raise gr.Error("Your run is still going.", print_exception=False)
        run_dir = runs.runs_root() / picked[0] if picked else (Path(s.job.snapshot()["run_dir"]) if s.job else None)
        if run_dir is None or runs.last_complete_checkpoint(run_dir) is None:
            raise gr.Error("Nothing to resume: stop a run first, or pick one with a checkpoint in Run history.",
                           print_exception=False)
        job = Job(StudioConfig.load(run_dir / "config.yaml"), run_dir, resume=True, owner=s.key)
        s.job, s.drawn, s.announced = job.start(), -1, ""
        return train_tab.status_text(s.job.snapshot())

    t.resume.click(guard(resume), [key, t.pick], t.status, api_name="resume")

    def poll(k, request: gr.Request):
        s = sessions.get(k, request)
        if s.job is None:
            return (gr.skip(),) * len(status_outputs)
        snap = s.job.snapshot()
        if s.job.done and s.announced != snap["state"]:
            s.announced = snap["state"]
            toast = gr.Warning if snap["state"] in ("failed", "diverged") else gr.Info
            toast(train_tab.plain(train_tab.status_text(snap)))
        n = len(snap["metrics"])
        figures = train_tab.charts(snap["metrics"]) if n != s.drawn else (gr.skip(), gr.skip())
        s.drawn = n
        return (train_tab.status_text(snap), train_tab.progress_html(snap), *figures, train_tab.log_text(snap))

    t.timer.tick(poll, [key], status_outputs, api_name="status", show_progress="hidden", concurrency_limit=None)

    def history(k, request: gr.Request):
        rows, names = train_tab.history_rows(sessions.get(k, request).key)
        return rows, gr.CheckboxGroup(choices=names)

    t.refresh.click(history, [key], [t.history, t.pick], api_name="runs")
    demo.load(history, [key], [t.history, t.pick], api_visibility="private")

    def operator(token: str) -> None:
        expected = os.environ.get("STUDIO_OPERATOR_TOKEN", "")
        if not expected or not hmac.compare_digest(expected.encode(), (token or "").encode()):
            raise gr.Error("Operator token required (set STUDIO_OPERATOR_TOKEN on the server).", print_exception=False)

    def stop_all(token):
        operator(token)
        jobs = [s.job for s in sessions.all() if s.job is not None and not s.job.done]
        for job in jobs:
            job.stop()
        return f"Asked {len(jobs)} job(s) to stop."

    def delete(token, names):
        operator(token)
        root, gone = runs.runs_root().resolve(), []
        busy = {str(s.job.run_dir) for s in sessions.all() if s.job is not None and not s.job.done}
        for name in names or []:
            path = (root / name).resolve()
            if path.parent == root and path.is_dir() and str(path) not in busy:
                shutil.rmtree(path)
                gone.append(name)
        return f"Deleted {len(gone)} run(s)." + ("" if len(gone) == len(names or []) else " Running runs are kept.")

    def training(token, allowed):
        operator(token)
        sessions.training_allowed = bool(allowed)
        return "Training is allowed." if allowed else "Training is switched off."

    t.op_stop.click(guard(stop_all), t.op_token, t.op_status, api_name="operator_stop_all")
    t.op_delete.click(guard(delete), [t.op_token, t.pick], t.op_status, api_name="operator_delete_runs")
    t.op_training.input(guard(training), [t.op_token, t.op_training], t.op_status, api_name="operator_training")
    t.pick.change(train_tab.compare, t.pick, [t.overlay, t.diff], api_name="compare_runs")
