"""The Sweep panel (in the Train tab): short runs over a grid through the same job queue, their table, their
curves overlaid, the best setting and its config as YAML."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.engine import budget, runs
from studio.engine.train.jobs import SweepJob
from studio.engine.train.sweep import parse_grid
from studio.ui.charts import overlay_figure
from studio.ui.handlers import guard, may_train
from studio.ui.state import Context

EXAMPLE = "train.learning_rate=1e-3,3e-3\nmethod.lora_r=8,16"


@dataclass
class SweepPanel:
    grid: gr.Textbox
    steps: gr.Number
    start: gr.Button
    stop: gr.Button
    status: gr.Markdown
    table: gr.Dataframe
    overlay: gr.Plot
    best: gr.DownloadButton
    timer: gr.Timer


def build() -> SweepPanel:
    with gr.Accordion("Sweep: try several settings", open=False):
        gr.Markdown("One line per setting, `section.key=value,value,...`; every combination runs as a short run in "
                    "the job queue (Optuna's grid search; hopeless runs are pruned at an evaluation).")
        with gr.Row():
            grid = gr.Textbox(EXAMPLE, lines=3, label="Grid", scale=3, elem_id="sweep-grid")
            with gr.Column(scale=1):
                steps = gr.Number(30, label="steps per run", minimum=4, precision=0, elem_id="sweep-steps")
                start = gr.Button("Start sweep", variant="primary", elem_id="sweep-start")
                stop = gr.Button("Stop sweep", variant="secondary", elem_id="sweep-stop")
        status = gr.Markdown(elem_id="sweep-status")
        table = gr.Dataframe(interactive=False, visible=False, elem_id="sweep-table")
        overlay = gr.Plot(visible=False, label="Eval loss by run", elem_id="sweep-overlay")
        best = gr.DownloadButton("Best config (YAML)", visible=False, elem_id="sweep-best")
        timer = gr.Timer(2.0)
    return SweepPanel(grid, steps, start, stop, status, table, overlay, best, timer)


def trials_frame(job: SweepJob) -> pd.DataFrame:
    keys = list(job.sweep.grid)
    fmt = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return pd.DataFrame([[t.number, *(t.settings[k] for k in keys), t.state, fmt(t.final_eval_loss),
                          fmt(t.best_eval_loss)] for t in job.result.trials],
                        columns=["#", *keys, "state", "final eval loss", "best eval loss"])


def status_text(job: SweepJob) -> str:
    trials = job.result.trials
    done = sum(t.state not in ("queued", "running") for t in trials)
    if job.error:
        return f"✗ The sweep failed: {job.error}"
    if not job.done:
        return f"**Sweep {job.sweep.name}**: {done} of {len(trials)} runs done."
    best = job.result.best
    if best is None:
        return f"The sweep ended with no completed run ({done} of {len(trials)})."
    pruned = sum(t.state == "pruned" for t in trials)
    return (f"✓ **Best**: {', '.join(f'`{k}` = {v}' for k, v in best.settings.items())} (best eval loss "
            f"{best.best_eval_loss:.4f}); {pruned} run(s) pruned. Its config is saved as `best.yaml`.")


class Handlers:
    def __init__(self, panel: SweepPanel, ctx: Context):
        self.panel, self.ctx = panel, ctx

    def start(self, values: dict, request: gr.Request):
        ctx = self.ctx
        s = ctx.session(values[ctx.key], request)
        may_train(ctx, s)
        cfg = s.checked(ctx.form.to_config(values))  # the gate; each trial's own config passes it again
        if not cfg.data.path:
            raise gr.Error("Choose a dataset in the Data tab first (your own upload or a sample).",
                           print_exception=False)
        cfg = replace(cfg, train=replace(cfg.train, max_steps=int(values[self.panel.steps] or 30)))
        s.sweep = SweepJob(cfg, parse_grid([x for x in (values[self.panel.grid] or "").splitlines() if x.strip()]),
                           owner=s.owner, budget=budget.over_budget).start()
        return status_text(s.sweep)

    def stop(self, k, request: gr.Request):
        s = self.ctx.session(k, request)
        s.stop_checks()
        if s.sweep is not None:
            s.sweep.stop()
        return "Stopping the sweep after the current step…"

    def poll(self, k, request: gr.Request):
        job = self.ctx.session(k, request).sweep
        if job is None:
            return (gr.skip(),) * 4
        curves = {Path(t.run_dir).name: [m for m in runs.read_metrics(Path(t.run_dir)) if "eval_loss" in m]
                  for t in job.result.trials if t.run_dir}
        best = job.result.folder / "best.yaml"
        return (status_text(job), gr.Dataframe(trials_frame(job), visible=True),
                gr.Plot(overlay_figure(curves, key="eval_loss"), visible=bool(curves)),
                gr.DownloadButton(value=str(best), visible=True) if best.is_file() else gr.skip())


def wire(p: SweepPanel, ctx: Context) -> None:
    h = Handlers(p, ctx)
    p.start.click(guard(h.start), ctx.form.inputs | {ctx.key, p.grid, p.steps}, p.status, api_name="sweep_start")
    p.stop.click(h.stop, ctx.key, p.status, api_name="sweep_stop")
    p.timer.tick(h.poll, ctx.key, [p.status, p.table, p.overlay, p.best], api_name="sweep_status",
                 show_progress="hidden", concurrency_limit=None)
