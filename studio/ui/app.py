"""build_app(): the tabs in order, then the wiring that crosses tabs.

Handlers are thin: they turn widget values into a config (``forms.py``), call the engine, and
turn its answers into widget updates. Errors reach the page as one readable message
(``gr.Warning`` / ``gr.Error`` with the engine's own sentence), never a traceback.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import shutil
from pathlib import Path

import gradio as gr

from ..config import ConfigError, StudioConfig
from ..engine import runs
from ..engine.errors import StudioError
from ..engine.jobs import Job
from .forms import Form, apply_preset
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
        gr.Markdown("# Fine-tuning studio\n**Data → Model → Train → Compare → Rate**: pick a dataset, a base "
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
        _wire_compare(form, c, sessions, key, compare_page)
        _wire_rate(demo, form, r, sessions, key, rate_page)
        _wire_export(form, x, export_page, sessions, key)

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

    m.load.upload(_guard(load), m.load, form.components, api_name="load_config")


def _guard(fn):
    """Run a handler; the studio's own errors become one readable message in the page."""
    @functools.wraps(fn)  # keeps the signature, which Gradio reads to pass gr.Request
    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StudioError, ConfigError, ValueError) as e:
            raise gr.Error(str(e), print_exception=False) from None
    return wrapped


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

    t.start.click(_guard(start), form.inputs | {key, t.run_name}, t.status, api_name="start")

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

    t.resume.click(_guard(resume), [key, t.pick], t.status, api_name="resume")

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

    t.op_stop.click(_guard(stop_all), t.op_token, t.op_status, api_name="operator_stop_all")
    t.op_delete.click(_guard(delete), [t.op_token, t.pick], t.op_status, api_name="operator_delete_runs")
    t.op_training.input(_guard(training), [t.op_token, t.op_training], t.op_status, api_name="operator_training")
    t.pick.change(train_tab.compare, t.pick, [t.overlay, t.diff], api_name="compare_runs")


def _wire_compare(form: Form, c: compare_tab.CompareTab, sessions: Sessions, key, page) -> None:
    from ..engine.evaluate import evaluate_run
    from ..engine.jobs import exclusive
    from ..engine.prompts import prompt_effectiveness

    def runs_update(k, request: gr.Request):
        return gr.Dropdown(choices=compare_tab.trained_runs(sessions.get(k, request).key))

    c.refresh.click(runs_update, key, c.run, api_visibility="private")
    page.select(runs_update, key, c.run, api_visibility="private")
    c.source.change(lambda s: (gr.File(visible=s == compare_tab.SOURCES[1]),
                               gr.Textbox(visible=s == compare_tab.SOURCES[2])), c.source, [c.file, c.prompts],
                    api_visibility="private")
    def results_of(k, run_name, request: gr.Request):
        found = compare_tab.saved_results(run_name, sessions.get(k, request).key)
        return gr.Dropdown(choices=found, value=next(iter(found), None))

    c.run.change(results_of, [key, c.run], c.saved, api_visibility="private")

    def run_compare(values: dict, request: gr.Request, progress=gr.Progress()):
        run_name, source = values[c.run], values[c.source]
        owner = sessions.get(values[key], request).key
        if not compare_tab.run_dir(run_name, owner):
            raise gr.Error("Pick a trained run first (train one in the Train tab).", print_exception=False)
        settings = form.to_config(values).eval
        data = prompts = None
        if source == compare_tab.SOURCES[1]:
            data = values[c.file]
            if not data:
                raise gr.Error("Upload an evaluation file first.", print_exception=False)
            if not sessions.get(values[key], request).allows(data):
                data = str(sessions.get(values[key], request).keep_upload(data))
        elif source == compare_tab.SOURCES[2]:
            prompts = [p for p in (values[c.prompts] or "").splitlines() if p.strip()]
            if not prompts:
                raise gr.Error("Type at least one prompt.", print_exception=False)
        progress(0, desc="waiting for the device")
        with exclusive():
            s = evaluate_run(compare_tab.run_dir(run_name, owner), data=data, prompts=prompts, limit=settings.limit,
                             settings=settings, progress=lambda msg: progress(None, desc=msg))
        choices = compare_tab.saved_results(run_name, owner)
        return (gr.Dropdown(choices=choices, value=Path(s["dir"]).name),
                f"Done: {s['examples']} examples in {s['generation_s']} s of generation.")

    c.go.click(_guard(run_compare), form.inputs | {key, c.run, c.source, c.file, c.prompts}, [c.saved, c.status],
               api_name="compare")
    def measure(values: dict, request: gr.Request, progress=gr.Progress()):
        run = compare_tab.run_dir(values[c.run], sessions.get(values[key], request).key)
        if not run:
            raise gr.Error("Pick a trained run first.", print_exception=False)
        settings = form.to_config(values).eval
        templates = [t.replace("\\n", "\n") for t in (values[c.pe_templates] or "").splitlines() if t.strip()]
        k = int(values[c.pe_k] or 1)
        settings.do_sample = settings.do_sample or k > 1
        progress(0, desc="waiting for the device")
        with exclusive():
            result = prompt_effectiveness(run, templates, k=k, limit=settings.limit, settings=settings,
                                          model=values[c.pe_model])
        return compare_tab.effectiveness_view(result)

    c.pe_go.click(_guard(measure), form.inputs | {key, c.run, c.pe_templates, c.pe_k, c.pe_model},
                  [c.pe_table, c.pe_summary], api_name="prompt_effectiveness")
    def show(k, run_name, result, metric, request: gr.Request):
        return compare_tab.show(run_name, result, metric, sessions.get(k, request).key)

    gr.on([c.saved.change, c.metric.change], show, [key, c.run, c.saved, c.metric],
          [c.summary, c.bars, c.scatter, c.table, c.worse], api_name="show_comparison")


def _wire_rate(demo, form: Form, r: rate_tab.RateTab, sessions: Sessions, key, page) -> None:
    import random
    import time

    from ..engine.models import public_mode
    from ..engine.ratings import default_db
    from ..engine.ratings_io import export_file, import_file, preference_rows

    db = default_db()
    rng = random.Random()
    demo.load(None, None, None, js=rate_tab.KEYS_JS)  # keys 1-5 fill the Likert dimensions
    if public_mode():
        gr.LoginButton()

    def who(typed: str, profile: gr.OAuthProfile | None) -> str:
        if public_mode():
            if profile is None:
                raise gr.Error("Log in with Hugging Face to rate.", print_exception=False)
            return profile.username
        if not (typed or "").strip():
            raise gr.Error("Type your name first: every rating records its rater.", print_exception=False)
        return typed.strip()

    def runs_with_results(k, request: gr.Request):
        owner = sessions.get(k, request).key
        return gr.Dropdown(choices=[n for n in compare_tab.trained_runs(owner) if compare_tab.saved_results(n, owner)])

    page.select(runs_with_results, key, r.run, api_visibility="private")
    page.select(lambda: rate_tab.pool_text(db), None, r.pool, api_visibility="private")
    def results_of(k, run_name, request: gr.Request):
        found = compare_tab.saved_results(run_name, sessions.get(k, request).key)
        return gr.Dropdown(choices=found, value=next(iter(found), None))

    r.run.change(results_of, [key, r.run], r.result, api_visibility="private")

    def add(k, run_name, result, request: gr.Request):
        n = rate_tab.add_comparison(db, run_name, result, sessions.get(k, request).key)
        gr.Info(f"Added {n} items.")
        return rate_tab.pool_text(db)

    r.add.click(_guard(add), [key, r.run, r.result], r.pool, api_name="rate_add_comparison")

    def imported(path):
        if not path:
            return gr.skip()
        counts = import_file(db, path)
        gr.Info(f"Imported {counts['pairwise']} votes and {counts['likert']} ratings.")
        return rate_tab.pool_text(db)

    r.upload.upload(_guard(imported), r.upload, r.pool, api_name="rate_import")
    pair_out = [r.prompt, r.out_a, r.out_b, r.reveal]
    # The pair and the answer on screen live in the server-side session: the page never holds the
    # identities it must not show, and API clients keep them between calls too.

    def show_pair(k, typed, reveal, request, profile):
        s = sessions.get(k, request)
        s.pair = rate_tab.pick_pair(db, who(typed, profile), rng)
        if s.pair is None:
            return "Nothing left to judge: add items from a comparison, or wait for more.", "", "", reveal
        return (f"**Prompt:** {s.pair['prompt']}", f"**A**\n\n{s.pair['left_text']}",
                f"**B**\n\n{s.pair['right_text']}", reveal)

    def next_pair(k, typed, request: gr.Request, profile: gr.OAuthProfile | None = None):
        return show_pair(k, typed, "", request, profile)

    r.next_pair.click(_guard(next_pair), [key, r.rater], pair_out, api_name="rate_next_pair")
    for button, choice in zip(r.votes, ("a", "b", "tie", "bothbad", "skip")):
        def vote(k, typed, request: gr.Request, profile: gr.OAuthProfile | None = None, choice=choice):
            rater, pair = who(typed, profile), sessions.get(k, request).pair
            if not pair:
                raise gr.Error("Show a pair first.", print_exception=False)
            if choice == "skip":
                return show_pair(k, typed, "Skipped.", request, profile)
            db.vote(pair["item"], pair["left"], pair["right"], choice, rater, left=pair["left"],
                    client_key=pair["key"])
            said = {"a": "A is better", "b": "B is better", "tie": "a tie", "bothbad": "both bad"}[choice]
            return show_pair(k, typed, f"Recorded: {said}. A was **{pair['left']}**, B was **{pair['right']}**.",
                             request, profile)

        # SQLite serialises the writes itself (BEGIN IMMEDIATE): raters need not queue behind each other.
        button.click(_guard(vote), [key, r.rater], pair_out, api_name=f"rate_vote_{choice}", trigger_mode="once",
                     concurrency_limit=4, concurrency_id="ratings")
    one_out = [r.one_prompt, r.one_output, *r.dims, r.comment, r.progress]

    def show_one(k, typed, request, profile):
        s = sessions.get(k, request)
        s.answer, done, total = rate_tab.pick_one(db, who(typed, profile), rng)
        progress = f"{done} of {total} rated"
        if s.answer is None:
            return ("Nothing left to rate.", "", *[None] * len(r.dims), "", progress)
        return (f"**Prompt:** {s.answer['prompt']}", s.answer["text"], *[None] * len(r.dims), "", progress)

    def next_one(k, typed, request: gr.Request, profile: gr.OAuthProfile | None = None):
        return show_one(k, typed, request, profile)

    r.next_one.click(_guard(next_one), [key, r.rater], one_out, api_name="rate_next_answer")

    def submit(k, typed, quality, relevance, coherence, helpfulness, comment, request: gr.Request,
               profile: gr.OAuthProfile | None = None):
        scores = [quality, relevance, coherence, helpfulness]
        one = sessions.get(k, request).answer
        if not one:
            raise gr.Error("Show an answer first.", print_exception=False)
        if any(s is None for s in scores):
            raise gr.Error("Rate all four dimensions (keys 1-5 work).", print_exception=False)
        rater = who(typed, profile)
        db.rate(one["item"], one["system"], rater, dict(zip(rate_tab.DIMENSIONS, map(int, scores))), comment or "")
        return show_one(k, typed, request, profile)

    r.submit.click(_guard(submit), [key, r.rater, *r.dims, r.comment], one_out, api_name="rate_submit",
                   trigger_mode="once", concurrency_limit=4, concurrency_id="ratings")
    r.refresh.click(lambda: rate_tab.results(db), None, [r.board, r.likert, r.agree, r.versus],
                    api_name="rate_results")

    def export():
        path = rate_tab.export_dir() / f"ratings-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        export_file(db, path)
        return str(path)

    r.export.click(_guard(export), None, r.export_file, api_name="rate_export")

    def to_dpo():
        rows = preference_rows(db)
        if not rows:
            raise gr.Error("No decided votes yet (ties teach DPO nothing).", print_exception=False)
        path = rate_tab.export_dir() / f"preferences-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        runs.write_atomic(path, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
        gr.Info(f"{len(rows)} preference pairs set as the training data with method dpo: press Start in Train.")
        return str(path), "auto", "dpo"

    r.to_dpo.click(_guard(to_dpo), None, [form.widgets["data.path"], form.widgets["data.format"],
                                          form.widgets["method.kind"]], api_name="rate_to_dpo")


def _wire_export(form: Form, x: export_tab.ExportTab, page, sessions: Sessions, key) -> None:
    from ..engine import export as E
    from ..engine import human
    from ..engine.jobs import exclusive
    from ..engine.ratings import default_db

    def runs_update(k, request: gr.Request):
        return gr.Dropdown(choices=compare_tab.trained_runs(sessions.get(k, request).key))

    page.select(runs_update, key, x.run, api_visibility="private")

    def adapter(k, name, request: gr.Request):
        owner = sessions.get(k, request).key
        return export_tab.adapter_zip(name, human.leaderboard(default_db().votes()) or None, owner)

    def merged(k, name, request: gr.Request):
        with exclusive():
            r = E.export_merged(export_tab.checked(name, sessions.get(k, request).key))
        diff = r["max_abs_logit_diff"]
        return [], f"Merged model in `{r['path']}`; max |logit difference| vs the adapter: {diff:.2e}."

    def quantize(k, name, request: gr.Request, progress=gr.Progress()):
        progress(0, desc="merging, quantizing and measuring")
        with exclusive():
            rows = E.quantization_table(export_tab.checked(name, sessions.get(k, request).key))
        return export_tab.quant_frame(rows), "Quantized exports: " + ", ".join(f"`{r['path']}`" for r in rows[1:])

    def push(k, name, repo, token, private, request: gr.Request):
        if not (repo or "").strip():
            raise gr.Error("Type a repo id first.", print_exception=False)
        zip_path = E.export_adapter(export_tab.checked(name, sessions.get(k, request).key))
        return f"Pushed: {E.push_to_hub(zip_path, repo.strip(), token or None, private)}"

    x.adapter.click(_guard(adapter), [key, x.run], [x.files, x.status], api_name="export_adapter")
    x.merged.click(_guard(merged), [key, x.run], [x.files, x.status], api_name="export_merged")
    x.quantize.click(_guard(quantize), [key, x.run], [x.table, x.status], api_name="export_quantized")
    x.push.click(_guard(push), [key, x.run, x.repo, x.token, x.private], x.status, api_name="export_push")
