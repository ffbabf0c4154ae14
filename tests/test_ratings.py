"""Ratings: the store survives threads and SIGKILL, counts each vote once; Bradley-Terry recovers a
known order; kappa and alpha match hand computation; export neutralises formulas; votes train DPO."""

import csv
import json
import random
import signal
import subprocess
import sys
import threading

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from studio.engine.judge import human
from studio.engine.judge.ratings import DIMENSIONS, Ratings
from studio.engine.judge.ratings_io import export_file, import_file, preference_rows


@pytest.fixture
def db(tmp_path):
    return Ratings(tmp_path / "r.sqlite")


def test_rerating_keeps_history_and_a_double_click_counts_once(db):
    item = db.add_item("k", "Q?", {"base": "a", "tuned": "b"})
    db.rate(item, "tuned", "ann", {"quality": 2})
    db.rate(item, "tuned", "ann", {"quality": 5})
    assert [r["quality"] for r in db.likert()] == [5] and db.counts()["history"] == 1
    for _ in range(3):
        db.vote(item, "tuned", "base", "a", "ann", left="tuned", client_key="click-1")
    assert len(db.votes()) == 1
    v = db.votes()[0]
    assert (v["system_a"], v["system_b"], v["winner"], v["left_system"]) == ("base", "tuned", "b", "tuned")
    with pytest.raises(ValueError, match="1-5"):
        db.rate(item, "tuned", "ann", {"quality": 9})


def test_bradley_terry_recovers_a_known_order():
    rng = random.Random(1)
    true = {"m1": 1300, "m2": 1150, "m3": 1000, "m4": 850}
    votes = []
    for _ in range(800):
        a, b = rng.sample(list(true), 2)
        p = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
        r = rng.random()
        votes.append({"system_a": a, "system_b": b, "winner": "a" if r < 0.9 * p else ("b" if r < 0.9 else "tie")})
    board = human.leaderboard(votes)
    assert [row["model"] for row in board] == ["m1", "m2", "m3", "m4"]
    assert [row["rank"] for row in board] == [1, 2, 3, 4]
    assert all(r["ci_low"] <= r["rating"] <= r["ci_high"] and 0 <= r["win_rate"] <= 1 for r in board)
    assert sum(r["rating"] for r in board) / 4 == pytest.approx(1000, abs=1e-6)


def test_kappa_and_alpha_equal_hand_computed_values():
    a, b = [1, 2, 3, 1, 2], [1, 2, 3, 2, 2]
    rows = [{"item_id": i, "system": "s", "rater": r, "quality": v, "relevance": None, "coherence": None,
             "helpfulness": None} for r, vals in (("A", a), ("B", b)) for i, v in enumerate(vals)]
    q = human.agreement(rows)["quality"]
    pair = q["pairs"][0]
    assert pair["kappa"] == pytest.approx(0.44 / 0.64)  # po 0.8, pe 0.36
    assert pair["kappa_quadratic"] == pytest.approx(0.8)  # 1 - 0.0125 / 0.0625
    assert q["krippendorff_alpha"] == pytest.approx(1 - 9 * 32 / 1400)  # ordinal: delta from value counts


@given(st.lists(st.text(max_size=12), min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
@pytest.mark.integration
def test_export_neutralises_formulas(tmp_path_factory, cells):
    db = Ratings(tmp_path_factory.mktemp("x") / "r.sqlite")
    for i, text in enumerate(cells):
        item = db.add_item(f"k{i}", text or "p", {"a": text, "b": "x"})
        db.vote(item, "a", "b", "a", "rater")
    out = tmp_path_factory.mktemp("o") / "e.csv"
    export_file(db, out)
    with open(out, newline="", encoding="utf-8") as f:  # as a spreadsheet reads it: "\r" inside a cell kept
        rows = {r["question_id"]: r for r in csv.DictReader(f)}
    for row in rows.values():
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    for i, text in enumerate(cells):  # nothing lost: a risky cell is the text behind one apostrophe
        row = rows[f"k{i}"]
        for got, original in ((row["output_a"], text), (row["prompt"], text or "p")):
            assert got == ("'" + original if original.startswith(("=", "+", "-", "@", "\t", "\r")) else original)


WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from studio.engine.judge.ratings import Ratings
db = Ratings(sys.argv[2])
item = db.add_item("killed", "Q", {"a": "1", "b": "2"})
for n in range(100000):
    db.vote(item, "a", "b", "a", f"proc-{n}", client_key=f"proc-{n}")
    print(n, flush=True)  # printed only after the commit returned
"""


@pytest.mark.slow
def test_threads_and_a_killed_process_lose_and_double_nothing(tmp_path):
    path = tmp_path / "r.sqlite"
    db = Ratings(path)
    item = db.add_item("threads", "Q", {"a": "1", "b": "2"})
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(path)], stdout=subprocess.PIPE, text=True)

    def write(t):
        local = Ratings(path)
        for n in range(500):
            local.vote(item, "a", "b", "b", f"t{t}-{n}", client_key=f"t{t}-{n}")

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    first = "".join(proc.stdout.readline() for _ in range(3))  # the writer is committing, however slow the machine
    proc.send_signal(signal.SIGKILL)  # mid-write, as far as it knows
    out, _ = proc.communicate()
    out = first + out
    for th in threads:
        th.join()
    committed = {f"proc-{line.split()[0]}" for line in out.splitlines() if line.strip()}
    assert committed, "the killed writer committed nothing before the kill"
    fresh = Ratings(path)
    rows = fresh.db.execute("SELECT client_key FROM votes").fetchall()
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys))
    assert committed <= set(keys)
    assert {f"t{t}-{n}" for t in range(8) for n in range(500)} <= set(keys)


@pytest.mark.slow
def test_import_arena_battles_leaderboard_and_dpo_from_votes(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    battles = tmp_path / "battles.jsonl"
    rows = [{"question_id": f"q{i}", "model_a": "base", "model_b": "tuned", "winner": w, "judge": j,
             "prompt": f"Add {i} and {i}.", "output_a": f"{i} + {i} = {2 * i + 1}.",
             "output_b": f"{i} + {i} = {2 * i}."}
            for i in range(2, 14) for j, w in (("ann", "model_b"), ("bob", "tie"))]
    battles.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli = [sys.executable, "-m", "studio", "ratings"]
    env = {**__import__("os").environ, "STUDIO_HOME": str(tmp_path / "home")}
    assert subprocess.run([*cli, "import", str(battles)], cwd=ROOT, env=env).returncode == 0
    board = json.loads(subprocess.run([*cli, "leaderboard", "--json"], cwd=ROOT, env=env, capture_output=True,
                                      text=True).stdout)
    assert board[0]["model"] == "tuned" and {"model", "rating", "ci_low", "ci_high", "win_rate", "n"} <= set(board[0])
    prefs = tmp_path / "prefs.jsonl"
    assert subprocess.run([*cli, "export", "--preferences", "--out", str(prefs)], cwd=ROOT, env=env).returncode == 0
    assert len(prefs.read_text().splitlines()) == 12  # the ties teach nothing

    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(prefs, method={"kind": "dpo"}, data={"val_size": 0}))
    result = train.run(cfg, tmp_path / "dpo")
    assert result.state == "completed" and result.step == 3
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "dpo" / "adapter" / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())  # B starts at zero


def test_import_rejects_unknown_winner_with_its_row(tmp_path, db):
    bad = tmp_path / "b.csv"
    bad.write_text("model_a,model_b,winner\nx,y,model_c\n")
    from studio.engine.errors import DataError

    with pytest.raises(DataError, match="line 2, field 'winner'"):
        import_file(db, bad)
    assert preference_rows(db) == ([], {}) and db.counts()["items"] == 0  # nothing half-imported


@pytest.mark.integration
def test_five_one_sided_votes_give_honest_intervals_and_say_the_sample_is_small(db):
    from studio.engine.judge.ratings import DIMENSIONS
    from studio.ui.tabs.rate import results

    votes = [{"system_a": "tuned", "system_b": "base", "winner": "a", "item_id": i, "rater": "r"} for i in range(5)]
    board = {r["model"]: r for r in human.leaderboard(votes)}
    for r in board.values():
        assert r["ci_high"] - r["ci_low"] > 100 and r["small"]  # not 1239.4 [1239.4, 1239.4]
        assert r["win_rate_ci_high"] - r["win_rate_ci_low"] > 0.3  # Wilson: 5 of 5 is [0.57, 1], not [1, 1]
    assert board["tuned"]["win_rate_ci_low"] == pytest.approx(0.566, abs=0.01) and board["tuned"]["rank"] == 1
    assert board["base"]["rank"] == 1  # the intervals overlap: five votes cannot order them
    many = [{**v, "winner": "a" if i % 3 else "b", "item_id": i} for i, v in enumerate(votes * 60)]
    big = {r["model"]: r for r in human.leaderboard(many)}
    assert not big["tuned"]["small"] and big["tuned"]["rank"] == 1 and big["base"]["rank"] == 2
    one = [{"item_id": 1, "system": "tuned", "rater": "r", **{d: 4 for d in DIMENSIONS}}]
    (row, *_) = human.likert_summary(one)
    assert row["ci_low"] is None and row["small"]  # one rating: no interval at all
    note = results(db, votes, likert=one)[-1]  # what the Rate tab says beside the numbers
    assert "a small sample" in note


def _trained_run(home, name: str, owner: str):
    """A run folder as the run store sees a trained one of ``owner``'s: its config, status and adapter."""
    from studio.engine import runs

    run = home / "runs" / name
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "config.yaml").write_text("run_name: ''\n")
    runs.write_status(run, "completed", owner=owner)
    return run


def test_a_public_visitor_works_with_their_own_items_votes_and_names_and_sees_others_under_a_pseudonym(
        tmp_path, monkeypatch, db):
    """One rule for the Rate tab, the Campaigns tab and the model card: alice's votes and ratings count only
    between her runs and the base; bob's run is a pseudonym to her; locally everything counts by name."""
    from studio.engine.judge.scope import Scope

    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))
    _trained_run(tmp_path / "home", "alice-run", "user-alice")
    _trained_run(tmp_path / "home", "bob-run", "user-bob")
    mine = db.add_item("a/0", "Her question?", {"base": "b", "alice-run": "a"}, source="alice-run/val")
    theirs = db.add_item("b/0", "His question?", {"base": "b", "bob-run": "x"}, source="bob-run/val")
    db.vote(mine, "base", "alice-run", "b", "alice")
    db.vote(theirs, "base", "bob-run", "a", "bob")
    db.rate(mine, "alice-run", "alice", {d: 4 for d in DIMENSIONS})
    db.rate(theirs, "bob-run", "bob", {d: 2 for d in DIMENSIONS})
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    alice = Scope.of("user-alice")
    assert [{v["system_a"], v["system_b"]} for v in alice.votes(db.votes())] == [{"base", "alice-run"}]
    assert [r["item_id"] for r in alice.likert(db)] == [mine]
    assert [i["id"] for i in db.items() if alice.items()(i)] == [mine]
    assert alice.name("alice-run") == "alice-run" and alice.name("base") == "base"
    assert alice.name("bob-run") not in ("bob-run", "alice-run") and alice.name("bob-run").startswith("run-")
    assert Scope.of(None).votes(db.votes()) == []  # an anonymous visitor owns no run, so counts no vote
    monkeypatch.delenv("STUDIO_PUBLIC")
    local = Scope.of(None)
    assert len(local.votes(db.votes())) == 2 and len(local.likert(db)) == 2 and local.items() is None
    assert local.name("bob-run") == "bob-run"
