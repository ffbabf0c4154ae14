"""The model card and the config that travel with an export.

Contract: ``model_card(run, cfg, votes=None)`` -> a ``huggingface_hub.ModelCard`` whose front
matter names a loadable ``base_model`` (the hub id; for studio-tiny its name, with the one line
that rebuilds it), ``library_name``, ``pipeline_tag`` and ``tags``, carries the evaluation as a
model-index and, when people rated the run, the human leaderboard (``human_leaderboard``); its
body has the config, the evaluation table with intervals, the human leaderboard and the training
doctor's findings. ``run_leaderboard`` is the one rule for which votes a card counts: those on
comparisons the run took part in (from the studio's ratings unless ``votes`` are given).
``portable_config(cfg)`` is the config with the data file named by its file name only: no server
path or visitor identifier leaves in an export.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from studio.config import StudioConfig
from studio.engine import methods, objectives, runs
from studio.engine.data.split import file_sha256
from studio.engine.judge.summary import EvalSummary, read_eval
from studio.engine.models import RUN_PREFIX, trained_objective
from studio.engine.tiny import TINY_NAME

REBUILD_TINY = ("studio-tiny is the fine-tuning studio's offline starter model, shipped in the studio's repository. "
                "Write it next to this folder from a checkout of the studio (`pip install -r requirements.txt`, "
                "then `python -m studio tiny --out studio-tiny`), then load the adapter from the folder that holds "
                "`studio-tiny/`.")


def pipeline_tag(cfg: StudioConfig, objective: str) -> str:
    """What the model does, as the hub names it: a reward model classifies (one score), a masked-LM encoder
    fills masks, a seq2seq model maps text to text, everything else generates text. ``objective``: the one the
    run trained (``auto`` made definite)."""
    if methods.of(cfg).score_head:
        return "text-classification"
    return objectives.find(objective).task


def usage(run: Path, cfg: StudioConfig, task: str) -> list[str]:
    """How to load it: a Python snippet with plain transformers (+ peft for an adapter)."""
    auto = {"text-classification": "AutoModelForSequenceClassification", "fill-mask": "AutoModelForMaskedLM",
            "text2text-generation": "AutoModelForSeq2SeqLM"}.get(task, "AutoModelForCausalLM")
    base = base_reference(cfg)
    if not methods.of(cfg).adapter:
        code = [f"from transformers import AutoTokenizer, {auto}", "",
                f'model = {auto}.from_pretrained("path/to/this/folder")',
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")']
    else:
        code = ["from peft import PeftModel", f"from transformers import AutoTokenizer, {auto}", "",
                f'base = {auto}.from_pretrained("{base}"' + (", num_labels=1)" if auto.endswith("Classification")
                                                            else ")"),
                'model = PeftModel.from_pretrained(base, "path/to/this/folder")',
                'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")']
    if task == "text-generation":
        code += ["", 'messages = [{"role": "user", "content": "Hello!"}]',
                 "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\",",
                 "                                       return_dict=True)",
                 "out = model.generate(**inputs, max_new_tokens=64)",
                 "print(tokenizer.decode(out[0, inputs[\"input_ids\"].shape[1]:], skip_special_tokens=True))"]
    out = ["", "## Use it", "", "```python", *code, "```"]
    if task == "text-generation" and methods.of(cfg).merges:
        out += ["", "Elsewhere (with the fine-tuning studio installed where the run is):", "",
                "```shell",
                f"studio serve {run.name}            # an OpenAI-compatible API; the model name is {run.name}",
                f"studio export {run.name} --format gguf --quant q8_0   # one GGUF file and an Ollama Modelfile",
                f"llama-cli -m {run.name}-q8_0.gguf -cnv                # llama.cpp",
                f"ollama create {run.name} -f {run.name}-q8_0.Modelfile && ollama run {run.name}",
                "```"]
    return out


def base_reference(cfg: StudioConfig) -> str:
    """What ``adapter_config.json`` names as the base: a hub id, ``studio-tiny``, or a local folder's name
    (never an absolute path: the export has to work on another machine)."""
    name = cfg.model.name.strip()
    if name.startswith(RUN_PREFIX):  # one of the studio's runs: its merged export's folder name
        return f"{name[len(RUN_PREFIX):]}-merged"
    local = Path(name).expanduser()
    return local.name if name != TINY_NAME and (local.is_absolute() or local.exists()) else name


def portable_config(cfg: StudioConfig) -> StudioConfig:
    data = replace(cfg.data, path=Path(cfg.data.path).name if cfg.data.path else "")
    return replace(cfg, data=data, model=replace(cfg.model, name=base_reference(cfg)))


def latest_eval(run: Path) -> EvalSummary | None:
    names = runs.evals(run)
    return read_eval(run, names[0])[0] if names else None


def latest_benchmark(run: Path) -> dict | None:
    from studio.engine.judge.benchmark import load

    names = runs.benchmarks(run)
    return load(run, names[0]) if names else None


def people_votes() -> list[dict]:
    """Every vote people gave in this studio: the rating pool's and every campaign's (without its excluded
    raters)."""
    from studio.engine.judge import campaign
    from studio.engine.judge.ratings import default_db

    db = default_db()
    return db.votes() + campaign.all_votes(db)


def run_leaderboard(run: Path, votes: list[dict] | None = None) -> list[dict]:
    """The people's verdict on a run, for its card: Bradley-Terry ratings with intervals from the votes on
    comparisons the run took part in (``votes``, else ``people_votes()``: the rating pool's and the campaigns'),
    [] when none."""
    from studio.engine.judge import human

    votes = people_votes() if votes is None else votes
    mine = [v for v in votes if run.name in (v["system_a"], v["system_b"])]
    return human.leaderboard(mine) if mine else []


def _card_data(run: Path, cfg: StudioConfig, summary: EvalSummary | None, task: str, board: list[dict],
               bench: dict | None = None):
    from huggingface_hub import EvalResult, ModelCardData

    path = Path(cfg.data.path)
    results = [EvalResult(task_type=task, dataset_type="json", dataset_name=path.name, metric_type=m,
                          metric_value=round(iv.value, 6), metric_name=f"{m} (tuned; base {summary.base[m].value:.4g})")
               for m, iv in summary.tuned.items()] if summary and summary.delta else []
    results += [EvalResult(task_type=task, dataset_type=r["task"], dataset_name=r["task"], metric_type=r["metric"],
                           metric_value=round(r["tuned"], 6),
                           metric_name=f"{r['metric']} (tuned; base {r['base']:.4g}; lm-evaluation-harness)")
                for r in (bench or {}).get("tasks", [])]
    method = methods.of(cfg)
    tags = list(dict.fromkeys(["finetune-studio", method.name, *method.tags]))
    people = [{"model": r["model"], "rating": round(r["rating"], 1), "ci_low": round(r["ci_low"], 1),
               "ci_high": round(r["ci_high"], 1), "win_rate": round(r["win_rate"], 3), "games": r["n"],
               "small_sample": r["small"]} for r in board]
    return ModelCardData(base_model=base_reference(cfg), library_name="peft" if method.adapter else "transformers",
                         pipeline_tag=task, tags=tags, model_name=run.name, eval_results=results or None,
                         human_leaderboard=people or None,
                         studio_dataset=path.name,
                         studio_dataset_hash=f"sha256:{file_sha256(path)}" if path.is_file() else None)


def _evaluation(summary: EvalSummary) -> list[str]:
    lines = ["", f"## Evaluation ({summary.examples} examples, {summary.eval_set})", "",
             "| metric | base | tuned | delta [95% CI] | p | verdict |", "|---|---|---|---|---|---|"]
    for m, d in summary.delta.items():
        lines.append(f"| {m} | {summary.base[m].value:.4g} | {summary.tuned[m].value:.4g} | "
                     f"{d.value:+.4g} [{d.ci_low:.4g}, {d.ci_high:.4g}] | {d.p_value:.3g} | {summary.verdict(m)} |")
    return lines


def _benchmarks(bench: dict) -> list[str]:
    lines = ["", f"## Benchmarks (lm-evaluation-harness {bench.get('lm_eval', '')}, base vs tuned, the same items)", "",
             "| task | metric | base | tuned | delta [95% CI] | p | items | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['metric']} | {r['base']:.4g} | {r['tuned']:.4g} | {r['delta']:+.4g} "
              f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}] | {r['p']:.3g} | {r['n']} | {r['verdict']} |"
              for r in bench["tasks"]]
    return lines


def _leaderboard(rows: list[dict]) -> list[str]:
    lines = ["", "## Human evaluation (Bradley-Terry, Elo scale)", "", "| rank | model | rating | 95% CI | n |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['rank']} | {r['model']} | {r['rating']:.1f} | [{r['ci_low']:.1f}, {r['ci_high']:.1f}] "
              f"| {r['n']}{' (few: read the interval)' if r['small'] else ''} |" for r in rows]
    return lines


def model_card(run: Path, cfg: StudioConfig, votes: list[dict] | None = None, leaderboard: list[dict] | None = None):
    """``leaderboard``: ``run_leaderboard(run, votes)`` when the caller has it already (the bootstrap runs once)."""
    from huggingface_hub import ModelCard

    leaderboard = run_leaderboard(run, votes) if leaderboard is None else leaderboard
    summary = latest_eval(run)
    objective = trained_objective(run)
    task = pipeline_tag(cfg, objective)
    body = [f"# {run.name}", "", f"Fine-tuned from `{base_reference(cfg)}` with the fine-tuning studio "
            f"({cfg.method.kind}, {objective} objective) on `{Path(cfg.data.path).name}`."]
    body += usage(run, cfg, task)
    if cfg.model.name.strip() == TINY_NAME:
        body += ["", REBUILD_TINY]
    findings = runs.read_status(run).get("findings") or []
    if findings:
        body += ["", "## What the training doctor saw", ""] + [f"- **{f['kind']}** ({f['severity']}, step "
                                                              f"{f['step']}): {f['evidence']}. {f['advice']}"
                                                              for f in findings]
    body += ["", "## Training config", "", "```yaml", portable_config(cfg).to_yaml().strip(), "```"]
    if summary and summary.delta:
        body += _evaluation(summary)
    bench = latest_benchmark(run)
    if bench:
        body += _benchmarks(bench)
    if leaderboard:
        body += _leaderboard(leaderboard)
    data = _card_data(run, cfg, summary, task, leaderboard, bench)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")
