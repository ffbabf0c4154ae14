"""Ratings in and out: Chatbot Arena battle files, Likert tables, preference datasets.

Contract: ``import_file(db, path)`` reads CSV or JSONL: pairwise rows in Chatbot Arena's battle
columns (``model_a``, ``model_b``, ``winner`` in model_a / model_b / tie / tie (bothbad), optional
``question_id``, ``judge``, ``prompt``, ``output_a``, ``output_b``), Likert rows as ``question_id``,
``judge``, ``model`` and a column per dimension. ``export_file(db, path)`` writes both kinds, a
``kind`` column telling them apart; any text cell starting with = + - @ tab or CR is neutralised
with a leading ``'`` (spreadsheet formula injection). ``preference_rows(db)`` turns decided votes
into prompt / chosen / rejected records for DPO.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .errors import DataError
from .ratings import DIMENSIONS, Ratings
from .readers import read_records

ARENA = {"model_a": "a", "model_b": "b", "tie": "tie", "tie (bothbad)": "bothbad"}
RISKY = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ["kind", "question_id", "judge", "model_a", "model_b", "winner", "model", *DIMENSIONS, "comment",
           "prompt", "output_a", "output_b", "tstamp"]


def neutralise(value):
    """A cell a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(RISKY):
        return "'" + value
    return value


def import_file(db: Ratings, path: str | Path) -> dict:
    recs = read_records(path)
    counts = {"pairwise": 0, "likert": 0}
    for row, where in zip(recs.rows, recs.where):
        qid = str(row.get("question_id") or f"{Path(path).name}:{where}")
        judge = str(row.get("judge") or "imported")
        if "model_a" in row and "model_b" in row:
            winner = ARENA.get(str(row.get("winner")))
            if winner is None:
                raise DataError(f"{Path(path).name}: {where}, field 'winner': expected one of "
                                f"{', '.join(ARENA)}, got {row.get('winner')!r}")
            a, b = str(row["model_a"]), str(row["model_b"])
            outputs = {a: str(row.get("output_a") or ""), b: str(row.get("output_b") or "")}
            item = db.add_item(qid, str(row.get("prompt") or qid), outputs, source="import")
            db.vote(item, a, b, winner, judge)
            counts["pairwise"] += 1
        elif "model" in row and any(d in row for d in DIMENSIONS):
            scores = {}
            for d in DIMENSIONS:
                if row.get(d) not in (None, ""):
                    try:
                        scores[d] = int(float(row[d]))
                    except (TypeError, ValueError):
                        raise DataError(f"{Path(path).name}: {where}, field '{d}': expected 1-5, got {row[d]!r}") \
                            from None
            item = db.add_item(qid, str(row.get("prompt") or qid), {}, source="import")
            try:
                db.rate(item, str(row["model"]), judge, scores, str(row.get("comment") or ""))
            except ValueError as e:
                raise DataError(f"{Path(path).name}: {where}: {e}") from None
            counts["likert"] += 1
        else:
            raise DataError(f"{Path(path).name}: {where}: neither a battle (model_a, model_b, winner) nor a Likert "
                            f"row (model, {', '.join(DIMENSIONS)}); found {', '.join(row)}")
    return counts


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


def export_file(db: Ratings, path: str | Path) -> int:
    from .runs import write_atomic

    p = Path(path)
    rows = [{k: neutralise(row.get(k)) for k in COLUMNS if k in row} for row in export_rows(db)]
    if p.suffix.lower() == ".jsonl":
        write_atomic(p, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif p.suffix.lower() == ".csv":
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        write_atomic(p, buf.getvalue())
    else:
        raise DataError(f"{p.name}: export to .csv or .jsonl")
    return len(rows)


def preference_rows(db: Ratings) -> list[dict]:
    """Decided votes (not ties) as DPO records: the winner's output is chosen, the loser's rejected."""
    items = {it["id"]: it for it in db.items()}
    out = []
    for v in db.votes():
        if v["winner"] not in ("a", "b"):
            continue
        it = items[v["item_id"]]
        win, lose = (v["system_a"], v["system_b"]) if v["winner"] == "a" else (v["system_b"], v["system_a"])
        chosen, rejected = it["outputs"].get(win, ""), it["outputs"].get(lose, "")
        if chosen.strip() and rejected.strip() and it["prompt"].strip():
            out.append({"prompt": it["prompt"], "chosen": chosen, "rejected": rejected})
    return out
