"""Ratings in and out: Chatbot Arena battle files, Likert tables, preference datasets.

Contract: ``import_file(db, path)`` reads CSV or JSONL: pairwise rows in Chatbot Arena's battle columns
(``model_a``, ``model_b``, ``winner`` in model_a / model_b / tie / tie (bothbad), optional ``question_id``,
``judge``, ``prompt``, ``output_a``, ``output_b``, ``tstamp``), Likert rows as ``question_id``, ``judge``,
``model`` and a column per dimension; a ``kind`` column (as ``export_file`` writes) tells them apart. The
whole file is checked first and then written in one transaction: a bad row names its line and imports
nothing. ``export_file(db, path)`` writes both kinds, so export then import restores the same votes,
ratings and raters; in a CSV (which a spreadsheet may open) a cell starting with = + - @ tab or CR gets a
leading ``'``, which an import of a CSV takes off again. ``preference_rows(db)`` turns decided votes into
prompt / chosen / rejected records for DPO and says why the others were left out.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from studio.engine.data.readers import read_records
from studio.engine.errors import DataError
from studio.engine.judge.ratings import DIMENSIONS, Ratings
from studio.engine.runs import write_atomic, write_jsonl

ARENA = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "bothbad"}
RISKY = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ["kind", "question_id", "judge", "model_a", "model_b", "winner", "model", *DIMENSIONS, "comment",
           "prompt", "output_a", "output_b", "tstamp", "campaign"]  # campaign: empty for the rating pool's rows


def neutralise(value):
    """A cell a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(RISKY):
        return "'" + value
    return value


def restore(value):
    """What ``neutralise`` did, undone (for CSV imports)."""
    if isinstance(value, str) and value.startswith("'") and value[1:].startswith(RISKY):
        return value[1:]
    return value


def _kind(row: dict) -> str | None:
    if row.get("kind") in ("pairwise", "likert"):
        return row["kind"]
    if row.get("model_a") not in (None, "") and row.get("model_b") not in (None, ""):
        return "pairwise"
    if row.get("model") not in (None, "") and any(row.get(d) not in (None, "") for d in DIMENSIONS):
        return "likert"
    return None


def _time(value):
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _battle(row: dict, qid: str, judge: str, where: str, name: str) -> tuple[dict, dict]:
    winner = ARENA.get(str(row.get("winner")))
    if winner is None:
        raise DataError(f"{name}: {where}, field 'winner': expected one of {', '.join(ARENA)}, "
                        f"got {row.get('winner')!r}")
    a, b = str(row["model_a"]), str(row["model_b"])
    item = {"key": qid, "prompt": str(row.get("prompt") or qid), "source": "import",
            "outputs": {a: str(row.get("output_a") or ""), b: str(row.get("output_b") or "")}}
    return item, {"item": qid, "system_a": a, "system_b": b, "winner": winner, "rater": judge,
                  "created": _time(row.get("tstamp"))}


def _likert(row: dict, qid: str, judge: str, where: str, name: str) -> tuple[dict, dict]:
    scores = {}
    for d in DIMENSIONS:
        if row.get(d) in (None, ""):
            continue
        try:
            value = float(row[d])
        except (TypeError, ValueError):
            value = None
        if value is None or not value.is_integer() or not 1 <= value <= 5:
            raise DataError(f"{name}: {where}, field '{d}': expected 1-5, got {row[d]!r}")
        scores[d] = int(value)
    item = {"key": qid, "prompt": str(row.get("prompt") or qid), "source": "import", "outputs": {}}
    return item, {"item": qid, "system": str(row["model"]), "rater": judge, "scores": scores,
                  "comment": str(row.get("comment") or ""), "created": _time(row.get("tstamp"))}


def parse_file(path: str | Path) -> tuple[list[dict], list[dict], list[dict]]:
    """(items, votes, Likert ratings) of a file, every row checked; nothing is written."""
    p = Path(path)
    recs = read_records(p)
    csv_file = recs.kind == "csv"
    items, votes, likert = {}, [], []
    for row, where in zip(recs.rows, recs.where):
        row = {k: restore(v) for k, v in row.items()} if csv_file else row
        qid = str(row.get("question_id") or f"{p.name}:{where}")
        judge = str(row.get("judge") or "imported").strip()[:100] or "imported"
        kind = _kind(row)
        if kind is None:
            raise DataError(f"{p.name}: {where}: neither a battle (model_a, model_b, winner) nor a Likert row "
                            f"(model, {', '.join(DIMENSIONS)}); found {', '.join(row)}")
        item, rating = (_battle if kind == "pairwise" else _likert)(row, qid, judge, where, p.name)
        known = items.setdefault(qid, item)
        known["outputs"].update({k: v for k, v in item["outputs"].items() if v})
        (votes if kind == "pairwise" else likert).append(rating)
    return list(items.values()), votes, likert


def import_file(db: Ratings, path: str | Path) -> dict:
    """All or nothing; the counts say how many ratings were added, replaced (a rater's newer word) and skipped
    (already there, unchanged), with how many of them were pairwise votes and Likert ratings."""
    items, votes, likert = parse_file(path)
    counts = db.bulk(items, votes, likert)
    return {**counts, "pairwise": len(votes), "likert": len(likert)}


def import_text(counts: dict) -> str:
    return (f"imported {counts['pairwise']} pairwise votes and {counts['likert']} Likert ratings: "
            f"{counts['added']} added, {counts['replaced']} replaced an earlier rating by the same rater, "
            f"{counts['skipped']} already there")


def export_rows(db: Ratings) -> list[dict]:
    items = {it["id"]: it for it in db.items()}
    back = {v: k for k, v in ARENA.items()}
    rows = []
    for v in db.votes():
        it = items[v["item_id"]]
        rows.append({"kind": "pairwise", "question_id": it["key"], "judge": v["rater"], "model_a": v["system_a"],
                     "model_b": v["system_b"], "winner": back[v["winner"]], "prompt": it["prompt"],
                     "output_a": it["outputs"].get(v["system_a"], ""), "output_b": it["outputs"].get(v["system_b"], ""),
                     "tstamp": v["created"]})
    for r in db.likert():
        it = items[r["item_id"]]
        rows.append({"kind": "likert", "question_id": it["key"], "judge": r["rater"], "model": r["system"],
                     **{d: r[d] for d in DIMENSIONS}, "comment": r["comment"], "prompt": it["prompt"],
                     "tstamp": r["created"]})
    return rows


def export_file(db: Ratings, path: str | Path, rater: str | None = None, extra: list[dict] = ()) -> int:
    """All ratings, or only ``rater``'s (what a visitor of a public deployment may take away); ``extra``: more rows
    of the same columns (the campaigns' answers)."""
    p = Path(path)
    rows = [r for r in [*export_rows(db), *extra] if rater is None or r["judge"] == rater]
    if p.suffix.lower() == ".jsonl":
        write_jsonl(p, ({k: r[k] for k in COLUMNS if k in r} for r in rows))
    elif p.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows({k: neutralise(r.get(k)) for k in COLUMNS if k in r} for r in rows)
        write_atomic(p, buf.getvalue())
    else:
        raise DataError(f"{p.name}: export to .csv or .jsonl")
    return len(rows)


def preference_rows(db: Ratings, votes: list[dict] | None = None) -> tuple[list[dict], dict]:
    """Decided votes (not ties; all of them, or ``votes``) as DPO records: the winner's output is chosen, the
    loser's rejected; and why the other votes gave no pair (counts by reason)."""
    items = {it["id"]: it for it in db.items()}
    out, skipped = [], {"ties or both bad": 0, "an output is missing": 0, "no prompt": 0}
    for v in db.votes() if votes is None else votes:
        if v["winner"] not in ("a", "b"):
            skipped["ties or both bad"] += 1
            continue
        it = items[v["item_id"]]
        win, lose = (v["system_a"], v["system_b"]) if v["winner"] == "a" else (v["system_b"], v["system_a"])
        chosen, rejected = it["outputs"].get(win, ""), it["outputs"].get(lose, "")
        if not (chosen.strip() and rejected.strip()):
            skipped["an output is missing"] += 1
        elif not it["prompt"].strip():
            skipped["no prompt"] += 1
        else:
            out.append({"prompt": it["prompt"], "chosen": chosen, "rejected": rejected})
    return out, {k: n for k, n in skipped.items() if n}


def skipped_text(skipped: dict) -> str:
    if not skipped:
        return ""
    return "left out: " + ", ".join(f"{n} ({why})" for why, n in skipped.items()) + \
        (" — imported battles carry texts only when the file has prompt, output_a and output_b"
         if "an output is missing" in skipped else "")
