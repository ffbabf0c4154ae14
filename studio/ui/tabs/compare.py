"""Compare tab: base vs tuned on held-out prompts. A summary with intervals and paired p-values,
a bar chart per metric with CI error bars, a per-example scatter, the side-by-side table sortable
by any metric with differences coloured, and the examples that got worse."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from studio.engine import gate, runs, timing
from studio.engine.data.split import Split
from studio.engine.judge.benchmark import DEFAULT_TASKS, benchmark
from studio.engine.judge.benchmark import load as load_benchmark
from studio.engine.judge.evaluate import evaluate_run, expected_seconds
from studio.engine.judge.metrics import ORDER
from studio.engine.judge.prompts import DEFAULT_TEMPLATES, prompt_effectiveness
from studio.engine.judge.summary import LOWER_IS_BETTER, EvalSummary, read_eval
from studio.policy import policy
from studio.ui.charts import example_scatter, metric_bars
from studio.ui.forms import Form
from studio.ui.handlers import guard, safe_md
from studio.ui.state import Context
from studio.ui.timed import Said, device_job, timed

MAX_PHRASINGS, MAX_SAMPLES = 8, 8  # prompt effectiveness: phrasings and samples of each
SOURCES = ["validation split", "upload a file", "type prompts"]
EVAL = ["max_new_tokens", "do_sample", "temperature", "top_p", "repetition_penalty", "seed", "batch_size",
        "bertscore", "extra_metrics"]


@dataclass
class CompareTab:
    page: gr.Tab
    run: gr.Dropdown
    refresh: gr.Button
    source: gr.Radio
    file: gr.File
    prompts: gr.Textbox
    leave_out: gr.Checkbox
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
    bm: dict  # the Benchmarks section's components


def build(form: Form) -> CompareTab:
    with gr.Tab("Compare") as page:
        gr.Markdown("### 4. Compare base and tuned\nBoth models answer the same held-out prompts; each metric comes "
                    "with a 95 % bootstrap interval, and the difference with a paired test.")
        with gr.Row():
            run = gr.Dropdown(choices=runs.trained_runs(), label="Run", elem_id="compare-run", scale=3,
                              allow_custom_value=True)  # runs finished after the page loaded
            refresh = gr.Button("↻", size="sm", scale=0, min_width=40)
            source = gr.Radio(SOURCES, value=SOURCES[0], label="Prompts from", scale=3)
            form.add("eval.limit", label="at most N examples")
            form.add("eval.reward_model", label="Reward model (optional, run:NAME)", scale=2)
        file = gr.File(label="Evaluation file (with references)", file_types=[".csv", ".json", ".jsonl", ".parquet"],
                       type="filepath", visible=False)
        prompts = gr.Textbox("", label="Prompts, one per line (no references: outputs only)", lines=4, visible=False)
        with gr.Accordion("Generation settings", open=False):
            with gr.Row():
                for name in EVAL:
                    form.add(f"eval.{name}")
        with gr.Row():
            leave_out = gr.Checkbox(False, label="leave out prompts the run trained on", elem_id="compare-leave-out",
                                    scale=1, info="the same or nearly the same as a training prompt: an improvement "
                                                  "there may be memory")
            go = gr.Button("Run comparison", variant="primary", elem_id="compare-go", scale=3)
        status = gr.Markdown(elem_id="compare-status")
        with gr.Row():
            saved = gr.Dropdown(label="Results of this run", choices=[], scale=2)
            metric = gr.Dropdown(choices=[*ORDER, "reward"], value="rougeL", label="Metric for the scatter and sorting",
                                 scale=1)
        summary = gr.Dataframe(label="Summary", interactive=False, elem_id="compare-summary", wrap=True, visible=False,
                               column_widths=["13%", "17%", "17%", "21%", "8%", "12%", "12%"])
        bars = gr.Plot(label="Each metric, base vs tuned, with 95 % intervals", elem_id="compare-bars")
        scatter = gr.Plot(label="Per example", elem_id="compare-scatter")
        table = gr.Dataframe(label="Side by side (click a header to sort)", interactive=False, wrap=True, visible=False,
                             elem_id="compare-table", max_height=600,
                             column_widths=["4%", "24%", "18%", "18%", "18%", "6%", "6%", "6%"])
        worse = gr.Markdown("No comparison yet: pick a run and press **Run comparison**.", elem_id="compare-worse")
        bm = _benchmarks()
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
            pe_table = gr.Dataframe(interactive=False, elem_id="pe-table", visible=False)
            pe_summary = gr.Markdown()
    return CompareTab(page, run, refresh, source, file, prompts, leave_out, go, status, saved, metric, summary, bars,
                      scatter, table, worse, pe_templates, pe_k, pe_model, pe_go, pe_table, pe_summary, bm)


def _benchmarks() -> dict:
    with gr.Accordion("Benchmarks: did it forget what it knew?", open=False, elem_id="bm-section"):
        gr.Markdown("Standard benchmarks (lm-evaluation-harness) on the base and the tuned model, the same items: "
                    "the difference with a paired 95 % interval. **studio-general** (160 questions: capitals, sums, "
                    "opposites, kinds of things) runs offline; " + ("this public deployment runs it alone." if
                                                                   not policy().names_folders else
                                                                   "or name lm-eval tasks (their data come from "
                                                                   "the hub) or a task YAML file of your own with "
                                                                   "local data."))
        with gr.Row():
            tasks = gr.Textbox(", ".join(DEFAULT_TASKS), label="tasks (comma-separated)", elem_id="bm-tasks", scale=3)
            limit = gr.Number(0, label="at most N items a task (0: all)", precision=0, minimum=0, elem_id="bm-limit",
                              scale=1)
            fewshot = gr.Number(0, label="few-shot examples", precision=0, minimum=0, scale=1)
            go = gr.Button("Run benchmarks", elem_id="bm-go", scale=1)
        with gr.Row():
            saved = gr.Dropdown(label="Benchmark results of this run", choices=[], elem_id="bm-saved", scale=1)
        said = gr.Markdown(elem_id="bm-said")
        table = gr.Dataframe(label="Base vs tuned", interactive=False, visible=False, elem_id="bm-table", wrap=True)
    return {"tasks": tasks, "limit": limit, "fewshot": fewshot, "go": go, "saved": saved, "said": said,
            "table": table}


def benchmark_view(result: dict | None):
    """(the table, the verdict in words) of a saved benchmark result."""
    if not result:
        return gr.Dataframe(visible=False), "No benchmark yet for this run."
    frame = pd.DataFrame([{"task": r["task"], "metric": r["metric"], "base": round(r["base"], 4),
                           "tuned": round(r["tuned"], 4),
                           "tuned − base [95% CI]": f"{r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                           "p": round(r["p"], 4), "items": r["n"], "verdict": r["verdict"]} for r in result["tasks"]])
    forgot = [r["task"] for r in result["tasks"] if r["verdict"] == "forgot"]
    small = [r["task"] for r in result["tasks"] if r["n"] < 30]
    text = (f"**Forgot**: the tuned model is surely worse on {', '.join(forgot)} (the interval is under 0)."
            if forgot else "Nothing forgotten: no task is surely worse after tuning.")
    gained = [r["task"] for r in result["tasks"] if r["verdict"] == "gained"]
    if gained:
        text += f" **Gained** on {', '.join(gained)} (the interval above 0)."
    if small:
        text += f" Few items on {', '.join(small)}: the intervals are wide on purpose."
    text += (f" lm-eval {result.get('lm_eval', '?')}, {result.get('seconds', '?')} s"
             + (", in the run's chat template" if result.get("chat_template") else "") + ".")
    return gr.Dataframe(value=frame, visible=True), text


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
    return gr.Dataframe(value=frame, visible=True), text


def summary_frame(s: EvalSummary) -> pd.DataFrame:
    rows = []
    for m, d in s.delta.items():
        wtl = s.win_tie_loss[m]
        rows.append([m, s.base[m].cell(), s.tuned[m].cell(), d.cell(), round(d.p_value, 4),
                     f"{wtl['win']} / {wtl['tie']} / {wtl['loss']}", s.verdict(m)])
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
        b, t = r["scores"].get("base", {}).get(metric), r["scores"].get("tuned", {}).get(metric)
        delta = None if b is None or t is None else round(t - b, 4)
        seen = {"exact": "(trained on) ", "near": "(nearly trained on) "}.get(r.get("seen_in_training"), "")
        data.append([i + 1, seen + _text(r["prompt"]), r["reference"], r["base"], r["tuned"],
                     None if b is None else round(b, 4), None if t is None else round(t, 4), delta])
    frame = pd.DataFrame(data, columns=["#", "prompt", "reference", "base", "tuned", f"base {metric}",
                                        f"tuned {metric}", "delta"])
    frame = frame.sort_values("delta", ascending=metric not in LOWER_IS_BETTER, na_position="last")
    sign = -1 if metric in LOWER_IS_BETTER else 1

    def colour(v):
        if v is None or pd.isna(v) or v == 0:
            return ""
        return "background-color: #d8f0d8" if sign * v > 0 else "background-color: #f8d7d7"

    scores = [f"base {metric}", f"tuned {metric}", "delta"]  # three decimals, not pandas' six that wrap
    return frame.style.map(colour, subset=["delta"]).format(precision=3, na_rep="", subset=scores)


def show(run: Path | None, result: str | None, metric: str):
    """Everything the tab displays for one saved result."""
    if run is None or result not in runs.evals(run):
        return (gr.Dataframe(visible=False), None, None, gr.Dataframe(visible=False),
                "No comparison yet: pick a run and press **Run comparison**.")
    s, rows = read_eval(run, result)
    if not s.delta:
        return (gr.Dataframe(visible=False), None, None, gr.Dataframe(side_by_side(rows, metric), visible=True),
                "No references: outputs only.")
    names = s.metrics
    metric = metric if metric in names else "rougeL"
    scatter = example_scatter([r["scores"]["base"][metric] for r in rows],
                              [r["scores"]["tuned"][metric] for r in rows], metric)
    return (gr.Dataframe(summary_frame(s), visible=True), metric_bars(s, names), scatter,
            gr.Dataframe(side_by_side(rows, metric), visible=True), worse_text(s, rows))


SMALL_EXAMPLES = 10  # fewer examples than this: the intervals are said to rest on a small sample


def worse_text(s: EvalSummary, rows: list[dict]) -> str:
    worse = s.got_worse
    lines = []
    if len(rows) < SMALL_EXAMPLES:
        lines.append(f"**Small sample: only {len(rows)} examples.** The intervals above are computed from so few "
                     "that they can look narrower than the truth (a zero-width one means every example scored "
                     f"alike, not certainty); compare on {SMALL_EXAMPLES} or more before trusting a difference.\n")
    said = overlap_text(s)
    if said:
        lines.append(said + "\n")
    metric = worse[0]["metric"] if worse else "rougeL"
    lines += [f"**Got worse** on {metric} ({len(worse)} of {len(rows)} examples), worst first:"] \
        if worse else [f"Nothing got worse on {s.info.get('worse_metric', 'rougeL')}."]
    for w in worse[:10]:
        r = rows[w["index"]]
        lines.append(f"- #{w['index'] + 1} ({w['delta']:+.3f}): *{safe_md(_text(r['prompt'])[:120], True)}* → "
                     f"tuned: {safe_md(repr(r['tuned'][:120]), True)}; base: {safe_md(repr(r['base'][:80]), True)}")
    info = s.info
    lines.append(f"\nBLEU signature `{info.get('bleu_signature')}`; {info.get('meteor')}; BERTScore: "
                 f"{info.get('bertscore_model', 'off')}; {info.get('bootstrap_resamples')} bootstrap resamples.")
    return "\n".join(lines)


def overlap_text(s: EvalSummary) -> str:
    """How many of the compared prompts the run trained on, and what that does to the verdict."""
    o = s.overlap_with_training
    if o.get("unknown"):
        return f"Whether the run trained on these prompts cannot be said: {o['unknown']}."
    n = int(o.get("exact") or 0) + int(o.get("near") or 0)
    if not n:
        return "None of these prompts is one the run trained on." if o else ""
    how = f"{o.get('exact', 0)} the same once case, spaces and punctuation are set aside, {o.get('near', 0)} nearly"
    if o.get("left_out"):
        return f"**Left out {n} prompts the run trained on** ({how}): the {s.examples} compared are new to it."
    return (f"**{n} of these {s.examples} prompts are ones the run trained on** ({how}; marked in the table): a "
            "metric is called better only when the other prompts say so too. Tick *leave out prompts the run trained "
            "on* to compare on the rest alone.")


class Handlers:
    def __init__(self, t: CompareTab, ctx: Context):
        self.t, self.ctx = t, ctx

    def owner(self, k, request) -> str:
        return self.ctx.session(k, request).owner

    def run_choices(self, k, current, just, request: gr.Request):
        return gr.Dropdown(**self.ctx.trained(k, current, just, request))

    def results_of(self, k, run_name, request: gr.Request):
        run = runs.find_run(run_name, self.owner(k, request))
        found = runs.evals(run) if run else []
        return gr.Dropdown(choices=found, value=next(iter(found), None))

    def source(self, choice):
        return gr.File(visible=choice == SOURCES[1]), gr.Textbox(visible=choice == SOURCES[2])

    def run_compare(self, values: dict, request: gr.Request, progress=gr.Progress()):
        t, s = self.t, self.ctx.session(values[self.ctx.key], request)
        run = gate.own_run(values[t.run])
        if run is None:
            raise gr.Error("Pick a trained run first (train one in the Train tab).", print_exception=False)
        settings = gate.check_eval(self.ctx.form.to_config(values).eval)  # the gate: reward model, metrics, caps
        data = prompts = None
        if values[t.source] == SOURCES[1]:
            if not values[t.file]:
                raise gr.Error("Upload an evaluation file first.", print_exception=False)
            data = values[t.file] if policy().names_folders else gate.data_file(s.keep_upload(values[t.file]).name,
                                                                            "the evaluation file")
        elif values[t.source] == SOURCES[2]:
            prompts = [gate.capped_text(p, "a prompt") for p in (values[t.prompts] or "").splitlines() if p.strip()]
            if not prompts:
                raise gr.Error("Type at least one prompt.", print_exception=False)
        voice = None if policy().isolates_jobs else Said()  # a child cannot call back
        split = Split.load(run) if data is None and not prompts else None
        examples = min(settings.limit, len(prompts) if prompts else len(split.val) if split and split.val else
                       settings.limit)
        expected = expected_seconds(run, settings, examples, fresh_process=policy().isolates_jobs)
        summary = timed(progress, f"comparing {examples} examples", expected,
                        gate.device_job, evaluate_run, run, data, prompts[:settings.limit] if prompts else None,
                        settings.limit, settings, None, voice, bool(values[t.leave_out]), what="the comparison",
                        voice=voice)
        name = Path(summary.dir).name
        return (gr.Dropdown(choices=runs.evals(run), value=name),
                f"Done: {summary.examples} examples in {summary.generation_s} s of generation. "
                f"{overlap_text(summary)}", [run.name, name])

    def measure(self, values: dict, request: gr.Request, progress=gr.Progress()):
        t = self.t
        self.ctx.session(values[self.ctx.key], request)
        run = gate.own_run(values[t.run])
        if run is None:
            raise gr.Error("Pick a trained run first.", print_exception=False)
        settings = gate.check_eval(self.ctx.form.to_config(values).eval)
        templates = [gate.capped_text(x.replace("\\n", "\n"), "a phrasing")
                     for x in (values[t.pe_templates] or "").splitlines() if x.strip()][:MAX_PHRASINGS]
        k = min(int(values[t.pe_k] or 1), MAX_SAMPLES)
        settings.do_sample = settings.do_sample or k > 1
        shape = f"{timing.shape_of_run(run)} | {values[t.pe_model] or 'tuned'}"
        result = device_job(progress, f"answering {len(templates)} phrasings x {k} samples", "phrasings", shape,
                            len(templates) * k * settings.limit, prompt_effectiveness, run, templates, k,
                            settings.limit, settings, values[t.pe_model], what="the measurement")
        return effectiveness_view(result)

    def run_benchmark(self, k, run_name, tasks, limit, fewshot, request: gr.Request, progress=gr.Progress()):
        self.ctx.session(k, request)
        run = gate.own_run(run_name)
        if run is None:
            raise gr.Error("Pick a trained run first.", print_exception=False)
        names, limit = gate.check_benchmark((tasks or "").split(","), int(limit) if limit else None)
        shape = f"{timing.shape_of_run(run)} | {','.join(sorted(names))} | few-shot {fewshot or 'default'}"
        result = device_job(progress, f"running {', '.join(names)} on base and tuned", "benchmark", shape,
                            limit or 1, benchmark, run, names, limit,
                            int(fewshot) if fewshot not in (None, "") else None, None, None, what="the benchmark")
        return (gr.Dropdown(choices=runs.benchmarks(run), value=runs.benchmarks(run)[0]), *benchmark_view(result))

    def benchmark_results(self, k, run_name, request: gr.Request):
        run = runs.find_run(run_name, self.owner(k, request))
        found = runs.benchmarks(run) if run else []
        return gr.Dropdown(choices=found, value=next(iter(found), None))

    def show_benchmark(self, k, run_name, name, request: gr.Request):
        run = runs.find_run(run_name, self.owner(k, request))
        if run is None or name not in runs.benchmarks(run):
            return benchmark_view(None)
        return benchmark_view(load_benchmark(run, name))

    def show(self, k, run_name, result, metric, request: gr.Request):
        return show(runs.find_run(run_name, self.owner(k, request)), result, metric)


def wire(t: CompareTab, ctx: Context) -> None:
    h, form = Handlers(t, ctx), ctx.form
    t.refresh.click(h.run_choices, [ctx.key, t.run, ctx.current_run], t.run, api_visibility="private")
    t.page.select(h.run_choices, [ctx.key, t.run, ctx.current_run], t.run, api_visibility="private")
    t.source.change(h.source, t.source, [t.file, t.prompts], api_visibility="private")
    t.run.change(h.results_of, [ctx.key, t.run], t.saved, api_visibility="private")
    t.go.click(guard(h.run_compare), form.inputs | {ctx.key, t.run, t.source, t.file, t.prompts, t.leave_out},
               [t.saved, t.status, ctx.current_eval], api_name="compare")
    t.pe_go.click(guard(h.measure), form.inputs | {ctx.key, t.run, t.pe_templates, t.pe_k, t.pe_model},
                  [t.pe_table, t.pe_summary], api_name="prompt_effectiveness")
    bm = t.bm
    bm["go"].click(guard(h.run_benchmark), [ctx.key, t.run, bm["tasks"], bm["limit"], bm["fewshot"]],
                   [bm["saved"], bm["table"], bm["said"]], api_name="benchmark")
    t.run.change(h.benchmark_results, [ctx.key, t.run], bm["saved"], api_visibility="private")
    bm["saved"].change(guard(h.show_benchmark), [ctx.key, t.run, bm["saved"]], [bm["table"], bm["said"]],
                       api_name="show_benchmark")
    gr.on([t.saved.change, t.metric.change], h.show, [ctx.key, t.run, t.saved, t.metric],
          [t.summary, t.bars, t.scatter, t.table, t.worse], api_name="show_comparison")
