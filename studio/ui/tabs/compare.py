"""Compare tab: base vs tuned on held-out prompts. A summary with intervals and paired p-values,
a bar chart per metric with CI error bars, a per-example scatter, the side-by-side table sortable
by any metric with differences coloured, and the examples that got worse."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from ...engine import runs
from ...engine.evaluate import list_evals
from ...engine.metrics import LOWER_IS_BETTER, ORDER
from ...engine.prompts import DEFAULT_TEMPLATES
from ..charts import example_scatter, metric_bars
from ..forms import Form

SOURCES = ["validation split", "upload a file", "type prompts"]
EVAL = ["max_new_tokens", "do_sample", "temperature", "top_p", "repetition_penalty", "seed", "batch_size",
        "bertscore", "extra_metrics"]


@dataclass
class CompareTab:
    run: gr.Dropdown
    refresh: gr.Button
    source: gr.Radio
    file: gr.File
    prompts: gr.Textbox
    go: gr.Button
    status: gr.Markdown
    saved: gr.Dropdown
    metric: gr.Dropdown
    summary: gr.Dataframe
    bars: gr.Plot
    scatter: gr.Plot
    table: gr.Dataframe
    worse: gr.Markdown
    pe_templates: gr.Textbox
    pe_k: gr.Number
    pe_model: gr.Radio
    pe_go: gr.Button
    pe_table: gr.Dataframe
    pe_summary: gr.Markdown


def build(form: Form) -> CompareTab:
    gr.Markdown("### 4. Compare base and tuned\nBoth models answer the same held-out prompts; each metric comes "
                "with a 95 % bootstrap interval, and the difference with a paired test.")
    with gr.Row():
        run = gr.Dropdown(choices=trained_runs(), label="Run", elem_id="compare-run", scale=3,
                          allow_custom_value=True)  # runs finished after the page loaded
        refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
        source = gr.Radio(SOURCES, value=SOURCES[0], label="Prompts from", scale=3)
        form.add("eval.limit", label="at most N examples")
    file = gr.File(label="Evaluation file (with references)", file_types=[".csv", ".json", ".jsonl", ".parquet"],
                   type="filepath", visible=False)
    prompts = gr.Textbox("", label="Prompts, one per line (no references: outputs only)", lines=4, visible=False)
    with gr.Accordion("Generation settings", open=False):
        with gr.Row():
            for name in EVAL:
                form.add(f"eval.{name}")
    go = gr.Button("Run comparison", variant="primary", elem_id="compare-go")
    status = gr.Markdown(elem_id="compare-status")
    with gr.Row():
        saved = gr.Dropdown(label="Results of this run", choices=[], scale=2)
        metric = gr.Dropdown(choices=list(ORDER), value="rougeL", label="Metric for the scatter and sorting", scale=1)
    summary = gr.Dataframe(label="Summary", interactive=False, elem_id="compare-summary", wrap=True)
    bars = gr.Plot(label="Each metric, base vs tuned, with 95 % intervals", elem_id="compare-bars")
    scatter = gr.Plot(label="Per example", elem_id="compare-scatter")
    table = gr.Dataframe(label="Side by side (click a header to sort)", interactive=False, wrap=True,
                         elem_id="compare-table", max_height=600,
                         column_widths=["4%", "24%", "18%", "18%", "18%", "6%", "6%", "6%"])
    worse = gr.Markdown(elem_id="compare-worse")
    with gr.Accordion("Prompt effectiveness: which phrasing works best?", open=False):
        gr.Markdown("Each phrasing wraps the task's own question (`{input}`); each is answered K times by sampling "
                    "(the generation settings above). Accuracy is token F1 against the reference; consistency, "
                    "how often the K answers agree; robustness, how much accuracy moves between phrasings.")
        with gr.Row():
            pe_templates = gr.Textbox("\n".join(DEFAULT_TEMPLATES), lines=4, scale=3,
                                      label="Phrasings, one per line (write \\n for a line break)")
            with gr.Column(scale=1):
                pe_k = gr.Number(4, label="K samples per prompt", minimum=1, maximum=16, precision=0)
                pe_model = gr.Radio(["tuned", "base"], value="tuned", label="Model")
                pe_go = gr.Button("Measure phrasings", elem_id="pe-go")
        pe_table = gr.Dataframe(interactive=False, elem_id="pe-table")
        pe_summary = gr.Markdown()
    return CompareTab(run, refresh, source, file, prompts, go, status, saved, metric, summary, bars, scatter,
                      table, worse, pe_templates, pe_k, pe_model, pe_go, pe_table, pe_summary)


def effectiveness_view(result: dict) -> tuple[pd.DataFrame, str]:
    frame = pd.DataFrame([[r["template"], round(r["accuracy"], 4), round(r["exact_match"], 4),
                           round(r["consistency"], 4), round(r["prompt_tokens"], 1), round(r["output_tokens"], 1)]
                          for r in result["templates"]],
                         columns=["phrasing", "accuracy (token F1)", "exact match", "consistency", "prompt tokens",
                                  "answer tokens"])
    best = max(result["templates"], key=lambda r: r["accuracy"])
    rob = result["robustness"]
    text = (f"{result['items']} items × K={result['k']} ({'sampled' if result['sampling'] else 'greedy'}) on the "
            f"{result['model']} model. Best phrasing: `{best['template']}`. Robustness: accuracy varies by "
            f"{rob['accuracy_range']:.3f} across phrasings (std {rob['accuracy_std']:.3f}).")
    return frame, text


def trained_runs(owner: str | None = None) -> list[str]:
    """Runs with an adapter or model; on a public deployment, only the visitor's own."""
    return [r.name for r in runs.list_runs() if run_dir(r.name, owner) is not None
            and ((r.path / "adapter").is_dir() or (r.path / "model").is_dir())]


def run_dir(run_name: str | None, owner: str | None = None):
    """The run folder for a name from the page, or None: never a path outside the runs folder, and on a
    public deployment never another visitor's run."""
    from ...engine.models import public_mode

    root = runs.runs_root().resolve()
    if not run_name:
        return None
    path = (root / run_name).resolve()
    if path.parent != root or not (path / "config.yaml").is_file():
        return None
    if public_mode() and runs.read_status(path).get("owner") != owner:
        return None
    return path


def saved_results(run_name: str | None, owner: str | None = None) -> list[str]:
    path = run_dir(run_name, owner)
    return [p.name for p in list_evals(path)] if path else []


def _cell(v: dict) -> str:
    return f"{v['value']:.4g} [{v['ci_low']:.4g}, {v['ci_high']:.4g}]"


def summary_frame(s: dict) -> pd.DataFrame:
    rows = []
    for m in ORDER:
        if m not in s.get("delta", {}):
            continue
        d, wtl = s["delta"][m], s["win_tie_loss"][m]
        better = (d["value"] < 0) if m in LOWER_IS_BETTER else (d["value"] > 0)
        significant = d["p_value"] < 0.05
        verdict = ("better" if better else "worse") if significant else "no clear change"
        rows.append([m, _cell(s["base"][m]), _cell(s["tuned"][m]), _cell(d), round(d["p_value"], 4),
                     f"{wtl['win']} / {wtl['tie']} / {wtl['loss']}", verdict])
    return pd.DataFrame(rows, columns=["metric", "base [95% CI]", "tuned [95% CI]", "tuned − base [95% CI]",
                                       "p", "win / tie / loss", "verdict"])


def _text(messages) -> str:
    """The question asked: the last user turn (earlier turns are counted, not shown)."""
    if not isinstance(messages, list):
        return str(messages)
    users = [m["content"] for m in messages if m["role"] == "user"]
    earlier = len(messages) - 1
    return (f"(+{earlier} earlier turns) " if earlier > 0 else "") + (users[-1] if users else "")


def side_by_side(rows: list[dict], metric: str):
    data = []
    for i, r in enumerate(rows):
        b, t = r["scores"].get(f"base_{metric}"), r["scores"].get(f"tuned_{metric}")
        delta = None if b is None or t is None else round(t - b, 4)
        data.append([i + 1, _text(r["prompt"]), r["reference"], r["base"], r["tuned"],
                     None if b is None else round(b, 4), None if t is None else round(t, 4), delta])
    frame = pd.DataFrame(data, columns=["#", "prompt", "reference", "base", "tuned", f"base {metric}",
                                        f"tuned {metric}", "delta"])
    frame = frame.sort_values("delta", ascending=metric not in LOWER_IS_BETTER, na_position="last")
    sign = -1 if metric in LOWER_IS_BETTER else 1

    def colour(v):
        if v is None or pd.isna(v) or v == 0:
            return ""
        return "background-color: #d8f0d8" if sign * v > 0 else "background-color: #f8d7d7"

    return frame.style.map(colour, subset=["delta"])


def show(run_name: str | None, result: str | None, metric: str, owner: str | None = None):
    """Everything the tab displays for one saved result."""
    if not run_dir(run_name, owner) or result not in saved_results(run_name, owner):
        return None, None, None, None, ""
    folder = run_dir(run_name, owner) / "eval" / result
    s = json.loads((folder / "summary.json").read_text())
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    if not s.get("delta"):
        return None, None, None, side_by_side(rows, metric), "No references: outputs only."
    names = [m for m in ORDER if m in s["delta"]]
    metric = metric if metric in names else "rougeL"
    scatter = example_scatter([r["scores"][f"base_{metric}"] for r in rows],
                              [r["scores"][f"tuned_{metric}"] for r in rows], metric)
    worse = s.get("got_worse", [])
    lines = [f"**Got worse** on {worse[0]['metric']} ({len(worse)} of {len(rows)} examples), worst first:"] \
        if worse else ["Nothing got worse on ROUGE-L."]
    for w in worse[:10]:
        r = rows[w["index"]]
        lines.append(f"- #{w['index'] + 1} ({w['delta']:+.3f}): *{_text(r['prompt'])[:120]}* → tuned: "
                     f"{r['tuned'][:120]!r}; base: {r['base'][:80]!r}")
    info = s.get("info", {})
    lines.append(f"\nBLEU signature `{info.get('bleu_signature')}`; {info.get('meteor')}; BERTScore: "
                 f"{info.get('bertscore_model', 'off')}; {info.get('bootstrap_resamples')} bootstrap resamples.")
    return summary_frame(s), metric_bars(s, names), scatter, side_by_side(rows, metric), "\n".join(lines)

