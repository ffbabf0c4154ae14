"""``studio evaluate``, ``studio ratings`` and ``studio campaign``: base vs tuned by metrics, what people said,
and rating campaigns (a frozen set of pairs, k raters each, gold checks, repeats and exclusion rules)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from studio.config import ConfigError


def cmd_evaluate(a: argparse.Namespace) -> int:
    from studio.engine import runs
    from studio.engine.judge.evaluate import evaluate_run

    run = Path(a.run_dir)
    if not runs.is_run(run):
        raise ConfigError(f"{run}: not a run directory (no {runs.CONFIG})")
    settings = runs.Run(run).config.with_overrides(a.set or []).eval
    say = (lambda m: None) if a.json else (lambda m: print(m, file=sys.stderr))
    s = evaluate_run(run, data=a.data, limit=a.limit, settings=settings, name=a.name, progress=say,
                     leave_out_seen=a.leave_out_seen)
    if a.json:
        print(json.dumps({**s.to_dict(), "dir": s.dir}, indent=1))
        return 0
    print(f"{s.examples} examples from {s.eval_set}; results in {s.dir}")
    o = s.overlap_with_training
    if o.get("unknown"):
        print(f"whether the run trained on these prompts cannot be said: {o['unknown']}")
    elif o.get("exact") or o.get("near"):
        print(f"{'left out' if o.get('left_out') else 'among them'}: {o['exact']} prompts the run trained on (the "
              f"same once case, spaces and punctuation are set aside) and {o['near']} nearly the same"
              + ("" if o.get("left_out") else "; a metric is called better only when the other prompts say so too "
                                               "(--leave-out-seen compares on those alone)"))
    print(f"{'metric':20s} {'base [95% CI]':>28s} {'tuned [95% CI]':>28s} {'delta':>9s} {'p':>7s}  verdict")
    for m, d in s.delta.items():
        print(f"{m:20s} {s.base[m].cell():>28s} {s.tuned[m].cell():>28s} {d.value:+9.4g} {d.p_value:7.3f}  "
              f"{s.verdict(m)}")
    info = s.info
    print(f"BLEU: {info.get('bleu_signature')}; {info.get('meteor')}; BERTScore: {info.get('bertscore_model')}")
    return 0


def cmd_benchmark(a: argparse.Namespace) -> int:
    from studio.engine import runs
    from studio.engine.judge.benchmark import DEFAULT_TASKS, benchmark, summary_text

    run = Path(a.run_dir)
    if not runs.is_run(run):
        raise ConfigError(f"{run}: not a run directory (no {runs.CONFIG})")
    tasks = [t for t in (a.tasks or ",".join(DEFAULT_TASKS)).split(",") if t.strip()]
    say = (lambda m: None) if a.json else (lambda m: print(m, file=sys.stderr))
    got = benchmark(run, tasks, a.limit, a.fewshot, a.name, say)
    print(json.dumps(got, indent=1) if a.json else summary_text(got))
    return 0


def cmd_ratings(a: argparse.Namespace) -> int:
    from studio.engine.judge import human
    from studio.engine.judge.ratings import default_db
    from studio.engine.judge.ratings_io import export_file, import_file, import_text, preference_rows, skipped_text

    db = default_db()
    if a.action == "import" and a.campaign:
        from studio.engine.judge import campaign

        got = campaign.import_battles(db, a.campaign, a.file)
        print(f"imported {got['answers']} answers of {got['raters']} raters into campaign {a.campaign}")
    elif a.action == "import":
        print(import_text(import_file(db, a.file)))
    elif a.action == "export":
        if a.preferences:
            from studio.engine.runs import write_jsonl

            rows, skipped = preference_rows(db)
            write_jsonl(Path(a.out), rows)
            print(f"wrote {len(rows)} preference pairs (prompt, chosen, rejected) to {a.out}"
                  + (f"; {skipped_text(skipped)}" if skipped else ""))
        else:
            print(f"wrote {export_file(db, a.out)} ratings to {a.out}")
    elif a.action == "leaderboard":
        rows = human.leaderboard(db.votes())
        if a.json:
            print(json.dumps(rows, indent=1))
        else:
            print(f"{'rank':>4} {'model':30s} {'rating':>8} {'95% CI':>17} {'win rate':>9} {'n':>5}")
            for r in rows:
                print(f"{r['rank']:>4} {r['model']:30s} {r['rating']:8.1f} [{r['ci_low']:6.1f}, {r['ci_high']:6.1f}] "
                      f"{r['win_rate']:9.3f} {r['n']:5d}")
    else:
        result = {"agreement": human.agreement(db.likert()), "likert": human.likert_summary(db.likert()),
                  "human_vs_metric": human.human_vs_metric(db.votes(), db.items())}
        if a.json:
            print(json.dumps(result, indent=1))
        else:
            for dim, d in result["agreement"].items():
                alpha = "-" if d["krippendorff_alpha"] is None else f"{d['krippendorff_alpha']:.3f}"
                print(f"{dim}: Krippendorff alpha (ordinal) {alpha} over {d['raters']} raters")
                for p in d["pairs"]:
                    print(f"  {p['raters'][0]} vs {p['raters'][1]}: kappa {p['kappa']}, quadratic "
                          f"{p['kappa_quadratic']} (n={p['n']})")
            for r in result["human_vs_metric"]:
                print(f"{r['metric']}: Kendall tau {r['kendall_tau']:+.3f} (p {r['p_value']:.3f}, n={r['n']})")
    return 0


def add_commands(sub) -> None:
    s = sub.add_parser("evaluate", help="compare base and tuned on held-out prompts, with intervals")
    s.add_argument("run_dir")
    s.add_argument("--data", help="evaluate on this file instead of the run's validation split")
    s.add_argument("--limit", type=int, help="at most N examples (default eval.limit)")
    s.add_argument("--name", help="the results folder under RUN_DIR/eval/ (default: a timestamp)")
    s.add_argument("--leave-out-seen", action="store_true",
                   help="compare only the prompts that are not (nearly) among the run's training prompts")
    s.add_argument("--set", action="append", metavar="eval.KEY=VALUE", help="generation settings")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_evaluate)
    s = sub.add_parser("benchmark", help="standard benchmarks (lm-evaluation-harness), base vs tuned, paired")
    s.add_argument("run_dir")
    s.add_argument("--tasks", help="comma-separated: lm-eval task names, task YAML files or folders (default: "
                                   "studio-general, the studio's offline quick check)")
    s.add_argument("--limit", type=int, help="at most N items a task")
    s.add_argument("--fewshot", type=int, help="few-shot examples (default: the task's own)")
    s.add_argument("--name", help="the result's name under RUN_DIR/benchmarks/ (default: a timestamp)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_benchmark)
    s = sub.add_parser("ratings", help="human ratings: import, export, leaderboard, agreement")
    rs = s.add_subparsers(dest="action", required=True)
    r = rs.add_parser("import", help="CSV/JSONL: Chatbot Arena battles or Likert rows")
    r.add_argument("file")
    r.add_argument("--campaign", help="the battles are this campaign's answers (question_id, model_a, model_b, "
                                      "winner, judge; optional tstamp, seconds)")
    r = rs.add_parser("export", help="all ratings (CSV/JSONL), or --preferences for DPO")
    r.add_argument("--out", required=True)
    r.add_argument("--preferences", action="store_true", help="decided votes as prompt/chosen/rejected JSONL")
    for name in ("leaderboard", "agreement"):
        r = rs.add_parser(name)
        r.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_ratings)
    _campaign_commands(sub)


def _campaign_commands(sub) -> None:
    s = sub.add_parser("campaign", help="rating campaigns: create, list, quality, leaderboard, export, import")
    cs = s.add_subparsers(dest="action", required=True)
    r = cs.add_parser("create", help="a campaign of every pair of systems per question")
    r.add_argument("--from", dest="sources", action="append", default=[], metavar="RUN/eval/NAME",
                   help="a saved comparison's answers (base and tuned); repeatable")
    r.add_argument("--items", help="JSONL rows of question_id, prompt, model, output")
    r.add_argument("--mode", default="pairwise", choices=("pairwise", "likert", "both"),
                   help="pairs of answers, single answers scored 1-5 per dimension, or both")
    r.add_argument("--overlap", type=int, default=3, help="raters per pair")
    r.add_argument("--per-rater", type=int, default=0,
                   help="items a rater is given at most (default 0: as many as still need raters)")
    r.add_argument("--draft", action="store_true",
                   help="nobody rates it until `campaign open ID`; meanwhile its link shows you what raters will "
                        "see and lets you mark gold pairs")
    r.add_argument("--gold", help="JSONL rows of question_id, model_a, model_b, winner: pairs with a known answer")
    r.add_argument("--repeat", type=float, default=0.1, help="share of a rater's answers shown to them again")
    r.add_argument("--min-gold", type=float, default=0.7, help="exclude raters surely below this gold accuracy")
    r.add_argument("--min-seconds", type=float, default=3.0, help="exclude raters faster than this per item")
    r.add_argument("--name", default="")
    r.add_argument("--guidelines", help="a markdown file the raters read first (default: the studio's)")
    r.add_argument("--question", help="the pairwise question (default: Which answer is better?)")
    r.add_argument("--json", action="store_true")
    r = cs.add_parser("judge", help="a judge beside the people: each pair in both orders, agreement with them")
    r.add_argument("id")
    r.add_argument("--reward", help="run:NAME of a reward run")
    r.add_argument("--endpoint", help="an OpenAI-compatible base URL (studio serve's works)")
    r.add_argument("--model", help="the endpoint's model name")
    r.add_argument("--api-key", default="none")
    r.add_argument("--json", action="store_true")
    for name in ("list", "quality", "leaderboard", "scores", "metrics", "coverage", "export", "import", "close", "push",
                 "copy", "open"):
        r = cs.add_parser(name)
        if name not in ("list", "import"):
            r.add_argument("id")
        if name == "copy":
            r.add_argument("--name", help="the copy's name (default: NAME (copy))")
        if name == "push":
            r.add_argument("--repo", required=True,
                           help="a dataset repo (org/name); the campaign goes to campaigns/ID/")
        if name == "import":
            r.add_argument("folder", help="a folder `studio campaign export` wrote")
        if name == "export":
            r.add_argument("--out", required=True)
            r.add_argument("--preferences", action="store_true",
                           help="the people's verdicts as prompt/chosen/rejected JSONL (DPO, a reward model)")
        if name == "leaderboard":
            r.add_argument("--all-raters", action="store_true", help="keep the excluded raters")
        r.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_campaign)


def _eval_source(value: str) -> tuple[Path, str]:
    """RUN/eval/NAME, with RUN a run's folder or name."""
    from studio.engine import runs

    p = Path(value)
    if p.parent.name != runs.EVAL:
        raise ConfigError(f"--from {value}: expected RUN/eval/NAME (a saved comparison)")
    run = p.parent.parent if runs.is_run(p.parent.parent) else runs.find_run(p.parent.parent.name)
    if run is None:
        raise ConfigError(f"--from {value}: no run {p.parent.parent.name!r} (studio runs lists them)")
    return Path(run), p.name


def cmd_campaign(a: argparse.Namespace) -> int:
    from studio.engine.judge import campaign
    from studio.engine.judge.ratings import default_db

    db = default_db()
    if a.action == "create":
        _campaign_create(a, db)
    elif a.action == "open":
        campaign.open_draft(db, a.id)
        print(f"campaign {a.id} is open: raters open it with ?campaign={a.id}")
    elif a.action in ("quality", "leaderboard", "scores", "metrics", "coverage", "list"):
        _campaign_tables(a, db)
    elif a.action == "judge":
        if bool(a.reward) == bool(a.endpoint) or (a.endpoint and not a.model):
            raise ConfigError("campaign judge needs --reward run:NAME, or --endpoint URL with --model NAME")
        judge = campaign.reward_judge(a.reward) if a.reward else \
            campaign.endpoint_judge(a.endpoint, a.model, a.api_key, campaign.spec_of(db, a.id).rubric.question)
        got = campaign.judge_agreement(db, a.id, campaign.judge_units(db, a.id, judge))
        print(json.dumps(got, indent=1) if a.json else
              f"on {got['n']} pairs, each judged in both orders: agreement with the people "
              f"{_pct(got.get('agreement_without_ties'))} without ties, {_pct(got.get('agreement_with_ties'))} "
              f"with; Cohen's kappa {got.get('kappa')}; its two orders agree on {_pct(got.get('consistency'))}")
    elif a.action == "copy":
        cid = campaign.copy(db, a.id, a.name)
        print(json.dumps({"id": cid}) if a.json else f"campaign {cid}: a copy of {a.id}, no answers yet")
    elif a.action == "export" and a.preferences:
        from studio.engine.runs import write_jsonl

        rows = campaign.preference_rows(db, a.id)
        write_jsonl(Path(a.out), rows)
        print(json.dumps({"out": a.out, "pairs": len(rows)}) if a.json else
              f"wrote {len(rows)} preference pairs (the raters' majority) to {a.out}")
    elif a.action == "export":
        out = campaign.export(db, a.id, a.out)
        print(json.dumps({"out": str(out)}) if a.json else f"wrote campaign {a.id} to {out}")
    elif a.action == "push":
        import os

        from studio.engine.judge import campaign_hub

        campaign_hub.push(db, [a.id], a.repo, os.environ.get("HF_TOKEN") or None)
        print(json.dumps({"repo": a.repo}) if a.json else f"pushed campaign {a.id} to {a.repo} (campaigns/{a.id}/)")
    elif a.action == "import":
        cid = campaign.import_export(db, a.folder)
        print(json.dumps({"id": cid}) if a.json else f"imported campaign {cid}")
    else:
        campaign.close(db, a.id)
        print(f"campaign {a.id} is closed")
    return 0


def _campaign_create(a: argparse.Namespace, db) -> None:
    from studio.engine.judge import campaign

    items = [it for src in a.sources for it in campaign.items_from_eval(*_eval_source(src))]
    items += campaign.items_from(a.items) if a.items else []
    if not items:
        raise ConfigError("campaign create needs --from RUN/eval/NAME or --items FILE")
    rubric = campaign.Rubric()
    if a.guidelines:
        rubric = dataclasses.replace(rubric, guidelines=Path(a.guidelines).read_text(encoding="utf-8")[:20000])
    if a.question:
        rubric = dataclasses.replace(rubric, question=a.question[:300])
    spec = campaign.Spec(name=a.name or "campaign", mode=a.mode, overlap=a.overlap, repeat=a.repeat,
                         min_gold=a.min_gold, min_seconds=a.min_seconds, rubric=rubric, per_rater=a.per_rater)
    cid = campaign.create(db, items, spec, campaign.gold_from(a.gold) if a.gold else [], draft=a.draft)
    key = campaign.draft_key(db, cid)
    print(json.dumps({"id": cid, **({"preview": f"?campaign={cid}&prepare={key}"} if key else {})}) if a.json else
          f"campaign {cid}: " + (f"a draft: open ?campaign={cid}&prepare={key} (your preview link) to see it as "
                                 f"raters will and mark gold pairs, then `studio campaign open {cid}`" if key else
                                 f"raters open it with ?campaign={cid}"))


def _campaign_tables(a: argparse.Namespace, db) -> None:
    """list, quality, leaderboard and scores: JSON with --json, else a table."""
    from studio.engine.judge import campaign

    got = {"list": lambda: campaign.campaigns(db), "quality": lambda: {"raters": campaign.quality(db, a.id)},
           "leaderboard": lambda: campaign.leaderboard(db, a.id, all_raters=a.all_raters),
           "scores": lambda: campaign.likert(db, a.id),
           "metrics": lambda: campaign.human_vs_metric(db, a.id),
           "coverage": lambda: campaign.coverage(db, a.id)}[a.action]()
    if a.json:
        print(json.dumps(got, indent=1))
    elif a.action == "list":
        print("\n".join(f"{c['id']}  {c['state']:6s}  {c['name']}" for c in got) or "no campaigns yet")
    elif a.action == "quality":
        for r in got["raters"]:
            print(f"{r['rater']:20s} items {r['items']:4d}  gold {_pct(r['gold_accuracy'])}  "
                  f"self {_pct(r['self_consistency'])}  agree {_pct(r['agreement'])}  "
                  f"median {r['median_seconds'] or 0:5.1f} s  " + (f"EXCLUDED: {r['why']}" if r["excluded"] else ""))
    elif a.action == "coverage":
        print(f"{got['complete']} of {got['units']} items have their {got['overlap']} raters; {got['under']} fewer, "
              f"{got['over']} more")
        for r in got["per_item"]:
            print(f"  {r['question_id']:24s} {r['model_a']} vs {r['model_b'] or '(alone)'}: {r['raters']}")
    elif a.action == "metrics":
        for r in got:
            print(f"{r['metric']:20s} Kendall tau {r['kendall_tau']:+.3f} (p {r['p_value']:.3f}, n={r['n']})")
    elif a.action == "leaderboard":
        for r in got:
            print(f"{r['rank']:>4} {r['model']:30s} {r['rating']:8.1f} [{r['ci_low']:6.1f}, {r['ci_high']:6.1f}] "
                  f"n {r['n']}")
    else:
        for m in got["means"]:
            ci = "" if m["ci_low"] is None else f" [{m['ci_low']:.2f}, {m['ci_high']:.2f}]"
            print(f"{m['system']:30s} {m['dimension']:12s} {m['mean']:.2f}{ci} n {m['n']}")
        print("Krippendorff's alpha (ordinal): " + ", ".join(f"{d} {'-' if v is None else f'{v:.3f}'}"
                                                            for d, v in got["alpha"].items()))


def _pct(value) -> str:
    return "   -" if value is None else f"{value:4.0%}"
