"""build_app(): the tabs in order, then the wiring that crosses tabs. Each tab module lays out its own
widgets (``build``) and wires its own events (``wire``); tabs never import each other.

Handlers are thin: they turn widget values into a config (``forms.py``), call the engine, and turn
its answers into widget updates. Errors reach the page as one readable message (``gr.Warning`` /
``gr.Error`` with the engine's own sentence), never a traceback.
"""

from __future__ import annotations

import os

import gradio as gr

from studio.engine import runs
from studio.policy import policy
from studio.settings import settings
from studio.ui import campaign_view, door
from studio.ui.forms import Form
from studio.ui.state import Context, Sessions
from studio.ui.tabs import chat, compare, data, export, model, rate, train

TABS = ("Data", "Model", "Train", "Compare", "Chat", "Rate", "Export")
HEADER = ("# Fine-tuning studio\n**Data → Model → Train → Compare → Chat → Rate → Export**: pick a dataset, a "
          "base model and a method, press Start and watch the loss; then see whether the tuned model got better, by "
          "metrics and by people.")


def build_app(delete_cache: tuple[int, int] | None = None) -> gr.Blocks:
    form = Form()
    with gr.Blocks(title="Fine-tuning studio", analytics_enabled=False, delete_cache=delete_cache) as demo:
        ctx = Context(demo, form, Sessions(), gr.State(None), gr.State(None), gr.State(None))
        stored_key = gr.BrowserState(None, storage_key="studio-session")
        _login()  # above both views: a rater who opens a campaign's link logs in here too
        with gr.Column() as studio:  # hidden when the page is a campaign's link (?campaign=ID)
            gr.Markdown(HEADER)
            with gr.Tabs():
                tabs = [data.build(form), model.build(form), train.build(form), compare.build(form), chat.build(),
                        rate.build(), export.build()]
        rater_view = campaign_view.build(studio)
        campaign_view.wire(rater_view, demo)
        _wire_session(ctx, stored_key)
        for module, tab in zip((data, model, train, compare, chat, rate, export), tabs):
            module.wire(tab, ctx)
        _wire_across(ctx, *tabs[3:])
    door.install(demo)  # every handler, of every tab, behind the one door (engine/gate.py)
    return demo


def _wire_across(ctx: Context, c, ch, r, x) -> None:
    """The run just trained (or last picked) is preselected in Compare, Chat and Export; the comparison just
    made is preselected in Rate."""
    pickers = [c.run, ch.run, x.run]

    def follow(k, name, request: gr.Request):
        names = runs.trained_runs(ctx.session(k, request).owner)
        if name not in names:
            return (gr.skip(),) * len(pickers)
        return (gr.Dropdown(choices=names, value=name),) * len(pickers)

    def to_rate(k, made, request: gr.Request):
        owner = ctx.session(k, request).owner
        run = runs.find_run(made[0], owner) if made else None
        if run is None:
            return gr.skip(), gr.skip()
        with_results = [n for n in runs.trained_runs(owner) if runs.evals(runs.find_run(n, owner))]
        return gr.Dropdown(choices=with_results, value=run.name), gr.Dropdown(choices=runs.evals(run), value=made[1])

    ctx.current_run.change(follow, [ctx.key, ctx.current_run], pickers, api_visibility="private")
    for picker in pickers:
        picker.input(lambda name: name, picker, ctx.current_run, api_visibility="private")
    ctx.current_eval.change(to_rate, [ctx.key, ctx.current_eval], [r.run, r.result], api_visibility="private")


def _login() -> None:
    """On a Space with Hugging Face login set up, its button; on another public deployment, a line that says
    how visitors get an identity (never a crash: OAuth only works on a Space)."""
    if not policy().identity_from_login:
        return
    s = settings()
    if s.space_id and os.environ.get("OAUTH_CLIENT_ID"):
        gr.LoginButton()
    elif not (s.auth or s.trusted_user_header):
        gr.Markdown("ℹ This public deployment has no login set up, so visitors can look around but not train or "
                    "rate (the operator can set `STUDIO_AUTH` or run it as a Space with `hf_oauth`).")


def _wire_session(ctx: Context, stored_key) -> None:
    def init(stored, request: gr.Request):
        """A reloaded page keeps its key, so the timer finds the running job and redraws it."""
        k = stored or Sessions.new_key()
        ctx.sessions.adopt(k, request).drawn = -1
        return k, k

    def closed(request: gr.Request):
        ctx.sessions.page_closed(request)

    def restore(stored, request: gr.Request):
        """A reloaded page shows the settings last put to work (Start, a sweep, the LR finder; else those of the
        run it re-attaches to), in Data and Model too, not only Train."""
        s = ctx.sessions.get(stored, request) if stored else None
        config = s and (s.settings or (s.job.config if s.job is not None else None))
        if config is None:
            return {c: gr.skip() for c in ctx.form.components}
        values = ctx.form.values_of(config)
        values[ctx.form.widgets["data.path"]] = policy().shown_path(config.data.path)
        return values

    ctx.demo.load(init, [stored_key], [ctx.key, stored_key], api_visibility="private")
    ctx.demo.load(restore, [stored_key], ctx.form.components, api_visibility="private")
    ctx.demo.unload(closed)
