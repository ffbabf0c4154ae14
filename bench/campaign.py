"""A rating campaign with a known truth: do its rules find the spammers, and does the leaderboard recover the
true order without them?

    python bench/campaign.py [--raters 30] [--spammers 5] [--careless 0] [--questions 40] [--overlap 3] [--seed 0]

Four systems with true Bradley-Terry ratings 1150, 1050, 950, 850 (bravo, delta, alpha, charlie); every
question has an answer from each (6 pairs), 10 gold questions have two answers, one clearly better. Honest
raters take 4-20 s per item, answer a pair as the true ratings make likely (5 % ties) and a gold pair right 95
% of the time; spammers take about a second: half click at random, half always pick the left answer; careless
raters (``--careless``) always pick the left answer at an honest rater's pace, so only the sides catch them. Each
rater asks the campaign for items until it has none for them (``campaign.next_unit`` / ``campaign.answer``,
the calls the rater view makes), on a simulated clock. Then the same answers go through ``ratings import
--campaign`` from a CSV into a copy.

Prints: who was excluded and why; the leaderboard with and without the excluded raters, its distance from the
truth (RMSE of the centred ratings) and its order; coverage (raters per unit); planned repeats; the copy's
result.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studio.engine.judge import campaign as C  # noqa: E402
from studio.engine.judge.ratings import Ratings  # noqa: E402

# the true order, best first (not the names' order: a pair's first system is not always the better one)
TRUTH = {"bravo": 1150.0, "delta": 1050.0, "alpha": 950.0, "charlie": 850.0}


def items_and_gold(questions: int, gold_questions: int = 10):
    items = [{"question_id": f"q{i}", "prompt": f"Question {i}?", "model": m, "output": f"{m}'s answer to {i}"}
             for i in range(questions) for m in TRUTH]
    gold = []
    for g in range(gold_questions):
        good, bad = ("bravo", "charlie") if g % 2 else ("charlie", "bravo")
        items += [{"question_id": f"g{g}", "prompt": f"Gold {g}?", "model": good, "output": "a careful answer"},
                  {"question_id": f"g{g}", "prompt": f"Gold {g}?", "model": bad, "output": "no idea"}]
        gold.append({"question_id": f"g{g}", "model_a": good, "model_b": bad, "winner": "model_a"})
    return items, gold


def p_first_wins(a: str, b: str) -> float:
    return 1 / (1 + 10 ** ((TRUTH[b] - TRUTH[a]) / 400))


def rater_answer(kind: str, left: str, right: str, rng: random.Random) -> tuple[str, float]:
    """(left | right | tie, seconds) for one rater of ``kind`` (honest, random or left) reading the two answers
    as a person would: an honest one sees which is better (here: whose answer it is, or the careful one of a gold
    pair) and says so as often as the true ratings make likely."""
    if kind == "random":
        return rng.choice(C.SIDES), rng.uniform(0.6, 1.6)
    if kind == "left":
        return "left", rng.uniform(0.8, 1.8)
    if kind == "careless":  # always the first side, at a human pace
        return "left", rng.uniform(4.0, 20.0)
    if "careful" in left + right:  # a gold pair: one answer is plainly better
        better = "left" if "careful" in left else "right"
        side = better if rng.random() < 0.95 else ("right" if better == "left" else "left")
    elif rng.random() < 0.05:
        side = "tie"
    else:
        side = "left" if rng.random() < p_first_wins(left.split("'")[0], right.split("'")[0]) else "right"
    return side, rng.uniform(4.0, 20.0)


def simulate(db: Ratings, raters: int = 30, spammers: int = 5, questions: int = 40, overlap: int = 3,
             seed: int = 0, careless: int = 0) -> dict:
    rng = random.Random(seed)
    items, gold = items_and_gold(questions)
    cid = C.create(db, items, C.Spec(name="simulation", overlap=overlap, repeat=0.1, min_gold=0.7, min_seconds=3.0),
                   gold)
    kinds = {f"rater{i:02d}": ("random" if i < (spammers + 1) // 2 else "left") if i < spammers else
             "careless" if i < spammers + careless else "honest" for i in range(raters)}
    clock = {r: 1_000_000.0 for r in kinds}
    shown_twice = []
    active = list(kinds)
    while active:  # raters take turns, one item each, as many people rating at once would
        for r in list(active):
            shown = C.next_unit(db, cid, r, rng, at=clock[r])
            if shown is None:
                active.remove(r)
                continue
            side, seconds = rater_answer(kinds[r], shown.left, shown.right, rng)
            clock[r] += seconds
            C.answer(db, cid, r, shown.unit, side, at=clock[r])
            clock[r] += 0.5
            shown_twice += [shown.unit] if shown.repeat else []
    return {"campaign": cid, "kinds": kinds, "repeats": len(shown_twice)}


def simulate_web(home: Path, raters: int = 30, spammers: int = 5, questions: int = 40, overlap: int = 3,
                 seed: int = 0) -> dict:
    """The same raters through the real web API of a public deployment: the app in its own process
    (STUDIO_PUBLIC=1, each rater a logged-in visitor by a trusted header), every rater a gradio_client of their
    own, all at once, in real time (honest raters 1-5 s an item, spammers at once; the campaign's time rule
    is 1.5 s here so that the run takes a few minutes, not a quarter of an hour)."""
    import os
    import socket
    import subprocess
    import threading
    import time

    import httpx
    from gradio_client import Client

    root = Path(__file__).resolve().parents[1]
    db = Ratings(home / "ratings.sqlite")
    items, gold = items_and_gold(questions)
    cid = C.create(db, items, C.Spec(name="web", overlap=overlap, repeat=0.1, min_gold=0.7, min_seconds=1.5), gold)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "STUDIO_PUBLIC": "1", "STUDIO_HOME": str(home), "STUDIO_HOST": "127.0.0.1",
           "STUDIO_PORT": str(port), "STUDIO_TRUSTED_USER_HEADER": "X-Studio-User", "HF_HUB_OFFLINE": "1"}
    log = (home / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    kinds = {f"rater{i:02d}": ("random" if i < (spammers + 1) // 2 else "left") if i < spammers else "honest"
             for i in range(raters)}
    errors: list[str] = []

    def rate(name: str, kind: str, rng: random.Random) -> None:
        try:
            client = Client(url, verbose=False, analytics_enabled=False, headers={"X-Studio-User": name})
            while not (shown := client.predict(cid, "", api_name="/campaign_next"))["done"]:
                side, seconds = rater_answer(kind, shown["a"], shown["b"], rng)
                time.sleep(seconds / 4.0 if kind == "honest" else 0.05)
                side = {"left": "a", "right": "b"}.get(side, side)
                client.predict(cid, shown["unit"], side, "", api_name="/campaign_answer")
        except Exception as e:  # noqa: BLE001 - a bench reports what went wrong and goes on
            errors.append(f"{name}: {type(e).__name__}: {e}")

    started = time.time()
    try:
        threads = [threading.Thread(target=rate, args=(n, k, random.Random(seed * 1000 + i)))
                   for i, (n, k) in enumerate(kinds.items())]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    return {"db": db, "campaign": cid, "kinds": kinds, "errors": errors, "seconds": time.time() - started}


def reward_judge_agreement(db: Ratings, cid: str, home: Path, steps: int = 0) -> dict:
    """A reward model trained (studio-tiny, every default of method.kind reward) on the people's verdicts of the
    first half of the questions, then used as a judge of the other half: its agreement with the people there,
    and how a judge that always picks the first answer does on the same pairs."""
    import os

    os.environ["STUDIO_HOME"] = str(home)
    from studio.engine.models import run_reference
    from studio.engine.runs import write_jsonl
    from studio.engine.train import loop
    from studio.engine.train.defaults import with_defaults

    units = {u["unit"]: u for u in C.units(db, cid)}
    questions = sorted({u["question_id"] for u in units.values() if u["question_id"].startswith("q")},
                       key=lambda q: int(q[1:]))
    train_q = set(questions[: len(questions) // 2])
    prompts = {units[u]["prompt"] for u in units if units[u]["question_id"] in train_q}
    rows = [r for r in C.preference_rows(db, cid) if r["prompt"] in prompts]
    data = home / "verdicts.jsonl"
    write_jsonl(data, rows)
    sections = {"data": {"path": str(data)}, "method": {"kind": "reward"}, "run_name": "campaign-judge"}
    if steps:
        sections["train"] = {"max_steps": steps}
    cfg, _ = with_defaults(sections)
    result = loop.run(cfg)
    held = {u for u, x in units.items() if x["question_id"] not in train_q and x["gold"] is None}
    judged = [j for j in C.judge_units(db, cid, C.reward_judge(run_reference(result.run_dir.name)))
              if j["unit"] in held]
    first = [j for j in C.judge_units(db, cid, lambda prompt, a, b: "first") if j["unit"] in held]
    return {"pairs_trained_on": len(rows), "state": result.state, "reward": C.judge_agreement(db, cid, judged),
            "always_first": C.judge_agreement(db, cid, first)}


def rmse_from_truth(board: list[dict]) -> float:
    got = {r["model"]: r["rating"] for r in board}
    mean_t, mean_g = sum(TRUTH.values()) / len(TRUTH), sum(got.values()) / len(got)
    return math.sqrt(sum(((got[m] - mean_g) - (TRUTH[m] - mean_t)) ** 2 for m in TRUTH) / len(TRUTH))


def report(db: Ratings, cid: str, kinds: dict) -> dict:
    quality = C.quality(db, cid)
    excluded = {q["rater"]: q["why"] for q in quality if q["excluded"]}
    clean, everyone = C.leaderboard(db, cid), C.leaderboard(db, cid, all_raters=True)
    answers = C.answers(db, cid)
    seen_twice = {(a["rater"], a["unit"]) for a in answers if a["repeat"]}
    firsts = [(a["rater"], a["unit"]) for a in answers if not a["repeat"]]
    return {"spammers": sorted(r for r, k in kinds.items() if k != "honest"), "excluded": excluded,
            "honest_excluded": sorted(r for r in excluded if kinds.get(r) == "honest"),
            "spammers_kept": sorted(r for r, k in kinds.items() if k != "honest" and r not in excluded),
            "order_clean": [r["model"] for r in clean], "order_all": [r["model"] for r in everyone],
            "rmse_clean": rmse_from_truth(clean), "rmse_all": rmse_from_truth(everyone),
            "clean": clean, "all": everyone, "coverage": C.coverage(db, cid),
            "seen_twice_unplanned": len(firsts) - len(set(firsts)), "planned_repeats": len(seen_twice),
            "alpha_clean": C.alpha(db, cid), "alpha_all": C.alpha(db, cid, all_raters=True)}


def to_csv(db: Ratings, cid: str, path: Path) -> Path:
    """The campaign's answers as Arena battle rows (with seconds), as another tool would export them."""
    units = {u["unit"]: u for u in C.units(db, cid)}
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["question_id", "model_a", "model_b", "winner", "judge", "tstamp", "seconds"])
        w.writeheader()
        for a in C.answers(db, cid):
            u = units[a["unit"]]
            shown_first = a["left_model"]
            other = u["model_b"] if shown_first == u["model_a"] else u["model_a"]
            won = {"a": u["model_a"], "b": u["model_b"]}.get(a["winner"])
            winner = "tie" if won is None else "model_a" if won == shown_first else "model_b"
            w.writerow({"question_id": u["question_id"], "model_a": shown_first, "model_b": other, "winner": winner,
                        "judge": a["rater"], "tstamp": a["created"], "seconds": a["seconds"]})
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raters", type=int, default=30)
    p.add_argument("--spammers", type=int, default=5)
    p.add_argument("--careless", type=int, default=0, help="raters who always pick the left side at a human pace")
    p.add_argument("--questions", type=int, default=40)
    p.add_argument("--overlap", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--web", action="store_true", help="rate through a public deployment's web API instead")
    p.add_argument("--reward-judge", action="store_true",
                   help="also train a reward model on half the verdicts and judge the other half with it")
    a = p.parse_args()
    if a.web:
        with tempfile.TemporaryDirectory() as tmp:
            sim = simulate_web(Path(tmp), a.raters, a.spammers, a.questions, a.overlap, a.seed)
            got = report(sim["db"], sim["campaign"], sim["kinds"])
        print(f"web API: {a.raters} logged-in raters in {sim['seconds']:.0f} s; errors: {sim['errors'] or 'none'}")
        show(got)
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = Ratings(Path(tmp) / "ratings.sqlite")
        sim = simulate(db, a.raters, a.spammers, a.questions, a.overlap, a.seed, a.careless)
        got = report(db, sim["campaign"], sim["kinds"])
        items, gold = items_and_gold(a.questions)
        copy = C.create(db, items, C.Spec(name="imported"), gold)
        C.import_battles(db, copy, to_csv(db, sim["campaign"], Path(tmp) / "answers.csv"))
        imported = report(db, copy, sim["kinds"])
        judge = reward_judge_agreement(db, sim["campaign"], Path(tmp) / "home") if a.reward_judge else None
    show(got)
    if judge:
        for name, j in (("reward-model judge", judge["reward"]), ("always-first judge", judge["always_first"])):
            print(f"{name} on {j['n']} held-out pairs (trained on {judge['pairs_trained_on']} verdicts): agreement "
                  f"with the people {j['agreement_without_ties']:.1%} without ties, {j['agreement_with_ties']:.1%} "
                  f"with; Cohen's kappa {j['kappa']:.3f}; its two orders agree on {j['consistency']:.0%}")
    print(f"through ratings import --campaign from a CSV: excluded {sorted(imported['excluded'])}; order "
          f"{imported['order_clean']}; RMSE {imported['rmse_clean']:.1f}")


def show(got: dict) -> None:
    print(f"excluded ({len(got['excluded'])}): " + "; ".join(f"{r}: {w}" for r, w in sorted(got["excluded"].items())))
    print(f"spammers kept: {got['spammers_kept'] or 'none'}; "
          f"honest raters excluded: {got['honest_excluded'] or 'none'}")
    for label, key in (("without the excluded", "clean"), ("everyone", "all")):
        print(f"leaderboard, {label}: RMSE from the truth {got['rmse_' + key]:.1f}; alpha "
              f"{got['alpha_' + key]:.3f}")
        for r in got[key]:
            print(f"  {r['model']:8s} {r['rating']:7.1f} [{r['ci_low']:7.1f}, {r['ci_high']:7.1f}] "
                  f"(truth {TRUTH[r['model']]:.0f}, n {r['n']})")
    cover = {k: v for k, v in got["coverage"].items() if k != "per_item"}
    print(f"coverage: {json.dumps(cover)}; unplanned second showings {got['seen_twice_unplanned']}; "
          f"planned repeats {got['planned_repeats']}")


if __name__ == "__main__":
    main()
