"""Train tab: Start, Stop, Resume; status, progress with ETA, log tail; live loss and system charts
read from the job's snapshot by a timer; run history with overlaid curves and a config diff."""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from ...engine import runs
from ..charts import loss_figure, overlay_figure, system_figure

POLL_S = 1.0  # a new point shows within two polls of being logged
MULTI_GPU = """# every GPU of this machine, DDP (train.batch_size is per GPU):
accelerate launch --multi_gpu -m studio train studio-config.yaml --output-dir runs/my-run
# or:
torchrun --nproc_per_node $(nvidia-smi -L | wc -l) -m studio train studio-config.yaml --output-dir runs/my-run
# FSDP or DeepSpeed: run `accelerate config` once, then the same accelerate launch line"""


@dataclass
class TrainTab:
    run_name: gr.Textbox
    start: gr.Button
    stop: gr.Button
    resume: gr.Button
    status: gr.Markdown
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


def build() -> TrainTab:
    gr.Markdown("### 3. Train\nStart trains in the background; the charts update live. Stop saves a checkpoint "
                "that Resume continues from.")
    with gr.Row():
        run_name = gr.Textbox("", label="Run name", placeholder="optional", scale=2, elem_id="run-name")
        start = gr.Button("Start training", variant="primary", elem_id="start", scale=1)
        stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=1)
        resume = gr.Button("Resume", elem_id="resume", scale=1)
    status = gr.Markdown("No run yet. Choose data and a model, then press **Start training**.", elem_id="status")
    progress = gr.HTML(elem_id="progress")
    with gr.Row():
        loss = gr.Plot(label="Loss", elem_id="loss-chart")
        system = gr.Plot(label="Learning rate, grad norm, throughput, memory", elem_id="system-chart")
    log = gr.Textbox(label="Log (newest last)", lines=10, max_lines=10, interactive=False, elem_id="log",
                     autoscroll=True)
    timer = gr.Timer(POLL_S)
    with gr.Accordion("Several GPUs", open=False):
        gr.Code(MULTI_GPU, language="shell", interactive=False,
                label="The same run as DDP: save the config YAML from the Model tab, then")
    with gr.Accordion("Run history", open=False):
        refresh = gr.Button("Refresh", size="sm")
        history = gr.Dataframe(headers=["run", "state", "method", "model", "step", "final loss", "duration (s)"],
                               interactive=False, elem_id="history")
        pick = gr.CheckboxGroup(label="Compare runs (overlay losses, diff configs)", choices=[])
        overlay = gr.Plot(label="Loss by run")
        diff = gr.Markdown()
    with gr.Accordion("Operator", open=False):
        gr.Markdown("For whoever runs this deployment: actions that need `STUDIO_OPERATOR_TOKEN`.")
        with gr.Row():
            op_token = gr.Textbox(label="Operator token", type="password")
            op_training = gr.Checkbox(True, label="Training allowed")
            op_stop = gr.Button("Stop every job", variant="stop")
            op_delete = gr.Button("Delete the runs picked above")
        op_status = gr.Markdown()
    return TrainTab(run_name, start, stop, resume, status, progress, loss, system, log, timer, refresh, history,
                    pick, overlay, diff, op_token, op_stop, op_delete, op_training, op_status)


def plain(markdown: str) -> str:
    """Toasts show text as is: drop the markdown marks."""
    return markdown.replace("**", "").replace("`", "")


def status_text(snap: dict) -> str:
    state = snap["state"]
    if state == "queued" and snap["queue_position"]:
        return f"⏳ **Queued**: position {snap['queue_position']}: another training job is using the device."
    words = {"running": "🏃 **Training**", "completed": "✅ **Completed**", "stopped": "⏹ **Stopped**",
             "failed": "❌ **Failed**", "diverged": "💥 **Diverged**", "queued": "Starting…"}
    text = words.get(state, state)
    if snap.get("error"):
        text += f": {snap['error']}"
    if snap.get("run_dir"):
        text += f"  \nRun directory: `{snap['run_dir']}`"
    return text


def progress_html(snap: dict) -> str:
    last = next((m for m in reversed(snap["metrics"]) if m.get("max_steps")), None)
    if last is None:
        return ""
    step, total = last["step"], last["max_steps"]
    eta = last.get("eta_s")
    eta_text = f" · ETA {eta:.0f} s" if eta is not None and snap["state"] == "running" else ""
    return (f"<progress value='{step}' max='{total}' style='width:100%'></progress>"
            f"<div>step {step} / {total}{html.escape(eta_text)}</div>")


def log_text(snap: dict, tail: int = 10) -> str:
    lines = [f"note: {n}" for n in snap["notices"]]
    info = snap.get("info") or {}
    if info.get("trainable_params"):
        lines.append(f"{info.get('format')} data, {info.get('objective')} objective, {info['train_examples']} train /"
                     f" {info['val_examples']} validation examples; {info['trainable_params']:,} of "
                     f"{info['total_params']:,} parameters train ({info['precision']})")
    for m in snap["metrics"]:
        if m.get("eval_loss") is not None:
            lines.append(f"step {m['step']}: eval_loss {m['eval_loss']:.4f}")
        elif m.get("loss") is not None:
            lines.append(f"step {m['step']}: loss {m['loss']:.4f}  lr {m.get('learning_rate') or 0:.2e}  "
                         f"{m.get('tokens_per_s') or 0:.0f} tok/s")
        elif m.get("diverged"):
            lines.append(f"step {m['step']}: loss is NaN or infinite: diverged")
    if snap["state"] in ("completed", "stopped", "failed", "diverged"):
        lines.append(f"{snap['state']}" + (f": {snap['error']}" if snap.get("error") else ""))
    return "\n".join(lines[-tail:])


def charts(metrics: list[dict]):
    return loss_figure(metrics), system_figure(metrics)


def history_rows(owner: str | None = None) -> tuple[list[list], list[str]]:
    """Every run; on a public deployment, only the visitor's own (``owner``)."""
    from ...engine.models import public_mode

    rows, names = [], []
    for r in runs.list_runs():
        if public_mode() and r.owner != owner:
            continue
        rows.append([r.name, r.state, r.method, r.model, r.step,
                     round(r.final_loss, 4) if r.final_loss is not None else None, r.duration_s])
        names.append(r.name)
    return rows, names


def compare(names: list[str]):
    root = runs.runs_root()
    dirs = [root / n for n in names or [] if (root / n).is_dir()]
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
