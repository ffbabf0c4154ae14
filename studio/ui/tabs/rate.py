"""Rate tab: people judge outputs. Blind A/B pairs (sides randomised, identities revealed after the
vote), 1-5 Likert ratings on four dimensions, and the results: a Bradley-Terry leaderboard with
intervals, Likert means, rater agreement and which automatic metric agrees with the people."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from ...engine import human
from ...engine.ratings import DIMENSIONS, Ratings
from ..tabs.compare import run_dir, saved_results

KEYS_JS = """
() => { document.addEventListener('keydown', (e) => {
  if (!'12345'.includes(e.key) || ['INPUT', 'TEXTAREA'].includes(document.activeElement.tagName)) return;
  for (const dim of ['quality', 'relevance', 'coherence', 'helpfulness']) {
    const box = document.querySelector('#likert-' + dim);
    if (box && !box.querySelector('input:checked')) {
      const input = box.querySelector(`input[value='${e.key}']`);
      if (input) { input.click(); return; }
    }
  }
}); }
"""


@dataclass
class RateTab:
    rater: gr.Textbox
    run: gr.Dropdown
    result: gr.Dropdown
    add: gr.Button
    upload: gr.File
    pool: gr.Markdown
    next_pair: gr.Button
    prompt: gr.Markdown
    out_a: gr.Markdown
    out_b: gr.Markdown
    votes: list
    reveal: gr.Markdown
    next_one: gr.Button
    one_prompt: gr.Markdown
    one_output: gr.Markdown
    dims: list
    comment: gr.Textbox
    submit: gr.Button
    progress: gr.Markdown
    refresh: gr.Button
    board: gr.Dataframe
    likert: gr.Dataframe
    agree: gr.Dataframe
    versus: gr.Dataframe
    export: gr.Button
    export_file: gr.File
    to_dpo: gr.Button


def build() -> RateTab:
    gr.Markdown("### 5. Rate\nJudge answers yourself: blind pairs (you do not know which model wrote which) and "
                "1-5 ratings. The results rank the models with intervals and say which metric agrees with you.")
    with gr.Row():
        rater = gr.Textbox(label="Your name (every rating records its rater)", elem_id="rater", scale=2)
        run = gr.Dropdown(label="Add items from a run's comparison", choices=[], allow_custom_value=True, scale=2)
        result = gr.Dropdown(label="Comparison result", choices=[], scale=2, allow_custom_value=True)
        add = gr.Button("Add to the rating pool", scale=1, elem_id="rate-add")
    with gr.Row():
        upload = gr.File(label="…or import ratings (Chatbot Arena battles or Likert CSV/JSONL)",
                         file_types=[".csv", ".jsonl", ".json"], type="filepath", height=80)
        pool = gr.Markdown(elem_id="rate-pool")
    with gr.Tab("Blind A/B"):
        next_pair = gr.Button("Show a pair", variant="primary", elem_id="pair-next")
        prompt = gr.Markdown(elem_id="pair-prompt")
        with gr.Row():
            out_a = gr.Markdown(label="A", elem_id="pair-a", container=True)
            out_b = gr.Markdown(label="B", elem_id="pair-b", container=True)
        with gr.Row():
            votes = [gr.Button(text, elem_id=f"vote-{key}") for key, text in
                     (("a", "A is better"), ("b", "B is better"), ("tie", "Tie"), ("bothbad", "Both bad"),
                      ("skip", "Skip"))]
        reveal = gr.Markdown(elem_id="pair-reveal")
    with gr.Tab("Likert 1-5"):
        next_one = gr.Button("Show an answer", variant="primary", elem_id="likert-next")
        one_prompt = gr.Markdown()
        one_output = gr.Markdown(container=True, elem_id="likert-output")
        gr.Markdown("Keys 1-5 fill the next unset dimension.")
        with gr.Row():
            dims = [gr.Radio([1, 2, 3, 4, 5], label=d, elem_id=f"likert-{d}") for d in DIMENSIONS]
        comment = gr.Textbox(label="Comment (optional)")
        submit = gr.Button("Submit rating", elem_id="likert-submit")
        progress = gr.Markdown(elem_id="likert-progress")
    with gr.Tab("Results"):
        refresh = gr.Button("Refresh results", elem_id="rate-refresh")
        board = gr.Dataframe(label="Leaderboard (Bradley-Terry, Elo scale, 95% bootstrap CI)", interactive=False,
                             elem_id="leaderboard")
        likert = gr.Dataframe(label="Likert means (95% CI)", interactive=False)
        agree = gr.Dataframe(label="Rater agreement", interactive=False)
        versus = gr.Dataframe(label="Which metric agrees with people (Kendall's tau, per item)", interactive=False)
        with gr.Row():
            export = gr.Button("Export all ratings (CSV)")
            to_dpo = gr.Button("Train on these votes (DPO)", variant="primary", elem_id="rate-dpo")
        export_file = gr.File(label="Export", interactive=False)
    return RateTab(rater, run, result, add, upload, pool, next_pair, prompt, out_a, out_b, votes, reveal,
                   next_one, one_prompt, one_output, dims, comment, submit, progress, refresh, board, likert, agree,
                   versus, export, export_file, to_dpo)


def add_comparison(db: Ratings, run_name: str, result: str, owner: str | None = None) -> int:
    """Each example of a saved comparison becomes an item with two outputs: base and the run."""
    folder = run_dir(run_name, owner)
    if not folder or result not in saved_results(run_name, owner):
        raise ValueError("Pick a run and one of its comparison results first.")
    rows = [json.loads(line) for line in (folder / "eval" / result / "predictions.jsonl").read_text().splitlines()]
    for i, r in enumerate(rows):
        question = r["prompt"][-1]["content"] if isinstance(r["prompt"], list) else str(r["prompt"])
        scores = {k.replace("tuned_", f"{run_name}_", 1) if k.startswith("tuned_") else k: v
                  for k, v in r["scores"].items()}
        db.add_item(f"{run_name}/{result}/{i}", question, {"base": r["base"], run_name: r["tuned"]},
                    reference=r["reference"], source=f"{run_name}/{result}", scores=scores)
    return len(rows)


def pool_text(db: Ratings) -> str:
    c = db.counts()
    return f"Rating pool: **{c['items']}** items; **{c['votes']}** pairwise votes and **{c['likert']}** Likert ratings."


def pick_pair(db: Ratings, rater: str, rng: random.Random) -> dict | None:
    """A pair this rater has not judged, from the least-judged pairing of systems (so each system
    meets the others about equally), sides randomised."""
    mine = {(v["item_id"], v["system_a"], v["system_b"]) for v in db.votes() if v["rater"] == rater}
    seen = Counter((v["system_a"], v["system_b"]) for v in db.votes())
    options = []
    for it in db.items():
        systems = sorted(s for s, t in it["outputs"].items() if t.strip())
        for i, a in enumerate(systems):
            for b in systems[i + 1:]:
                if (it["id"], a, b) not in mine:
                    options.append((seen[(a, b)], rng.random(), it, a, b))
    if not options:
        return None
    _, _, it, a, b = min(options, key=lambda o: (o[0], o[1]))
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    return {"item": it["id"], "prompt": it["prompt"], "left": left, "right": right,
            "left_text": it["outputs"][left], "right_text": it["outputs"][right], "key": uuid.uuid4().hex}


def pick_one(db: Ratings, rater: str, rng: random.Random) -> tuple[dict | None, int, int]:
    """An output this rater has not rated (system hidden), and their progress (done, total)."""
    done = {(r["item_id"], r["system"]) for r in db.likert() if r["rater"] == rater}
    todo, total = [], 0
    for it in db.items():
        for s, text in it["outputs"].items():
            if text.strip():
                total += 1
                if (it["id"], s) not in done:
                    todo.append({"item": it["id"], "system": s, "prompt": it["prompt"], "text": text})
    return (rng.choice(todo) if todo else None), total - len(todo), total


def results(db: Ratings):
    votes, likert = db.votes(), db.likert()
    board = pd.DataFrame([[r["rank"], r["model"], round(r["rating"], 1), f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]",
                           f"{r['win_rate']:.3f} [{r['win_rate_ci_low']:.3f}, {r['win_rate_ci_high']:.3f}]", r["n"]]
                          for r in human.leaderboard(votes)],
                         columns=["rank", "model", "rating", "95% CI", "win rate [95% CI]", "votes"])
    means = pd.DataFrame([[r["system"], r["dimension"], round(r["mean"], 3), f"[{r['ci_low']:.2f}, {r['ci_high']:.2f}]",
                           r["n"]] for r in human.likert_summary(likert)],
                         columns=["system", "dimension", "mean", "95% CI", "n"])
    rows = []
    for dim, d in human.agreement(likert).items():
        alpha = None if d["krippendorff_alpha"] is None else round(d["krippendorff_alpha"], 3)
        rows += [[dim, " vs ".join(p["raters"]), p["n"], p["kappa"], p["kappa_quadratic"], alpha]
                 for p in d["pairs"]] or [[dim, "-", 0, None, None, alpha]]
    agree = pd.DataFrame(rows, columns=["dimension", "raters", "shared", "Cohen kappa", "kappa (quadratic)",
                                        "Krippendorff alpha (ordinal)"])
    versus = pd.DataFrame([[r["metric"], round(r["kendall_tau"], 3), round(r["p_value"], 4), r["n"]]
                           for r in _human_vs_metric(db, votes)], columns=["metric", "Kendall tau", "p", "items"])
    return board, means, agree, versus


def _human_vs_metric(db: Ratings, votes: list[dict]) -> list[dict]:
    """Per run: the run against base on that run's items, metrics renamed back to tuned_/base_."""
    items = db.items()
    out = []
    for source in sorted({it["source"] for it in items if "/" in it["source"]}):
        run_name = source.split("/")[0]
        mine = [{**it, "scores": {k.replace(f"{run_name}_", "tuned_", 1): v for k, v in it["scores"].items()}}
                for it in items if it["source"] == source]
        out += human.human_vs_metric(votes, mine, tuned=run_name, base="base")
    return out

