"""Rating campaigns: a simulation with a known truth (spammers excluded by the rules and nobody else, the true
order recovered without them and worse with them, overlap held, nothing shown twice but planned repeats), the
same through `ratings import --campaign` from a CSV, an exact export -> import round trip, the assignment
rules, and the CLI contract."""

import importlib.util
import json
import random
import subprocess
import sys
from collections import Counter

import pandas as pd
import pytest
from conftest import ROOT, write_jsonl

from studio.engine.errors import DataError, StudioError
from studio.engine.judge import campaign as C
from studio.engine.judge.ratings import Ratings

spec = importlib.util.spec_from_file_location("bench_campaign", ROOT / "bench" / "campaign.py")
B = importlib.util.module_from_spec(spec)
spec.loader.exec_module(B)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    db = Ratings(tmp_path_factory.mktemp("c") / "ratings.sqlite")
    sim = B.simulate(db, raters=16, spammers=4, questions=24, overlap=3, seed=1)
    return db, sim, B.report(db, sim["campaign"], sim["kinds"])


@pytest.mark.integration
def test_the_rules_exclude_every_spammer_and_no_honest_rater(simulated):
    _, _, got = simulated
    assert sorted(got["excluded"]) == got["spammers"] and not got["honest_excluded"]


@pytest.mark.integration
def test_spammers_are_stopped_early_and_without_them_the_leaderboard_recovers_the_truth(simulated):
    """A spammer is given nothing more once a rule catches them, and their items go to honest raters: they hold a
    handful of answers, not a share of the pairs (before, with them kept rating, the board was pulled to 1000)."""
    db, sim, got = simulated
    assert got["order_clean"] == list(B.TRUTH)
    top, bottom = got["clean"][0], got["clean"][-1]
    assert top["ci_low"] > bottom["ci_high"]  # the intervals separate the best from the worst
    by = Counter(a["rater"] for a in C.answers(db, sim["campaign"]))
    spam = [r for r, kind in sim["kinds"].items() if kind != "honest"]
    assert all(by[r] <= C.Spec.speed_min for r in spam), {r: by[r] for r in spam}
    assert C.coverage(db, sim["campaign"])["needed"] == 0  # every item has its raters without them


@pytest.mark.integration
def test_every_pair_gets_exactly_its_raters_and_nothing_is_shown_twice_unplanned(simulated):
    db, sim, got = simulated
    assert got["coverage"]["under"] == 0 and got["coverage"]["over"] == 0
    assert got["coverage"]["complete"] == got["coverage"]["units"]
    assert {r["raters"] for r in got["coverage"]["per_item"]} == {3}  # each item, not only the totals
    assert got["seen_twice_unplanned"] == 0 and got["planned_repeats"] > 0
    answers = C.answers(db, sim["campaign"])
    firsts = Counter((a["rater"], a["unit"]) for a in answers if not a["repeat"])
    assert max(firsts.values()) == 1
    honest = [q for q in C.quality(db, sim["campaign"]) if sim["kinds"][q["rater"]] == "honest"]
    assert all(q["repeats"] >= 1 and q["gold_answers"] >= 2 for q in honest), honest
    lefts = Counter(a["left_model"] == C.units(db, sim["campaign"])[a["unit"]]["model_a"] for a in answers)
    assert min(lefts.values()) > 0.35 * sum(lefts.values())  # sides drawn at random, and recorded


@pytest.mark.integration
def test_the_same_answers_through_a_csv_import_give_the_same_result(simulated, tmp_path):
    db, sim, got = simulated
    items, gold = B.items_and_gold(24)
    copy = C.create(db, items, C.Spec(name="copy"), gold)
    C.import_battles(db, copy, B.to_csv(db, sim["campaign"], tmp_path / "answers.csv"))
    again = B.report(db, copy, sim["kinds"])
    assert again["excluded"] == got["excluded"] and again["order_clean"] == got["order_clean"]
    assert [r["rating"] for r in again["clean"]] == pytest.approx([r["rating"] for r in got["clean"]])


@pytest.mark.integration
def test_export_then_import_round_trips_a_campaign_exactly(simulated, tmp_path):
    db, sim, _ = simulated
    first = C.export(db, sim["campaign"], tmp_path / "one")
    other = Ratings(tmp_path / "other.sqlite")
    assert C.import_export(other, first) == sim["campaign"]
    second = C.export(other, sim["campaign"], tmp_path / "two")
    for name in ("answers.jsonl", "units.jsonl", "campaign.json", "README.md"):
        assert (first / name).read_text() == (second / name).read_text(), name
    pd.testing.assert_frame_equal(pd.read_parquet(first / "answers.parquet"),
                                  pd.read_parquet(second / "answers.parquet"))
    card = (first / "README.md").read_text()
    assert "## Rubric" in card and "## Exclusions" in card and "Krippendorff" in card and "data_files" in card
    with pytest.raises(StudioError, match="already here"):
        C.import_export(other, first)


@pytest.mark.integration
def test_an_exported_campaign_loads_with_datasets_into_the_columns_its_card_names(simulated, tmp_path):
    """What a group publishes is read by ``datasets``: the folder loads as it is (answers by default, units by
    name), every answer and unit is there, and the columns are the ones the card lists."""
    import re

    from datasets import load_dataset

    db, sim, _ = simulated
    folder = C.export(db, sim["campaign"], tmp_path / "published")
    card = (folder / "README.md").read_text()
    named = {kind: re.search(rf"`{kind}` \(.*?Columns: (.*?)\.\n", card, re.S).group(1)
             for kind in ("answers", "units")}
    cache = str(tmp_path / "hf-datasets")  # datasets caches a local folder by its name: a fresh cache, a fresh read
    answers = load_dataset(str(folder), cache_dir=cache)["train"]
    assert answers.column_names == [c.strip("` ") for c in named["answers"].split(",")]
    assert len(answers) == len(C.answers(db, sim["campaign"]))
    assert set(answers["winner"]) <= {"a", "b", "tie"} and answers[0]["rater"]
    units = load_dataset(str(folder), "units", cache_dir=cache)["train"]
    assert units.column_names == [c.strip("` ") for c in named["units"].split(",")]
    assert len(units) == len(C.units(db, sim["campaign"]))


def pairs(n_questions=6, systems=("x", "y", "z")):
    return [{"question_id": f"q{i}", "prompt": f"P{i}", "model": s, "output": f"{s}{i}"}
            for i in range(n_questions) for s in systems]


def test_a_rater_gets_the_least_rated_unseen_pair_and_the_same_one_until_answering(tmp_path):
    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(), C.Spec(name="t", overlap=2, repeat=0.0, min_seconds=0))  # answers come at once here
    rng = random.Random(0)
    first = C.next_unit(db, cid, "ann", rng)
    assert C.next_unit(db, cid, "ann", rng).unit == first.unit  # a reload shows the same item
    other = C.next_unit(db, cid, "bob", rng)
    assert other.unit != first.unit  # the one ann holds has a rater already; bob gets an unrated one
    with pytest.raises(StudioError, match="not waiting for an answer"):
        C.answer(db, cid, "ann", other.unit, "left")
    seen = []
    while (shown := C.next_unit(db, cid, "ann", rng)) is not None:
        seen.append(shown.unit)
        C.answer(db, cid, "ann", shown.unit, rng.choice(C.SIDES))
    assert len(seen) == len(set(seen)) == 18  # every pair once: 6 questions x 3 pairs, no repeats asked for


def test_nobody_owns_nothing_an_anonymous_owner_sees_no_ownerless_campaign(tmp_path):
    """A campaign made from the command line (or restored from the ratings repo) has no owner; an anonymous visitor
    has no owner either: that is no match, so the owner's list shows them nothing of the operator's."""
    db = Ratings(tmp_path / "r.sqlite")
    operators = C.create(db, pairs(), C.Spec(name="operator's"))
    alices = C.create(db, pairs(), C.Spec(name="alice's"), owner="alice")
    assert C.campaigns(db, None, everyone=False) == []
    assert [c["id"] for c in C.campaigns(db, "alice", everyone=False)] == [alices]
    assert {c["id"] for c in C.campaigns(db)} == {operators, alices}  # the operator's own machine lists all


def test_a_closed_campaign_takes_no_more_answers(tmp_path):
    """A rater who was shown a pair before the owner closed the campaign cannot answer it afterwards."""
    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(), C.Spec(name="t", overlap=2, repeat=0.0))
    shown = C.next_unit(db, cid, "ann", random.Random(0))
    C.close(db, cid)
    with pytest.raises(StudioError, match="closed"):
        C.answer(db, cid, "ann", shown.unit, "left")
    assert C.answers(db, cid) == [] and C.next_unit(db, cid, "ann") is None


def test_names_in_the_dataset_card_link_and_load_nothing(tmp_path):
    """A campaign, rater or model name goes into the published card as itself: no image a reader's browser fetches,
    no link, no HTML."""
    db = Ratings(tmp_path / "r.sqlite")
    bad = "![x](http://evil.test/p.png) <img src=x onerror=alert(1)> [click](http://evil.test)"
    items = [{**row, "model": bad if row["model"] == "x" else row["model"]} for row in pairs()]
    cid = C.create(db, items, C.Spec(name=bad, overlap=1, repeat=0.0))
    rng = random.Random(0)
    for rater in (bad, "bob"):
        while (shown := C.next_unit(db, cid, rater, rng)) is not None:
            C.answer(db, cid, rater, shown.unit, "left")
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(C.card(db, cid).split("---", 2)[2])  # as a hub page shows it
    assert "<img" not in html and "<a " not in html and "onerror=alert" in html  # shown as text, not dropped
    assert html.count("evil.test/p.png") >= 2  # the campaign's name and a model's row, as text


def test_bad_input_is_one_line_naming_the_file_row_and_field(tmp_path):
    db = Ratings(tmp_path / "r.sqlite")
    with pytest.raises(StudioError, match="one of pairwise, likert, both"):
        C.create(db, pairs(), C.Spec(name="t", mode="stars"))
    bad = write_jsonl(tmp_path / "gold.jsonl", [{"question_id": "q1", "model_a": "x", "model_b": "y",
                                                "winner": "model_c"}])
    with pytest.raises(DataError, match=r"gold.jsonl: (row|line) 1, field 'winner'"):
        C.gold_from(bad)
    items = write_jsonl(tmp_path / "items.jsonl", [{"question_id": "q1", "prompt": "P", "model": "x"}])
    with pytest.raises(DataError, match=r"items.jsonl: (row|line) 1, field 'output'"):
        C.items_from(items)
    with pytest.raises(DataError, match="no pair to rate"):
        C.create(db, pairs(systems=("x",)), C.Spec(name="t"))


def run_cli(*args, home):
    out = subprocess.run([sys.executable, "-m", "studio", *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "STUDIO_HOME": str(home)})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.integration
def test_the_cli_contract(tmp_path):
    items, gold = B.items_and_gold(6, gold_questions=2)
    items_file, gold_file = write_jsonl(tmp_path / "items.jsonl", items), write_jsonl(tmp_path / "gold.jsonl", gold)
    home = tmp_path / "home"
    cid = json.loads(run_cli("campaign", "create", "--items", str(items_file), "--gold", str(gold_file), "--mode",
                             "pairwise", "--overlap", "2", "--repeat", "0.1", "--min-gold", "0.7", "--name", "cli",
                             "--json", home=home))["id"]
    # alpha wins every time, shown on the left (model_a, as an arena shows it) half the time
    battles = [{"question_id": f"q{i}", **({"model_a": "alpha", "model_b": m, "winner": "model_a"} if (i + k) % 2 else
                                          {"model_a": m, "model_b": "alpha", "winner": "model_b"}),
                "judge": j, "seconds": 9.5, "tstamp": 1_700_000_000 + i}
               for i in range(6) for k, m in enumerate(("bravo", "delta")) for j in ("ann", "bob")]
    battles += [{"question_id": "g0", "model_a": "charlie", "model_b": "bravo", "winner": "model_a", "judge": j,
                 "seconds": 8} for j in ("ann", "bob")]
    write_jsonl(tmp_path / "battles.jsonl", battles)
    assert "imported 26 answers of 2 raters" in run_cli("ratings", "import", str(tmp_path / "battles.jsonl"),
                                                        "--campaign", cid, home=home)
    raters = json.loads(run_cli("campaign", "quality", cid, "--json", home=home))["raters"]
    assert {r["rater"] for r in raters} == {"ann", "bob"}
    assert set(raters[0]) >= {"rater", "items", "gold_accuracy", "self_consistency", "median_seconds", "excluded",
                              "why"}
    assert raters[0]["items"] == 12 and raters[0]["gold_accuracy"] == 1.0 and raters[0]["median_seconds"] == 9.5
    assert raters[0]["first_side_answers"] == 13 and 0.4 < raters[0]["first_side_share"] < 0.6  # 7 of 13 (gold: A)
    assert raters[0]["first_side_p"] > 0.5 and not raters[0]["excluded"]
    board = json.loads(run_cli("campaign", "leaderboard", cid, "--all-raters", "--json", home=home))
    assert board[0]["model"] == "alpha" and all({"model", "rating", "ci_low", "ci_high"} <= set(r) for r in board)
    run_cli("campaign", "export", cid, "--out", str(tmp_path / "out"), home=home)
    assert (tmp_path / "out" / "answers.parquet").is_file() and (tmp_path / "out" / "README.md").is_file()
    said = json.loads(run_cli("campaign", "export", cid, "--out", str(tmp_path / "p.jsonl"), "--preferences",
                              "--json", home=home))
    prefs = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert said["pairs"] == len(prefs) == 12 and all(p["chosen"].startswith("alpha") for p in prefs)
    made = json.loads(run_cli("campaign", "create", "--items", str(items_file), "--draft", "--per-rater", "4",
                              "--json", home=home))
    assert made["preview"].startswith(f"?campaign={made['id']}&prepare=")
    assert "is open" in run_cli("campaign", "open", made["id"], home=home)
    listed = json.loads(run_cli("campaign", "list", "--json", home=home))
    assert {c["id"]: c["state"] for c in listed}[made["id"]] == "open"


@pytest.mark.integration
def test_a_judge_is_judged_in_both_orders_so_position_bias_scores_half(simulated):
    db, sim, _ = simulated
    cid = sim["campaign"]
    first = C.judge_agreement(db, cid, C.judge_units(db, cid, lambda prompt, a, b: "first"))
    assert first["agreement_without_ties"] == pytest.approx(0.5) and first["consistency"] == 0.0
    assert first["kappa"] is not None and first["kappa"] <= 0.05

    def strength(text):  # an oracle: reads which system wrote the answer, prefers the truly stronger one
        return B.TRUTH[text.split("'")[0]]

    oracle = C.judge_agreement(db, cid, C.judge_units(
        db, cid, lambda prompt, a, b: "first" if strength(a) > strength(b) else "second"))
    assert oracle["consistency"] == 1.0 and oracle["agreement_without_ties"] > 0.7
    assert oracle["kappa"] > first["kappa"] + 0.1


@pytest.mark.integration
def test_campaigns_sync_to_a_dataset_repo_and_a_restarted_app_restores_them(simulated, tmp_path, monkeypatch):
    """The real hub client against a stand-in hub on loopback: the campaign goes to the dataset repo; an app
    started with an empty home restores it with every answer, and pushes its new answers when it stops."""
    import os
    import signal
    import socket

    import httpx
    from conftest import eventually
    from hub_standin import Hub

    from studio.engine.judge import campaign_hub

    db, sim, _ = simulated
    cid, still_open = sim["campaign"], C.create(db, pairs(), C.Spec(name="still open", overlap=2, repeat=0.0))
    hub = Hub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # for the app below; this process read it at import:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    try:
        last = campaign_hub.sync(db, "lab/ratings", "hf_lab_token")
        files = hub.repos[("dataset", "lab/ratings")]
        assert {f"campaigns/{cid}/{n}" for n in ("answers.parquet", "answers.jsonl", "README.md")} <= set(files)
        assert all(auth == "Bearer hf_lab_token" for method, _, auth in hub.log if method == "POST")
        commits = sum(1 for m, p, _ in hub.log if "/commit/" in p)
        assert campaign_hub.sync(db, "lab/ratings", "hf_lab_token", last) == last
        assert sum(1 for m, p, _ in hub.log if "/commit/" in p) == commits  # nothing changed: nothing pushed

        home = tmp_path / "empty-home"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**{k: v for k, v in os.environ.items() if k not in ("STUDIO_PORT", "STUDIO_HOST")},
               "STUDIO_HOME": str(home), "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",  # Gradio's
               "STUDIO_RATINGS_REPO": "lab/ratings", "HF_TOKEN": "hf_lab_token", "STUDIO_RATINGS_SYNC_S": "3600"}
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            def up():
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            eventually(up, timeout=120, what="the app")
            restored = Ratings(home / "ratings.sqlite")
            eventually(lambda: len(C.campaigns(restored)) == len(C.campaigns(db)), timeout=60,
                       what="the campaigns restored from the hub")
            assert C.answers(restored, cid) == C.answers(db, cid)
            assert C.quality(restored, cid) == C.quality(db, cid)
            from gradio_client import Client

            rater = Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False)
            assert rater.predict(cid, "newcomer", api_name="/campaign_next") == {"done": True}  # every pair rated
            shown = rater.predict(still_open, "newcomer", api_name="/campaign_next")
            rater.predict(still_open, shown["unit"], "a", "newcomer", api_name="/campaign_answer")
        finally:
            proc.send_signal(signal.SIGTERM)  # the app's last sync pushes the answer just given
            proc.wait(90)
        after = hub.repos[("dataset", "lab/ratings")][f"campaigns/{still_open}/answers.jsonl"].decode()
        assert [json.loads(x)["rater"] for x in after.splitlines()] == ["newcomer"]
    finally:
        hub.close()


@pytest.mark.integration
def test_a_campaigns_verdicts_are_preference_data_the_studio_trains_on(simulated, tmp_path):
    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.train.prepare import preflight

    db, sim, _ = simulated
    rows = C.preference_rows(db, sim["campaign"])
    units = {(u["prompt"], u["output_a"], u["output_b"]) for u in C.units(db, sim["campaign"])}
    assert len(rows) > 50 and all((r["prompt"], r["chosen"], r["rejected"]) in units
                                  or (r["prompt"], r["rejected"], r["chosen"]) in units for r in rows)
    stronger = sum(B.TRUTH[r["chosen"].split("'")[0]] > B.TRUTH[r["rejected"].split("'")[0]] for r in rows)
    assert stronger / len(rows) > 0.6  # the people's majority mostly prefers the truly better system
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)
    cfg = StudioConfig.from_dict(tiny_config(path, method={"kind": "dpo"}))
    assert preflight(cfg).format == "preference"


@pytest.mark.integration
def test_a_campaign_of_pairs_and_single_answers_scores_both_and_round_trips(tmp_path):
    """mode both: pairs get a verdict, single answers 1-5 scores on every dimension; honest raters score by the
    truth, so the means order the systems as the truth does, and alpha per dimension says they agree."""
    db = Ratings(tmp_path / "r.sqlite")
    items, _ = B.items_and_gold(8, gold_questions=0)
    cid = C.create(db, items, C.Spec(name="both", mode="both", overlap=2, repeat=0.1, min_seconds=3.0))
    kinds = Counter(u["kind"] for u in C.units(db, cid))
    assert kinds == {"pair": 8 * 6, "single": 8 * 4}
    rng, clock = random.Random(4), 1_000_000.0
    raters = [f"r{i}" for i in range(6)]
    active = list(raters)
    while active:
        for r in list(active):
            shown = C.next_unit(db, cid, r, rng, at=clock)
            if shown is None:
                active.remove(r)
                continue
            clock += 8
            if shown.kind == "single":
                base = 3 + (B.TRUTH[shown.left.split("'")[0]] - 1000) / 100  # 1.5 .. 4.5
                scores = {d: max(1, min(5, round(base + rng.uniform(-0.6, 0.6)))) for d in C.DIMENSIONS}
                with pytest.raises(StudioError, match="asks for scores"):
                    C.answer(db, cid, r, shown.unit, "left", at=clock)
                C.answer(db, cid, r, shown.unit, scores=scores, at=clock)
            else:
                assert shown.right
                side, _ = B.rater_answer("honest", shown.left, shown.right, rng)
                C.answer(db, cid, r, shown.unit, side, at=clock)
    assert C.coverage(db, cid)["under"] == C.coverage(db, cid)["over"] == 0
    scored = C.likert(db, cid)
    quality = {m["system"]: m["mean"] for m in scored["means"] if m["dimension"] == "quality"}
    assert sorted(quality, key=quality.get, reverse=True) == list(B.TRUTH)
    assert all(a is not None and a > 0.5 for a in scored["alpha"].values()), scored["alpha"]
    assert [r["model"] for r in C.leaderboard(db, cid)] == list(B.TRUTH)
    raters_rows = C.quality(db, cid)
    assert all(q["repeats"] >= 1 and q["self_consistency"] is not None for q in raters_rows)
    assert sum(q["self_consistency"] for q in raters_rows) / len(raters_rows) > 0.6  # scores repeat within a point
    first = C.export(db, cid, tmp_path / "one")
    other = Ratings(tmp_path / "o.sqlite")
    C.import_export(other, first)
    second = C.export(other, cid, tmp_path / "two")
    for name in ("answers.jsonl", "units.jsonl", "README.md"):
        assert (first / name).read_text() == (second / name).read_text(), name
    assert "1-5 scores" in (first / "README.md").read_text() and "- quality: 1 wrong or useless" in \
        (first / "README.md").read_text()


def test_scored_gold_a_copy_and_the_raters_guidelines(tmp_path):
    db = Ratings(tmp_path / "r.sqlite")
    gold = write_jsonl(tmp_path / "gold.jsonl", [{"question_id": "q0", "model": "x", "min": 1, "max": 2}])
    rubric = C.Rubric(guidelines="Score only what the answer says.", question="Which is more accurate?")
    cid = C.create(db, pairs(n_questions=4), C.Spec(name="g", mode="likert", overlap=1, repeat=0.0, rubric=rubric),
                   C.gold_from(gold))
    golden = [u for u in C.units(db, cid) if u["gold"]]
    assert len(golden) == 1 and golden[0]["kind"] == "single" and json.loads(golden[0]["gold"]) == {"min": 1,
                                                                                                    "max": 2}
    rng, at = random.Random(1), 1000.0
    while (shown := C.next_unit(db, cid, "ann", rng, at=at)) is not None:
        at += 5
        quality = 5 if shown.unit == golden[0]["unit"] else 3  # ann over-rates the answer known to be poor
        C.answer(db, cid, "ann", shown.unit, scores=dict.fromkeys(C.DIMENSIONS, quality), at=at)
    q = C.quality(db, cid)[0]
    assert q["gold_answers"] == 1 and q["gold_accuracy"] == 0.0 and q["items"] == 11
    assert all(r["item_id"] != golden[0]["unit"] for r in C.scores(db, cid))  # a gold check is not a result
    copy = C.copy(db, cid)
    assert C.spec_of(db, copy).rubric == rubric and C.spec_of(db, copy).name == "g (copy)"
    assert len(C.units(db, copy)) == len(C.units(db, cid)) and not C.answers(db, copy)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question_id": "q0", "model": "x", "min": 4, "max": 2}])
    with pytest.raises(DataError, match=r"bad.jsonl: (row|line) 1, fields 'min' and 'max'"):
        C.gold_from(bad)


@pytest.mark.integration  # 540 answers, each a durable SQLite commit: seconds
def test_which_metric_agrees_with_the_raters(tmp_path):
    """Answers carry their metric scores (a comparison's do): a metric that follows the truth correlates with the
    raters' verdicts, one that is noise does not."""
    db = Ratings(tmp_path / "r.sqlite")
    rng = random.Random(2)
    items = [{"question_id": f"q{i}", "prompt": f"Q{i}", "model": m, "output": f"{m}'s answer to {i}",
              "scores": {"follows": B.TRUTH[m] / 1000 + rng.gauss(0, 0.02), "noise": rng.random()}}
             for i in range(30) for m in B.TRUTH]
    cid = C.create(db, items, C.Spec(name="m", overlap=3, repeat=0.0))
    at = 0.0
    for r in ("ann", "bob", "cat"):
        while (shown := C.next_unit(db, cid, r, rng, at=at)) is not None:
            side, _ = B.rater_answer("honest", shown.left, shown.right, rng)
            at += 10
            C.answer(db, cid, r, shown.unit, side, at=at)
    got = {row["metric"]: row for row in C.human_vs_metric(db, cid)}
    assert got["follows"]["kendall_tau"] > 0.25 and got["follows"]["p_value"] < 0.01
    assert abs(got["noise"]["kendall_tau"]) < got["follows"]["kendall_tau"] / 2
    assert got["follows"]["n"] == 30 * 6


@pytest.fixture
def standin_hub(monkeypatch):
    import huggingface_hub.constants
    from hub_standin import Hub

    hub = Hub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    yield hub
    hub.close()


@pytest.mark.integration
def test_the_sync_publishes_only_what_its_owner_chose_to(standin_hub, tmp_path):
    """A visitor's campaign (their prompts, their raters' logins and times) reached the operator's ratings repo
    without their choosing; now only the operator's own and those whose owner ticked "publish" go."""
    from studio.engine.judge import campaign_hub

    db = Ratings(tmp_path / "r.sqlite")
    ops = C.create(db, pairs(2), C.Spec(name="operator's"))  # from the command line: no owner
    quiet = C.create(db, pairs(2), C.Spec(name="alice keeps it"), owner="alice")
    shared = C.create(db, pairs(2), C.Spec(name="bob shares it", publish=True), owner="bob")
    assert set(campaign_hub.state(db)) == {ops, shared}
    campaign_hub.sync(db, "lab/ratings", "hf_lab_token")
    pushed = {p.split("/")[1] for p in standin_hub.repos[("dataset", "lab/ratings")]}
    assert pushed == {ops, shared} and quiet not in pushed


@pytest.mark.integration
def test_a_restore_from_a_bad_repo_takes_what_is_sound_and_names_the_rest(standin_hub, tmp_path, monkeypatch):
    """One malformed folder, a `..` name or a huge file no longer stops a restore (nor reaches memory): each is
    refused in a line, the sound campaigns come back, and nothing fetched stays in the temporary folder."""
    import tempfile

    from studio.engine.judge import campaign_hub

    db = Ratings(tmp_path / "r.sqlite")
    good = [C.create(db, pairs(2), C.Spec(name=f"good {i}")) for i in range(2)]
    campaign_hub.sync(db, "lab/ratings", "t")
    files = standin_hub.repos[("dataset", "lab/ratings")]
    first = {p: b for p, b in files.items() if p.startswith(f"campaigns/{good[0]}/")}
    files.update({p.replace(good[0], "c-broken"): b for p, b in first.items()})
    files["campaigns/c-broken/campaign.json"] = b"{not json"
    files.update({p.replace(good[0], "c-other"): b for p, b in first.items()})  # names another campaign inside
    files["campaigns/c-evil/../../../etc/cron.d/x"] = b"* * * * * root true"
    files["campaigns/c-huge/answers.jsonl"] = b"x" * 300_000
    monkeypatch.setattr(campaign_hub, "RESTORE_FILE_MB", 0.1)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    fresh, refused = Ratings(tmp_path / "fresh.sqlite"), []
    assert sorted(campaign_hub.restore(fresh, "lab/ratings", "t", refused)) == sorted(good)
    said = "\n".join(refused)
    assert "c-broken: not restored" in said and "c-other: not restored" in said and "another campaign" in said
    assert "'campaigns/c-evil/../../../etc/cron.d/x': not a name" in said
    assert "c-huge/answers.jsonl: 0.3 MB, more than the 0.1 MB" in said
    assert C.answers(fresh, good[0]) == C.answers(db, good[0])
    assert not list((tmp_path / "tmp").iterdir())  # the download is gone


@pytest.mark.integration
def test_the_sync_thread_lives_through_any_error(tmp_path, monkeypatch):
    """One bad push ended the thread silently (nothing pushed afterwards: ratings lost at the next restart)."""
    import threading

    from conftest import eventually

    from studio.engine.judge import campaign_hub

    calls, said = [], []

    def flaky(db, repo, token=None, last=None):
        calls.append(repo)
        if len(calls) == 1:
            raise KeyError("a malformed folder")
        return {}

    monkeypatch.setattr(campaign_hub, "restore", lambda *a, **k: (_ for _ in ()).throw(OSError("disk")))
    monkeypatch.setattr(campaign_hub, "sync", flaky)
    stop = threading.Event()
    thread = campaign_hub.keep_synced(Ratings(tmp_path / "r.sqlite"), "lab/ratings", None, stop, every=0.05,
                                      say=said.append)
    eventually(lambda: len(calls) >= 3, timeout=20, what="three syncs")
    assert thread.is_alive()
    assert "ratings: OSError: disk" in said and "ratings: KeyError: 'a malformed folder'" in said
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_the_leaderboard_is_computed_again_only_when_the_votes_change(tmp_path, monkeypatch):
    """Its bootstrap took 6-7 s for 2,000 answers on every view and every 5 s refresh of the owner's page."""
    from studio.engine.judge import human

    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(), C.Spec(name="t", overlap=1, repeat=0.0, min_seconds=0))
    rng, computed = random.Random(0), []
    real = human.leaderboard
    monkeypatch.setattr(human, "leaderboard",
                        lambda votes, seed=0: computed.append(len(votes)) or real(votes, seed=seed))

    def rate(n):
        for _ in range(n):
            shown = C.next_unit(db, cid, "ann", rng)
            C.answer(db, cid, "ann", shown.unit, rng.choice(("left", "right")))

    rate(4)
    first = C.leaderboard(db, cid)
    assert C.leaderboard(db, cid) == first and C.leaderboard(db, cid) == first and computed == [4]
    first[0]["rating"] = -1.0  # a caller's change does not reach the next one
    assert C.leaderboard(db, cid)[0]["rating"] != -1.0
    rate(1)
    C.leaderboard(db, cid)
    assert computed == [4, 5]


def test_a_rater_reads_a_models_links_as_text_never_as_links():
    """A model's answer (or a prompt) may carry a stranger's link; the rater's view shows it, not a link to click."""
    from markdown_it import MarkdownIt

    from studio.engine.markdown import safe_md

    answer = ("See [the docs](https://evil.example/x) or https://evil.example/y, www.evil.example, "
              "<http://evil.example/z>, ![p](http://evil.example/p.png)\n\n- a list stays\n\n`code stays`")
    shown = safe_md(answer, links=False)
    md = MarkdownIt("commonmark", {"linkify": True}).enable("linkify")
    html = md.render(shown)
    assert "<a " not in html and "<img" not in html
    assert "<li>a list stays</li>" in html and "<code>code stays</code>" in html
    assert "evil.example/x" in html.replace("\u200b", "")  # the address is still there to read
    assert "<a " in md.render(safe_md(answer))  # the owner's own views keep links


def rate_all(db, cid, rater, answer, seed=0, pace=(5.0, 25.0)) -> list:
    """``rater`` answers everything they are shown (``answer(shown, rng)``: a side, or scores) at a human pace on
    a simulated clock; what they were shown, in order."""
    rng, clock, seen = random.Random(seed), 1_000_000.0 + seed * 10_000, []
    while (shown := C.next_unit(db, cid, rater, rng, at=clock)) is not None:
        seen.append(shown)
        clock += rng.uniform(*pace)
        said = answer(shown, rng)
        if isinstance(said, dict):
            C.answer(db, cid, rater, shown.unit, scores=said, at=clock)
        else:
            C.answer(db, cid, rater, shown.unit, said, at=clock)
        clock += 0.5
    return seen


def honest(shown, rng):  # reads both and picks the better one, whichever side it is on
    return "left" if shown.left_model == "x" or (shown.left_model == "y" and "z" in shown.right) else "right"


def test_a_rater_who_always_picks_the_first_side_is_excluded_without_gold(tmp_path):
    """At a human pace (5-25 s an item) and with no gold in the campaign, always "A" passed every rule and agreed
    0.78 with the others. The sides are drawn at random, so a careful rater's first-side share sits near 50 %."""
    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(8), C.Spec(name="t", overlap=3, repeat=0.0))
    for i, r in enumerate(("ann", "bob")):
        rate_all(db, cid, r, honest, seed=i)
    rate_all(db, cid, "lazy", lambda shown, rng: "left", seed=7)
    q = {row["rater"]: row for row in C.quality(db, cid)}
    # caught at the eleventh A/B answer (the first where a fair coin's chance falls under 0.001), then given nothing
    assert q["lazy"]["excluded"] and "picked the first side 100% of 11 times" in q["lazy"]["why"]
    assert q["lazy"]["first_side_p"] < 0.001 and q["lazy"]["median_seconds"] > 5
    assert not q["ann"]["excluded"] and not q["bob"]["excluded"], (q["ann"], q["bob"])
    assert 0.2 < q["ann"]["first_side_share"] < 0.8 and q["ann"]["first_side_p"] > 0.01
    assert "picks the first side" in C.spec_of(db, cid).rules()  # the rule is said where the table is


def test_an_excluded_raters_items_go_to_the_next_raters(tmp_path):
    """An excluded rater kept their places: coverage said every item had its raters, and a new rater was told
    the campaign needed nothing more from them."""
    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(4), C.Spec(name="t", overlap=2, repeat=0.0))
    rate_all(db, cid, "ann", honest, seed=1)
    rate_all(db, cid, "fast", honest, seed=2, pace=(0.5, 1.0))  # faster than anyone can read
    cover = C.coverage(db, cid)
    assert cover["excluded"] == ["fast"] and cover["complete"] == 0 and cover["needed"] == 12
    assert {r["rater"]: r["excluded"] for r in cover["raters"]} == {"ann": False, "fast": True}
    assert C.next_unit(db, cid, "fast") is None  # excluded: nothing more for them
    took = rate_all(db, cid, "carol", honest, seed=3)  # the replacement
    assert len(took) == 12
    cover = C.coverage(db, cid)
    assert cover["complete"] == 12 and cover["needed"] == 0 and cover["over"] == 0


def test_straight_lined_scores_are_excluded(tmp_path):
    db = Ratings(tmp_path / "r.sqlite")
    items = [{"question_id": f"q{i}", "prompt": f"P{i}", "model": "x", "output": f"x{i}"} for i in range(10)]
    cid = C.create(db, items, C.Spec(name="t", mode="likert", overlap=2, repeat=0.0))
    rate_all(db, cid, "flat", lambda shown, rng: {d: 3 for d in C.DIMENSIONS}, seed=1)
    rate_all(db, cid, "varied", lambda shown, rng: {d: rng.randint(2, 5) for d in C.DIMENSIONS}, seed=2)
    q = {row["rater"]: row for row in C.quality(db, cid)}
    assert q["flat"]["excluded"] and "same score on every dimension of all 8 answers" in q["flat"]["why"]
    assert not q["varied"]["excluded"] and not q["varied"]["straight_lined"]


def test_the_progress_total_never_changes_and_checks_come_at_random_places(tmp_path):
    """"N of M" went up by one exactly on the gold and repeated items, and gold came every fifth answer: both
    could be spotted."""
    items, gold = B.items_and_gold(6, gold_questions=4)
    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, items, C.Spec(name="t", overlap=3, repeat=0.3), gold)
    checks = []
    for seed, r in enumerate(("ann", "bob", "cid")):
        seen = rate_all(db, cid, r, lambda shown, rng: rng.choice(("left", "right")), seed=seed)
        assert len({s.total for s in seen}) == 1 and seen[0].total == C.planned(db, cid), [s.total for s in seen]
        assert [s.done for s in seen] == list(range(len(seen)))
        gold_units = {u["unit"] for u in C.units(db, cid) if u["gold"] is not None}
        checks.append(tuple(i for i, s in enumerate(seen) if s.unit in gold_units or s.repeat))
    assert len(set(checks)) == 3  # each rater met their checks at other places
    assert len({i % C.GOLD_EVERY for c in checks for i in c}) > 1  # not every fifth item


def test_a_campaign_zip_comes_back_under_its_importer_and_a_bad_zip_is_refused(tmp_path):
    import zipfile

    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(3), C.Spec(name="t", overlap=1, repeat=0.0, min_seconds=0), owner="alice")
    rate_all(db, cid, "ann", honest)
    zipped = C.export_zip(db, cid, tmp_path / "c.zip")
    fresh = Ratings(tmp_path / "fresh.sqlite")
    assert C.import_zip(fresh, zipped, owner="carol") == cid
    assert C.answers(fresh, cid) == C.answers(db, cid)
    assert [c["owner"] for c in C.campaigns(fresh)] == ["carol"]  # the importer owns the copy
    with pytest.raises(StudioError, match="already here"):
        C.import_zip(fresh, zipped, owner="carol")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../outside.txt", "x")
    with pytest.raises(DataError, match="not a name"):
        C.import_zip(fresh, evil)
    assert not (tmp_path.parent / "outside.txt").exists()
    (tmp_path / "not.zip").write_text("hello")
    with pytest.raises(DataError, match="not a zip"):
        C.import_zip(fresh, tmp_path / "not.zip")


def test_raters_read_only_what_their_campaign_asks_of_them(tmp_path):
    """A pairs-only campaign's guidelines spoke of 1-5 scores and of known answers it did not have."""
    pair, single = C.default_guidelines("pairwise"), C.default_guidelines("likert")
    assert "pick the answer" in pair and "1-5" not in pair and "score" not in pair
    assert "1-5" in single and "pair" not in single
    db = Ratings(tmp_path / "r.sqlite")
    plain = C.create(db, pairs(2), C.Spec(name="t", repeat=0.0))
    items, gold = B.items_and_gold(2, gold_questions=2)
    checked = C.create(db, items, C.Spec(name="g", repeat=0.2), gold)
    assert C.checks_said(db, plain) == ""
    assert C.checks_said(db, checked) == "; some come back later and some have a known answer"
    own = C.create(db, pairs(2), C.Spec(name="o", rubric=C.Rubric(guidelines="Prefer **short** answers.")))
    assert C.guidelines(C.spec_of(db, own)) == "Prefer **short** answers."


def test_a_campaigns_verdict_reaches_the_model_card_of_the_run_it_rated():
    """Campaign results reached neither the Results view nor the model card; the card now counts them beside
    the rating pool's votes (without the excluded raters)."""
    from pathlib import Path

    from studio.engine.export import card
    from studio.engine.judge.ratings import default_db

    db = default_db()
    items = [{"question_id": f"c{i}", "prompt": f"P{i}", "model": m, "output": f"{m} {i}"}
             for i in range(6) for m in ("base", "card-run")]
    cid = C.create(db, items, C.Spec(name="for the card", overlap=1, repeat=0.0, min_seconds=0))
    rate_all(db, cid, "ann", lambda shown, rng: "left" if shown.left_model == "card-run" else "right")
    board = card.run_leaderboard(Path("/anywhere/card-run"))
    assert board[0]["model"] == "card-run" and board[0]["win_rate"] == 1.0 and board[0]["n"] == 6
    assert all(v["item_id"].startswith(f"{cid}:") for v in C.all_votes(db) if v["campaign"] == cid)


def test_export_all_ratings_carries_the_campaigns_answers(tmp_path):
    """"Export all ratings (CSV)" gave a header-only file although 39 campaign answers existed."""
    import csv

    from studio.engine.judge.ratings_io import export_file

    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(3), C.Spec(name="t", overlap=1, repeat=0.0, min_seconds=0))
    rate_all(db, cid, "ann", honest)
    n = export_file(db, tmp_path / "all.csv", extra=C.rating_rows(db))
    rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert n == len(rows) == len(C.answers(db, cid)) == 9
    assert {r["campaign"] for r in rows} == {cid} and {r["judge"] for r in rows} == {"ann"}
    assert all(r["winner"] in ("model_a", "model_b", "tie") and r["prompt"] and r["output_a"] for r in rows)
    assert export_file(db, tmp_path / "bob.csv", rater="bob", extra=C.rating_rows(db)) == 0  # only one's own


def test_with_a_share_per_rater_the_progress_total_is_what_each_rater_is_given(tmp_path):
    """Without a share, "N of M" was an upper bound (every item, every repeat, every gold check: 274 where a rater
    gave 39); with ``per_rater`` each rater is given their share, its repeats and a gold check in every few, and
    the total said from the first item on is what they end at."""
    items, gold = B.items_and_gold(10, gold_questions=4)  # 10 questions x 4 systems: 60 pairs, and 4 gold pairs
    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, items, C.Spec(name="t", overlap=2, repeat=0.2, per_rater=8, min_seconds=0), gold)
    assert C.planned(db, cid) == 8 + 1 + 2  # the share, a fifth of it again, a check in about every four
    gold_units = {u["unit"] for u in C.units(db, cid) if u["gold"] is not None}
    for seed, r in enumerate(("ann", "bob", "cid", "dan")):
        seen = rate_all(db, cid, r, lambda shown, rng: rng.choice(("left", "right")), seed=seed)
        assert {s.total for s in seen} == {11}
        plain = [s for s in seen if not s.repeat and s.unit not in gold_units]
        assert len(plain) == 8 and len(seen) <= 11, [(s.unit, s.repeat) for s in seen]
        assert sum(s.repeat for s in seen) == 1 and sum(s.unit in gold_units for s in seen) <= 2
    assert C.coverage(db, cid)["needed"] == 60 * 2 - 4 * 8  # four shares of 8 toward 60 pairs x 2 raters


def test_a_draft_is_previewed_and_marked_with_gold_then_opened(tmp_path):
    """Gold came only from a file; now the owner sees each pair as raters will (sides drawn), marks the known
    answers, and opens the campaign; until then nobody rates it, and afterwards its gold is fixed."""
    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(4), C.Spec(name="t", overlap=1, repeat=0.0, min_seconds=0), draft=True)
    assert C.state_of(db, cid) == "draft" and C.next_unit(db, cid, "ann") is None  # nobody rates a draft
    rng = random.Random(3)
    shown = [C.preview(db, cid, i, rng) for i in range(12)]
    assert C.preview(db, cid, 12, rng) is None and {s.total for s in shown} == {12}
    assert {s.left_model for s in shown} == {"x", "y", "z"}  # sides drawn as for a rater
    first = shown[0]  # x0 vs y0 (sides drawn): the owner says the answer shown first is better
    u = C.units(db, cid)[0]
    C.mark_gold(db, cid, first.unit, "a" if first.left_model == u["model_a"] else "b")
    C.mark_gold(db, cid, shown[1].unit, "tie")
    C.mark_gold(db, cid, shown[1].unit, None)  # unmarked again
    golden = {x["unit"]: x["gold"] for x in C.units(db, cid) if x["gold"] is not None}
    assert golden == {first.unit: "a" if first.left_model == u["model_a"] else "b"}
    assert C.checks_said(db, cid) == "; some have a known answer"
    with pytest.raises(StudioError, match="a, b or tie"):
        C.mark_gold(db, cid, 2, "left")
    C.open_draft(db, cid)
    with pytest.raises(StudioError, match="draft only"):
        C.mark_gold(db, cid, 2, "a")
    with pytest.raises(StudioError, match="only a draft"):
        C.open_draft(db, cid)
    right = "left" if first.left_model == u["model_a"] else "right"  # not the side: the known winner
    seen = rate_all(db, cid, "ann", lambda s, rng: right if s.unit == first.unit and s.left_model == first.left_model
                    else ("left" if s.unit != first.unit else ("right" if right == "left" else "left")), seed=1)
    assert first.unit in {s.unit for s in seen}
    q = C.quality(db, cid)[0]
    assert q["gold_answers"] == 1 and q["gold_accuracy"] == 1.0


def test_every_item_gold_is_refused_when_opening(tmp_path):
    db = Ratings(tmp_path / "r.sqlite")
    cid = C.create(db, pairs(1, ("x", "y")), C.Spec(name="t"), draft=True)
    C.mark_gold(db, cid, 0, "a")
    with pytest.raises(StudioError, match="leave some"):
        C.open_draft(db, cid)
