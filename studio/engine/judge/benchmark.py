"""Standard benchmarks, base vs tuned, on lm-evaluation-harness: did tuning cost the model what it knew?

Contract: ``benchmark(run_dir, tasks, limit, fewshot, name) -> dict`` runs each task with ``lm_eval.simple_evaluate``
on the run's base model and on the tuned one (the same items, the same few-shot examples, the same seed), pairs the
per-item results (``log_samples``) and writes ``benchmarks/NAME.json`` in the run:
``{"tasks": [{"task", "metric", "base", "tuned", "delta", "ci_low", "ci_high", "p", "n", "verdict"}], ...}``
(the delta's 95 % interval from a paired bootstrap over items, its two-sided bootstrap p). The verdict is
"forgot" when the tuned model is surely worse (the interval under 0), "gained" when surely better, else
"no clear change".

A task is an lm-eval task name (its dataset comes from the hub: offline, a one-line refusal) or a local task: a
YAML file or a folder of them in lm-eval's task format whose data are local JSON/JSONL files. The studio ships
one (``studio-general``, general knowledge and arithmetic, offline) as the quick default.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from studio.engine import runs
from studio.engine.errors import DataError, StudioError

DEFAULT_TASKS = ("studio-general",)
PREFERRED = ("acc_norm", "acc", "exact_match", "f1", "bleu")  # the metric reported when a task has several
BATCH = 8


def task_sources(tasks: list[str], into: Path) -> tuple[list[str], list[Path]]:
    """(task names, folders for lm-eval to include): a path to a YAML file (its ``task:`` name) or a folder (every
    task in it), a bundled task's name, or an lm-eval task name. A local task's YAML is copied into ``into`` with
    its ``data_files`` made absolute (lm-eval reads them from the working directory; the studio from beside the
    YAML, where a user puts them)."""
    from studio.settings import ASSETS

    names, include = [], [_localised(sorted((ASSETS / "benchmarks").glob("*.yaml")), into / "bundled")]
    for t in (x.strip() for x in tasks):
        if not t:
            continue
        p = Path(t).expanduser()
        if p.suffix in (".yaml", ".yml") and p.is_file():
            found = [p]
        elif p.is_dir():
            found = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not found:
                raise DataError(f"{p}: no task YAML in this folder")
        else:
            names.append(t)
            continue
        include.append(_localised(found, into / f"local{len(include)}"))
        read = [_read_yaml(y) for y in found]
        groups = {str(d["group"]): d.get("task") for d in read if d.get("group")}  # a group runs its members
        members = {m for ts in groups.values() if isinstance(ts, list) for m in ts if isinstance(m, str)}
        tasks_here = [*groups, *(str(d["task"]) for d in read if isinstance(d.get("task"), str)
                                 and not d.get("group") and d["task"] not in members)]
        if not tasks_here:
            raise DataError(f"{p.name}: a task YAML names its task (task: NAME) or its group (group: NAME)")
        names += tasks_here
    if not names:
        raise StudioError("name at least one task (studio-general, a YAML file, or an lm-eval task name)")
    return names, include


def _read_yaml(path: Path) -> dict:
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_Tolerant)
    except yaml.YAMLError as e:
        raise DataError(f"{path.name}: not a task YAML ({str(e).splitlines()[0]})") from None
    return loaded if isinstance(loaded, dict) else {}


def _localised(yamls: list[Path], folder: Path) -> Path:
    """The YAMLs copied into ``folder``, each ``dataset_kwargs.data_files`` path that names a file beside its YAML
    made absolute; the rest of the text as it was (``!function`` tags, includes and all)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for y in yamls:
        text = y.read_text(encoding="utf-8")
        files = (_read_yaml(y).get("dataset_kwargs") or {}).get("data_files") or {}
        for value in (files.values() if isinstance(files, dict) else [files]):
            for name in value if isinstance(value, list) else [value]:
                if isinstance(name, str) and not Path(name).is_absolute() and (y.parent / name).is_file():
                    text = text.replace(name, str((y.parent / name).resolve()), 1)
        (folder / y.name).write_text(text, encoding="utf-8")
        for extra in y.parent.glob("*.py"):  # a task's own functions (!function utils.x)
            shutil.copy(extra, folder / extra.name)
    return folder


def _tolerant_tag(loader, suffix, node):
    return None


class _Tolerant(yaml.SafeLoader):
    """Reads a task YAML's plain keys, skipping lm-eval's own tags (``!function``)."""


_Tolerant.add_multi_constructor("!", _tolerant_tag)


def _samples_of(result: dict, task: str) -> tuple[str, dict[tuple, float]]:
    """(metric, {(subtask, doc_id): value}) of one task's logged samples (a group's: every subtask's), the first
    metric of ``PREFERRED`` they have."""
    logged = result.get("samples", {})
    parts = [task] if task in logged else [s for s in result.get("group_subtasks", {}).get(task, []) if s in logged]
    samples = [(part, s) for part in parts for s in logged[part]]
    if not samples:
        raise StudioError(f"{task}: lm-eval logged no samples")
    first = samples[0][1]
    metrics = [m for m in first.get("metrics", []) if isinstance(first.get(m), (int, float))]
    metric = next((m for m in PREFERRED if m in metrics), metrics[0] if metrics else None)
    if metric is None:
        raise StudioError(f"{task}: no per-item metric to pair (lm-eval reported {first.get('metrics')})")
    return metric, {(part, s["doc_id"]): float(s[metric]) for part, s in samples if metric in s}


def _evaluate(model, tokenizer, names: list[str], include: list[Path], limit: int | None, fewshot: int | None,
              chat: bool) -> dict:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(p) for p in include])
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise StudioError(f"unknown task {unknown[0]!r}: an lm-eval task name, a bundled one "
                          f"({', '.join(DEFAULT_TASKS)}), or a path to a task YAML")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=BATCH, device=str(model.device))
    try:
        return lm_eval.simple_evaluate(model=lm, tasks=names, task_manager=manager, limit=limit, num_fewshot=fewshot,
                                       log_samples=True, apply_chat_template=chat, random_seed=0, numpy_random_seed=0,
                                       torch_random_seed=0, fewshot_random_seed=0, bootstrap_iters=0)
    except ConnectionError:  # datasets' own, once its retries are spent
        raise StudioError(f"{', '.join(names)}: the task's dataset comes from the Hugging Face hub, which this "
                          "machine cannot reach; run a local task (a YAML file with local data, or "
                          "studio-general)") from None


def paired(base: dict, tuned: dict, seed: int = 0) -> dict:
    """The tuned-minus-base difference over the items both answered, with a paired bootstrap interval and p."""
    from studio.engine.judge import metrics as M

    ids = sorted(set(base) & set(tuned))
    if not ids:
        raise StudioError("the base and tuned runs answered no item in common")
    b, t = M._mean_metric([base[i] for i in ids]), M._mean_metric([tuned[i] for i in ids])
    d = M.paired(b, t, seed)
    verdict = "forgot" if d.ci_high < 0 else "gained" if d.ci_low > 0 else "no clear change"
    return {"base": b.value, "tuned": t.value, "delta": d.value, "ci_low": d.ci_low, "ci_high": d.ci_high,
            "p": d.p_value, "n": len(ids), "verdict": verdict}


def benchmark(run_dir: str | Path, tasks: list[str] | tuple[str, ...] = DEFAULT_TASKS, limit: int | None = None,
              fewshot: int | None = None, name: str | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    import contextlib
    import tempfile

    from studio.engine.judge.generate import base_of, load_pair

    say = progress or (lambda msg: None)
    run = Path(run_dir)
    started, results = time.time(), {}
    with tempfile.TemporaryDirectory() as tmp:
        names, include = task_sources(list(tasks), Path(tmp))
        say("loading the models")
        pair = load_pair(run)
        chat = bool(getattr(pair.tokenizer, "chat_template", None))  # as the run trained: in its chat template
        for side in ("base", "tuned"):
            say(f"running {', '.join(names)} on the {side} model")
            with (base_of(pair) if side == "base" else contextlib.nullcontext(pair.tuned)) as model:
                results[side] = _evaluate(model, pair.tokenizer, names, include, limit, fewshot, chat)
    rows = []
    for task in names:
        metric, base = _samples_of(results["base"], task)
        _, tuned = _samples_of(results["tuned"], task)
        rows.append({"task": task, "metric": metric, **paired(base, tuned)})
    out = {"tasks": rows, "run": run.name, "limit": limit, "fewshot": fewshot, "chat_template": chat,
           "lm_eval": _version(), "seconds": round(time.time() - started, 1)}
    runs.write_benchmark(run, name or time.strftime("%Y%m%d-%H%M%S"), out)
    return out


def _version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def summary_text(result: dict) -> str:
    """One line a task, as the CLI prints it and the Compare tab says it."""
    lines = []
    for r in result["tasks"]:
        lines.append(f"{r['task']} ({r['metric']}, {r['n']} items): base {r['base']:.3f}, tuned {r['tuned']:.3f}, "
                     f"tuned - base {r['delta']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], p {r['p']:.3g}: "
                     f"{r['verdict']}" + (" (few items: read the interval)" if r["n"] < 30 else ""))
    return "\n".join(lines)


def load(run: Path, name: str) -> dict:
    return json.loads(runs.benchmark_file(run, name).read_text())
