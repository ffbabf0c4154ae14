"""The judging commands of ``python -m studio``: evaluate, ratings and export.

Registered on the main parser by ``add_commands``; errors follow ``cli.main``'s one-line rule.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError, StudioConfig


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .engine.evaluate import evaluate_run
    from .engine.metrics import ORDER

    run = Path(a.run_dir)
    if not (run / "config.yaml").is_file():
        raise ConfigError(f"{run}: not a run directory (no config.yaml)")
    settings = StudioConfig.load(run / "config.yaml").with_overrides(a.set or []).eval
    say = (lambda m: None) if a.json else (lambda m: print(m, file=sys.stderr))
    s = evaluate_run(run, data=a.data, limit=a.limit, settings=settings, name=a.name, progress=say)
    if a.json:
        print(json.dumps(s, indent=1))
        return 0
    print(f"{s['examples']} examples from {s['eval_set']}; results in {s['dir']}")
    print(f"{'metric':20s} {'base [95% CI]':>28s} {'tuned [95% CI]':>28s} {'delta':>9s} {'p':>7s}")
    for m in ORDER:
        if m not in s["delta"]:
            continue
        b, t, d = s["base"][m], s["tuned"][m], s["delta"][m]
        cell = lambda x: f"{x['value']:.4g} [{x['ci_low']:.4g}, {x['ci_high']:.4g}]"  # noqa: E731
        print(f"{m:20s} {cell(b):>28s} {cell(t):>28s} {d['value']:+9.4g} {d['p_value']:7.3f}")
    info = s.get("info", {})
    print(f"BLEU: {info.get('bleu_signature')}; {info.get('meteor')}; BERTScore: {info.get('bertscore_model')}")
    return 0


def cmd_ratings(a: argparse.Namespace) -> int:
    from .engine import human
    from .engine.ratings import default_db
    from .engine.ratings_io import export_file, import_file, preference_rows

    db = default_db()
    if a.action == "import":
        counts = import_file(db, a.file)
        print(f"imported {counts['pairwise']} pairwise votes and {counts['likert']} Likert ratings")
    elif a.action == "export":
        if a.preferences:
            from .engine.runs import write_atomic

            rows = preference_rows(db)
            write_atomic(Path(a.out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            print(f"wrote {len(rows)} preference pairs (prompt, chosen, rejected) to {a.out}")
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


def cmd_export(a: argparse.Namespace) -> int:
    from .engine import export as E

    run = Path(a.run_dir)
    if a.format == "adapter":
        print(f"adapter zip: {E.export_adapter(run, a.out)}")
    elif a.format == "merged":
        r = E.export_merged(run, a.out)
        print(f"merged model: {r['path']} (max |logit difference| vs adapter: {r['max_abs_logit_diff']:.2e})")
    else:
        if a.table:
            for row in E.quantization_table(run):
                print(f"{row['export']:14s} {row['size_mb']:8.2f} MB {row['tokens_per_s']:8.0f} tokens/s "
                      f"perplexity {row['perplexity']:.3f}")
        else:
            print(f"quantized model: {E.export_quantized(run, a.bits, a.out)}")
    if a.push:
        target = a.out or (E.export_root() / f"{run.name}-adapter.zip")
        print(f"pushed: {E.push_to_hub(target, a.push, private=not a.public)}")
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
    s = sub.add_parser("export", help="adapter zip, merged model or quantized model")
    s.add_argument("run_dir")
    s.add_argument("--format", choices=["adapter", "merged", "quantized"], default="adapter")
    s.add_argument("--out", help="where to write it (default: STUDIO_HOME/exports/)")
    s.add_argument("--bits", type=int, choices=[8, 4], default=8, help="quantized: 8-bit or 4-bit NF4")
    s.add_argument("--table", action="store_true", help="quantized: size, speed and perplexity of fp32/int8/nf4")
    s.add_argument("--push", metavar="REPO_ID", help="also push to the hub (private unless --public)")
    s.add_argument("--public", action="store_true")
    s.set_defaults(fn=cmd_export)
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
