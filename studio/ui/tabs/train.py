"""Train tab: Start, Stop, Resume; status, progress with ETA, log tail; live loss and system charts
read from the job's snapshot by a timer; run history with overlaid curves and a config diff."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio.engine import budget, gate, runs
from studio.engine.events import FINAL_STATES, JobSnapshot
from studio.engine.isolate import CHECK_MEMORY_MB, CHECK_SECONDS
from studio.engine.train.jobs import Job
from studio.engine.train.prepare import preflight_only
from studio.policy import policy
from studio.ui import operator, sweep
from studio.ui.charts import loss_figure, overlay_figure, system_figure
from studio.ui.handlers import CHECK_POOL, guard, may_train
from studio.ui.state import Context

POLL_S = 1.0  # a new point shows within two polls of being logged
MULTI_GPU = """# every GPU of this machine, DDP (train.batch_size is per GPU):
accelerate launch --multi_gpu -m studio train studio-config.yaml --output-dir runs/my-run
# or:
torchrun --nproc_per_node $(nvidia-smi -L | wc -l) -m studio train studio-config.yaml --output-dir runs/my-run
# FSDP or DeepSpeed: run `accelerate config` once, then the same accelerate launch line"""


@dataclass
class TrainTab:
    page: gr.Tab
    run_name: gr.Textbox
    start: gr.Button
    stop: gr.Button
    resume: gr.Button
    status: gr.Markdown
    doctor: gr.Markdown
    progress: gr.HTML
    loss: gr.Plot
    system: gr.Plot
    log: gr.Textbox
    timer: gr.Timer
    refresh: gr.Button
    history: gr.Dataframe
    pick: gr.CheckboxGroup
    overlay: gr.Plot
    diff: gr.Markdown
    op_token: gr.Textbox
    op_stop: gr.Button
    op_delete: gr.Button
    op_training: gr.Checkbox
    op_status: gr.Markdown
    sweep: object  # the Sweep panel (studio/ui/sweep.py)
    op_all: gr.Button


def build(form) -> TrainTab:
    with gr.Tab("Train") as page:
        gr.Markdown("### 3. Train\nStart trains in the background; the charts update live. Stop saves a checkpoint "
                    "that Resume continues from.")
        with gr.Row():
            run_name = gr.Textbox("", label="Run name", placeholder="optional", scale=2, elem_id="run-name")
            start = gr.Button("Start training", variant="primary", elem_id="start", scale=1)
            stop = gr.Button("Stop", variant="secondary", elem_id="stop", scale=1)  # not red while nothing runs
            resume = gr.Button("Resume", elem_id="resume", scale=1)
        status = gr.Markdown("No run yet. Choose data and a model, then press **Start training**.", elem_id="status")
        doctor = gr.Markdown("", elem_id="doctor")
        progress = gr.HTML(elem_id="progress")
        with gr.Row():
            loss = gr.Plot(label="Loss", elem_id="loss-chart")
            system = gr.Plot(label="Learning rate, grad norm, throughput, memory", elem_id="system-chart")
        log = gr.Textbox(label="Log (newest last)", lines=10, max_lines=10, interactive=False, elem_id="log",
                         autoscroll=True)
        timer = gr.Timer(POLL_S)
        with gr.Accordion("Trackers: record runs in TensorBoard, trackio, MLflow or W&B", open=False):
            form.add("train.report_to", elem_id="train-report_to")
            gr.Markdown("Each run is recorded on this machine (W&B offline, MLflow in a local store) unless you "
                        "configured a remote yourself; the log says how to open it, e.g. `tensorboard --logdir "
                        "RUN/tensorboard` or `trackio show --project studio`. The loss they record is the loss "
                        "charted above.")
        sweep_panel = sweep.build()
        with gr.Accordion("Several GPUs", open=False):
            gr.Code(MULTI_GPU, language="shell", interactive=False,
                    label="The same run as DDP: save the config YAML from the Model tab, then")
        with gr.Accordion("Run history", open=False):
            refresh = gr.Button("Refresh", size="sm")
            history = gr.Dataframe(headers=["run", "state", "method", "model", "step", "final loss", "duration (s)"],
                                   visible=False, interactive=False, elem_id="history")
            pick = gr.CheckboxGroup(label="Compare runs (overlay losses, diff configs)", choices=[])
            overlay = gr.Plot(label="Loss by run")
            diff = gr.Markdown()
        with gr.Accordion("Operator", open=False):
            gr.Markdown("For whoever runs this deployment: actions that need `STUDIO_OPERATOR_TOKEN`.")
            with gr.Row():
                op_token = gr.Textbox(label="Operator token", type="password")
                op_training = gr.Checkbox(True, label="Training allowed")
                op_stop = gr.Button("Stop every job", variant="stop")
                op_all = gr.Button("List every visitor's runs")
                op_delete = gr.Button("Delete the runs picked above")
            op_status = gr.Markdown()
    return TrainTab(page, run_name, start, stop, resume, status, doctor, progress, loss, system, log, timer, refresh,
                    history, pick, overlay, diff, op_token, op_stop, op_delete, op_training, op_status, sweep_panel,
                    op_all)


def plain(markdown: str) -> str:
    """Toasts show text as is: drop the markdown marks."""
    return markdown.replace("**", "").replace("`", "")


def status_text(snap: JobSnapshot, toast: bool = False) -> str:
    """The job's state for the status panel; ``toast``: for the pop-up, which names the run, never a server path
    (the panel shows the run's folder where the server may be shown)."""
    state = snap.state
    if state == "queued" and snap.queue_position:
        return f"**Queued**: position {snap.queue_position}: another training job is using the device."
    words = {"running": "**Training**", "completed": "✓ **Completed**", "stopped": "**Stopped**",
             "failed": "✗ **Failed**", "diverged": "**Diverged**", "queued": "Starting…"}
    text = words.get(state, state)
    if snap.error:
        text += f": {snap.error}"
    if snap.run_dir:
        name = Path(snap.run_dir).name
        where = f"Run directory: `{snap.run_dir}`" if policy().shows_server and not toast else f"Run `{name}`"
        text += f"  \n{where}"
    for result in snap.results:  # what a reward or RL run measured at its end
        text += f"  \n**Measured**: {result.message}"
    return text


SEVERITY = {"error": "✗", "warning": "⚠", "info": "ℹ"}  # text symbols every font has; emoji need an emoji font


def doctor_text(snap: JobSnapshot) -> str:
    """The training doctor's findings, newest last, each with its evidence and what to do."""
    if not snap.findings:
        return ""
    lines = ["**Training doctor**"]
    lines += [f"- {SEVERITY.get(f.severity, '')} **{f.kind.replace('_', ' ')}** (step {f.step}): {f.evidence}.  \n"
              f"  *What to do:* {f.advice}" for f in snap.findings]
    return "\n".join(lines)


def progress_html(snap: JobSnapshot) -> str:
    last = next((m for m in reversed(snap.metrics) if m.get("max_steps")), None)
    if last is None:
        return ""
    step, total = last["step"], last["max_steps"]
    eta = last.get("eta_s")
    eta_text = f" · ETA {eta:.0f} s" if eta is not None and snap.state == "running" else ""
    return (f"<progress value='{step}' max='{total}' style='width:100%'></progress>"
            f"<div>step {step} / {total}{html.escape(eta_text)}</div>")


LOGGED = (("reward", "reward"), ("accuracy", "pair acc"))  # what RL and reward runs add to a log line


def log_text(snap: JobSnapshot, tail: int = 10) -> str:
    lines = [f"note: {n}" for n in snap.notices]
    if snap.info is not None:
        lines.append(snap.info.line())
    for m in snap.metrics:
        if m.get("eval_loss") is not None:
            lines.append(f"step {m['step']}: eval_loss {m['eval_loss']:.4f}")
        elif m.get("loss") is not None:
            extra = "".join(f"  {label} {m[key]:.3g}" for key, label in LOGGED if m.get(key) is not None)
            lines.append(f"step {m['step']}: loss {m['loss']:.4f}  lr {m.get('learning_rate') or 0:.2e}  "
                         f"{m.get('tokens_per_s') or 0:.0f} tok/s{extra}")
        elif m.get("diverged"):
            lines.append(f"step {m['step']}: loss is NaN or infinite: diverged")
    lines += [f"measured: {r.message}" for r in snap.results]
    if snap.done:
        lines.append(f"{snap.state}" + (f": {snap.error}" if snap.error else ""))
    return "\n".join(lines[-tail:])


def charts(metrics: list[dict]):
    return loss_figure(metrics), system_figure(metrics)


def history_rows(owner: str | None = None) -> tuple[list[list], list[str]]:
    """Every run; on a public deployment, only the visitor's own (``owner``)."""
    listed = runs.list_runs(owner)
    rows = [[r.name, _state(r), r.method, r.model, r.step,
             round(r.final_loss, 4) if r.final_loss is not None else None, r.duration_s] for r in listed]
    return rows, [r.name for r in listed]


def _state(r) -> str:
    """The state as the history shows it: an interrupted run says where it can resume from."""
    if r.state == "interrupted" and r.error and "(" in r.error:
        return f"interrupted ({r.error.rsplit('(', 1)[1].rstrip(')')})"
    return r.state


def compare(names: list[str], owner: str | None = None):
    dirs = [d for d in (runs.find_run(n, owner) for n in names or []) if d is not None]
    if not dirs:
        return None, ""
    curves = {d.name: runs.read_metrics(d) for d in dirs}
    diff = runs.config_diff(dirs)
    if len(dirs) < 2:
        table = "Select two or more runs to see how their configs differ."
    elif not diff:
        table = "The selected runs have identical configs."
    else:
        head = "| setting | " + " | ".join(d.name for d in dirs) + " |\n|---|" + "---|" * len(dirs)
        table = head + "\n" + "\n".join(f"| `{k}` | " + " | ".join(f"`{v}`" for v in vals) + " |"
                                         for k, vals in diff)
    return overlay_figure(curves), table


def resumable_run(s, picked: list[str] | None) -> Path | None:
    """Which run Resume continues: the run this session's last job stopped; else the one run ticked in Run
    history; else this visitor's newest run that stopped with a checkpoint (a reloaded page has no job of its
    own any more). A run is resumable when it did not complete and has a complete checkpoint."""
    def ok(run: Path | None) -> bool:
        return run is not None and runs.read_status(run).get("state") in ("stopped", "interrupted", "failed") \
            and runs.last_complete_checkpoint(run) is not None

    own = runs.find_run(Path(s.job.run_dir).name, s.owner) if s.job is not None and s.job.run_dir else None
    if ok(own) and s.job.done:
        return own
    if picked and len(picked) == 1 and ok(runs.find_run(picked[0], s.owner)):
        return runs.find_run(picked[0], s.owner)
    return next((r.path for r in runs.list_runs(s.owner) if ok(r.path)), None)


class Handlers:
    def __init__(self, t: TrainTab, ctx: Context):
        self.t, self.ctx = t, ctx

    def start(self, values: dict, request: gr.Request):
        ctx = self.ctx
        s = ctx.session(values[ctx.key], request)
        may_train(ctx, s)
        cfg = s.checked(ctx.form.to_config(values))  # the gate: only what this visitor may use
        if not cfg.data.path:
            raise gr.Error("Choose a dataset in the Data tab first.", print_exception=False)
        budget.check_disk(s.owner)
        # bad data or a model that cannot be had: said here, where it was chosen; no run starts. On a public
        # deployment the visitor's file is read in a child with limits, never in the web server.
        gate.device_job(preflight_only, cfg, device=False, seconds=CHECK_SECONDS, memory_mb=CHECK_MEMORY_MB,
                        what="reading your data")
        cfg.run_name = (values[self.t.run_name] or "").strip()
        s.job, s.drawn, s.announced = Job(cfg, owner=s.owner, budget=budget.over_budget).start(), -1, ""
        return status_text(s.job.snapshot())

    def stop(self, k, request: gr.Request):
        s = self.ctx.session(k, request)
        checks = s.stop_checks()
        if s.job is None or s.job.done:
            return "Stopped reading your data." if checks else gr.skip()
        s.job.stop()
        return "Stopping after the current step…"

    def resume(self, k, picked, request: gr.Request):
        s = self.ctx.session(k, request)
        may_train(self.ctx, s)
        run_dir = resumable_run(s, picked)
        if run_dir is None:
            raise gr.Error("Nothing to resume: stop a run first, or tick one run with a checkpoint in Run history.",
                           print_exception=False)
        job = Job(runs.Run(run_dir).config, run_dir, resume=True, owner=s.owner,
                  budget=budget.over_budget)
        s.job, s.drawn, s.announced = job.start(), -1, ""
        return status_text(s.job.snapshot())

    def poll(self, k, request: gr.Request):
        """Status, progress, charts and log; at a run's start and end also the history, and at its end the
        run becomes the one the other tabs preselect. Returns the components it updates, by name."""
        s, t = self.ctx.session(k, request), self.t
        if s.job is None:
            return {t.status: gr.skip()}  # nothing changes (an empty dict is not read as updates by name)
        snap = s.job.snapshot()
        out = {t.status: status_text(snap), t.doctor: doctor_text(snap), t.progress: progress_html(snap),
               t.log: log_text(snap)}
        if snap.state != s.announced and snap.state in ("running", *FINAL_STATES):
            s.announced = snap.state
            out[t.history], out[t.pick] = self.history(k, request)
            if snap.done:
                toast = gr.Warning if snap.state in ("failed", "diverged") else gr.Info
                toast(plain(status_text(snap, toast=True)))
                if snap.run_dir and runs.has_weights(Path(snap.run_dir)):
                    out[self.ctx.current_run] = Path(snap.run_dir).name
        if len(snap.metrics) != s.drawn:
            out[t.loss], out[t.system] = charts(snap.metrics)
            s.drawn = len(snap.metrics)
        return out

    def history(self, k, request: gr.Request):
        rows, names = history_rows(self.ctx.session(k, request).owner)
        return gr.Dataframe(value=rows, visible=bool(rows)), gr.CheckboxGroup(
            choices=names, label="Compare runs (overlay losses, diff configs)" if names else "No runs yet.")

    def compare(self, k, names, request: gr.Request):
        return compare(names, self.ctx.session(k, request).owner)


def wire(t: TrainTab, ctx: Context) -> None:
    h = Handlers(t, ctx)
    t.start.click(guard(h.start), ctx.form.inputs | {ctx.key, t.run_name}, t.status, api_name="start",
                  concurrency_limit=CHECK_POOL, concurrency_id="data-checks")
    t.stop.click(h.stop, [ctx.key], t.status, api_name="stop")
    t.resume.click(guard(h.resume), [ctx.key, t.pick], t.status, api_name="resume")
    outputs = [t.status, t.doctor, t.progress, t.loss, t.system, t.log, t.history, t.pick, ctx.current_run]
    t.timer.tick(h.poll, [ctx.key], outputs, api_name="status", show_progress="hidden", concurrency_limit=None)
    t.refresh.click(h.history, [ctx.key], [t.history, t.pick], api_name="runs")
    ctx.demo.load(h.history, [ctx.key], [t.history, t.pick], api_visibility="private")
    t.pick.change(h.compare, [ctx.key, t.pick], [t.overlay, t.diff], api_name="compare_runs")
    operator.wire(t, ctx)
    sweep.wire(t.sweep, ctx)
