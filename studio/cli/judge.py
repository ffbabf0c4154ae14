"""``studio evaluate`` and ``studio ratings``: base vs tuned by metrics, and what people said."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from studio.config import ConfigError, StudioConfig


def cmd_evaluate(a: argparse.Namespace) -> int:
    from studio.engine.judge.evaluate import evaluate_run

    run = Path(a.run_dir)
    if not (run / "config.yaml").is_file():
        raise ConfigError(f"{run}: not a run directory (no config.yaml)")
    settings = StudioConfig.load(run / "config.yaml").with_overrides(a.set or []).eval
    say = (lambda m: None) if a.json else (lambda m: print(m, file=sys.stderr))
    s = evaluate_run(run, data=a.data, limit=a.limit, settings=settings, name=a.name, progress=say)
    if a.json:
        print(json.dumps({**s.to_dict(), "dir": s.dir}, indent=1))
        return 0
    print(f"{s.examples} examples from {s.eval_set}; results in {s.dir}")
    print(f"{'metric':20s} {'base [95% CI]':>28s} {'tuned [95% CI]':>28s} {'delta':>9s} {'p':>7s}  verdict")
    for m, d in s.delta.items():
        print(f"{m:20s} {s.base[m].cell():>28s} {s.tuned[m].cell():>28s} {d.value:+9.4g} {d.p_value:7.3f}  "
              f"{s.verdict(m)}")
    info = s.info
    print(f"BLEU: {info.get('bleu_signature')}; {info.get('meteor')}; BERTScore: {info.get('bertscore_model')}")
    return 0


def cmd_ratings(a: argparse.Namespace) -> int:
    from studio.engine.judge import human
    from studio.engine.judge.ratings import default_db
    from studio.engine.judge.ratings_io import export_file, import_file, import_text, preference_rows, skipped_text

    db = default_db()
    if a.action == "import":
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
    s.add_argument("--set", action="append", metavar="eval.KEY=VALUE", help="generation settings")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_evaluate)
    s = sub.add_parser("ratings", help="human ratings: import, export, leaderboard, agreement")
    rs = s.add_subparsers(dest="action", required=True)
    r = rs.add_parser("import", help="CSV/JSONL: Chatbot Arena battles or Likert rows")
    r.add_argument("file")
    r = rs.add_parser("export", help="all ratings (CSV/JSONL), or --preferences for DPO")
    r.add_argument("--out", required=True)
    r.add_argument("--preferences", action="store_true", help="decided votes as prompt/chosen/rejected JSONL")
    for name in ("leaderboard", "agreement"):
        r = rs.add_parser(name)
        r.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_ratings)
