"""The wiring of the judging tabs: Compare, Rate and Export (the first three are in ``app.py``).

Each handler is thin: widget values in, an engine call, widget updates out; a visitor's runs are
looked up through their session key, so a public deployment shows no one else's.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from ..engine import runs
from ..engine.export import export_root
from .forms import Form
from .handlers import guard
from .state import Sessions
from .tabs import compare as compare_tab
from .tabs import export as export_tab
from .tabs import rate as rate_tab


def wire_compare(form: Form, c: compare_tab.CompareTab, sessions: Sessions, key, page) -> None:
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

    c.go.click(guard(run_compare), form.inputs | {key, c.run, c.source, c.file, c.prompts}, [c.saved, c.status],
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

    c.pe_go.click(guard(measure), form.inputs | {key, c.run, c.pe_templates, c.pe_k, c.pe_model},
                  [c.pe_table, c.pe_summary], api_name="prompt_effectiveness")
    def show(k, run_name, result, metric, request: gr.Request):
        return compare_tab.show(run_name, result, metric, sessions.get(k, request).key)

    gr.on([c.saved.change, c.metric.change], show, [key, c.run, c.saved, c.metric],
          [c.summary, c.bars, c.scatter, c.table, c.worse], api_name="show_comparison")


def wire_rate(demo, form: Form, r: rate_tab.RateTab, sessions: Sessions, key, page) -> None:
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

    r.add.click(guard(add), [key, r.run, r.result], r.pool, api_name="rate_add_comparison")

    def imported(path):
        if not path:
            return gr.skip()
        counts = import_file(db, path)
        gr.Info(f"Imported {counts['pairwise']} votes and {counts['likert']} ratings.")
        return rate_tab.pool_text(db)

    r.upload.upload(guard(imported), r.upload, r.pool, api_name="rate_import")
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

    r.next_pair.click(guard(next_pair), [key, r.rater], pair_out, api_name="rate_next_pair")
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
        button.click(guard(vote), [key, r.rater], pair_out, api_name=f"rate_vote_{choice}", trigger_mode="once",
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

    r.next_one.click(guard(next_one), [key, r.rater], one_out, api_name="rate_next_answer")

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

    r.submit.click(guard(submit), [key, r.rater, *r.dims, r.comment], one_out, api_name="rate_submit",
                   trigger_mode="once", concurrency_limit=4, concurrency_id="ratings")
    r.refresh.click(lambda: rate_tab.results(db), None, [r.board, r.likert, r.agree, r.versus],
                    api_name="rate_results")

    def export():
        path = export_root() / f"ratings-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        export_file(db, path)
        return str(path)

    r.export.click(guard(export), None, r.export_file, api_name="rate_export")

    def to_dpo():
        rows = preference_rows(db)
        if not rows:
            raise gr.Error("No decided votes yet (ties teach DPO nothing).", print_exception=False)
        path = export_root() / f"preferences-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
        runs.write_atomic(path, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
        gr.Info(f"{len(rows)} preference pairs set as the training data with method dpo: press Start in Train.")
        return str(path), "auto", "dpo"

    r.to_dpo.click(guard(to_dpo), None, [form.widgets["data.path"], form.widgets["data.format"],
                                          form.widgets["method.kind"]], api_name="rate_to_dpo")


def wire_export(form: Form, x: export_tab.ExportTab, page, sessions: Sessions, key) -> None:
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

    x.adapter.click(guard(adapter), [key, x.run], [x.files, x.status], api_name="export_adapter")
    x.merged.click(guard(merged), [key, x.run], [x.files, x.status], api_name="export_merged")
    x.quantize.click(guard(quantize), [key, x.run], [x.table, x.status], api_name="export_quantized")
    x.push.click(guard(push), [key, x.run, x.repo, x.token, x.private], x.status, api_name="export_push")
