"""A campaign as a Hugging Face dataset folder (answers, units, spec, a dataset card) and back; as one zip; and
Chatbot Arena battle rows imported as its answers."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from studio.engine.errors import DataError, StudioError
from studio.engine.judge.campaign.raters import quality
from studio.engine.judge.campaign.results import alpha, coverage, human_vs_metric, leaderboard, likert
from studio.engine.judge.campaign.store import answers, campaigns, guidelines, spec_of, units
from studio.engine.judge.ratings import DIMENSIONS, Ratings
from studio.engine.markdown import safe_md


def import_battles(db: Ratings, cid: str, path: str | Path) -> dict:
    """Arena battle rows as this campaign's answers (all or nothing): each row names a unit by question and
    pair; a rater's second answer to a unit counts as a repeat, a gold unit as a gold answer."""
    from studio.engine.data.readers import read_records
    from studio.engine.judge.ratings_io import ARENA, restore

    spec_of(db, cid)
    p = Path(path)
    recs = read_records(p)
    index = {(u["question_id"], u["model_a"], u["model_b"]): u for u in units(db, cid) if u["kind"] == "pair"}
    rows, count = [], Counter()
    for raw, where in zip(recs.rows, recs.where):
        row = {k: restore(v) for k, v in raw.items()}
        a, b, qid = str(row.get("model_a") or ""), str(row.get("model_b") or ""), str(row.get("question_id") or "")
        unit = index.get((qid, *sorted((a, b))))
        if unit is None:
            raise DataError(f"{p.name}: {where}: question {qid!r} with {a!r} vs {b!r} is not a unit of the campaign")
        said = ARENA.get(str(row.get("winner")))
        if said is None or said == "bothbad":
            said = "tie" if said == "bothbad" else None
        if said is None:
            raise DataError(f"{p.name}: {where}, field 'winner': expected one of {', '.join(ARENA)}, got "
                            f"{row.get('winner')!r}")
        winner = said if said == "tie" or a == unit["model_a"] else {"a": "b", "b": "a"}[said]
        judge = str(row.get("judge") or "imported").strip()[:100] or "imported"
        repeat = count[(judge, unit["unit"])]
        count[(judge, unit["unit"])] += 1
        seconds = _number(row.get("seconds"), p.name, where, "seconds")
        created = _number(row.get("tstamp"), p.name, where, "tstamp") or time.time()
        rows.append((cid, judge, unit["unit"], a, winner, seconds, min(repeat, 1), created))
    with db.write() as c:
        c.executemany("INSERT OR REPLACE INTO campaign_shown VALUES (?, ?, ?, ?, ?, ?)",
                      [(cid, r[1], r[2], r[3], r[6], r[7]) for r in rows])
        c.executemany("INSERT OR REPLACE INTO campaign_answers (campaign, rater, unit, left_model, winner, seconds, "
                      "repeat, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return {"answers": len(rows), "raters": len({r[1] for r in rows})}


def _number(value, name: str, where: str, key: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name}: {where}, field '{key}': expected a number, got {value!r}") from None


# -- a campaign as a Hugging Face dataset ------------------------------------------------------------------
ANSWER_FIELDS = ("rater", "question_id", "model_a", "model_b", "left_model", "winner", *DIMENSIONS, "seconds",
                 "repeat", "gold", "created")
UNIT_FIELDS = ("question_id", "prompt", "model_a", "model_b", "output_a", "output_b", "gold", "kind", "scores")


def export(db: Ratings, cid: str, out: str | Path) -> Path:
    """The campaign as a dataset folder that ``datasets.load_dataset`` reads: answers (Parquet and JSONL: rater,
    item, the sides shown, the answer, seconds, time), its units (Parquet and JSONL), its spec, and a dataset card
    with the rubric, the exclusions, the agreement and the columns."""
    import pandas as pd

    from studio.engine.runs import write_atomic, write_jsonl

    spec, out = spec_of(db, cid), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = next(c for c in campaigns(db) if c["id"] == cid)
    by_unit = {u["unit"]: u for u in units(db, cid)}
    rows = [{"rater": a["rater"], "question_id": by_unit[a["unit"]]["question_id"],
             "model_a": by_unit[a["unit"]]["model_a"], "model_b": by_unit[a["unit"]]["model_b"],
             "left_model": a["left_model"], "winner": a["winner"], **{d: a[d] for d in DIMENSIONS},
             "seconds": a["seconds"],
             "repeat": bool(a["repeat"]), "gold": by_unit[a["unit"]]["gold"] is not None, "created": a["created"]}
            for a in answers(db, cid)]
    write_jsonl(out / "answers.jsonl", rows)
    pd.DataFrame(rows, columns=list(ANSWER_FIELDS)).to_parquet(out / "answers.parquet", index=False)
    unit_rows = [{k: u[k] for k in UNIT_FIELDS} for u in by_unit.values()]
    write_jsonl(out / "units.jsonl", unit_rows)
    pd.DataFrame([{**u, "scores": json.dumps(u["scores"]) if u["scores"] else None} for u in unit_rows],
                 columns=list(UNIT_FIELDS)).to_parquet(out / "units.parquet", index=False)  # one format for datasets
    write_atomic(out / "campaign.json", json.dumps({**meta, "spec": asdict(spec)}, indent=1))
    write_atomic(out / "README.md", card(db, cid))
    return out


ZIP_MAX_MB = 256  # a campaign zip brought back to the page: at most this, unpacked


def export_zip(db: Ratings, cid: str, out: str | Path) -> Path:
    """``export``'s folder as one zip (what the page hands out)."""
    import tempfile
    import zipfile

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export(db, cid, Path(tmp) / cid)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    z.write(f, f"{cid}/{f.relative_to(folder)}")
    return out


def import_zip(db: Ratings, path: str | Path, owner: str | None = None) -> str:
    """A zip ``export_zip`` made, back as a campaign filed under ``owner``: every name and size checked before a
    byte is unpacked (no absolute path, no ``..``, at most ``ZIP_MAX_MB`` in all)."""
    import tempfile
    import zipfile

    p = Path(path)
    try:
        with zipfile.ZipFile(p) as z:
            infos = z.infolist()
            bad = [i.filename for i in infos if i.filename.startswith("/") or ".." in Path(i.filename).parts]
            if bad:
                raise DataError(f"{p.name}: {bad[0]!r} is not a name a campaign's file has")
            if sum(i.file_size for i in infos) > ZIP_MAX_MB * 2**20:
                raise DataError(f"{p.name}: more than {ZIP_MAX_MB} MB once unpacked")
            tops = {Path(i.filename).parts[0] for i in infos if i.filename.strip("/")}
            with tempfile.TemporaryDirectory() as tmp:
                z.extractall(tmp)
                nested = len(tops) == 1 and not (Path(tmp) / "campaign.json").is_file()
                folder = Path(tmp) / next(iter(tops)) if nested else Path(tmp)
                return import_export(db, folder, owner, as_owner=True)
    except zipfile.BadZipFile:
        raise DataError(f"{p.name}: not a zip file (the page's Export makes one)") from None


def md(text) -> str:
    """A name in the card (the campaign's, a rater's, a model's): shown as itself, linking and loading nothing."""
    return safe_md(text, literal=True)


def card(db: Ratings, cid: str) -> str:
    """The dataset card: every name and the owner's rubric go in through ``safe_md``."""
    spec, quality_rows = spec_of(db, cid), quality(db, cid)
    board, a = leaderboard(db, cid), alpha(db, cid)
    cover = coverage(db, cid)
    excluded = [q for q in quality_rows if q["excluded"]]
    lines = ["---", "configs:", "- config_name: answers", "  data_files: answers.parquet", "  default: true",
             "- config_name: units", "  data_files: units.parquet", "tags:", "- human-evaluation", f"- {spec.mode}",
             "- finetune-studio", "---", "", f"# Rating campaign: {md(spec.name)}",
             "", f"Ratings ({spec.mode}) collected with the fine-tuning studio: {cover['units']} items, "
             f"{spec.overlap} raters each ({cover['complete']} complete), {len(quality_rows)} raters.", "",
             "## Rubric", "", safe_md(guidelines(spec)), "", f"Question: {md(spec.rubric.question)}", ""]
    if spec.mode != "pairwise":
        lines += [f"- {d}: " + "; ".join(md(x) for x in labels) for d, labels in spec.rubric.anchors.items()] + [""]
    lines += ["## Exclusions", "", spec.rules() + ".", ""]
    lines += [f"- {md(q['rater'])}: {q['why']}" for q in excluded] or ["Nobody was excluded."]
    lines += ["", "## Results (without the excluded raters)", "",
              f"Krippendorff's alpha (nominal) across raters: {'-' if a is None else f'{a:.3f}'}.", "",
              "| model | rating | 95% interval | n |", "|---|---|---|---|"]
    lines += [f"| {md(r['model'])} | {r['rating']:.1f} | [{r['ci_low']:.1f}, {r['ci_high']:.1f}] | {r['n']} |"
              for r in board]
    agreeing = human_vs_metric(db, cid)
    if agreeing:
        lines += ["", "Which metric agrees with the raters (Kendall's tau, per pair):", "",
                  "| metric | tau | p | n |", "|---|---|---|---|"]
        lines += [f"| {r['metric']} | {r['kendall_tau']:+.3f} | {r['p_value']:.3f} | {r['n']} |" for r in agreeing]
    scored = likert(db, cid)
    if scored["means"]:
        alphas = ", ".join(f"{d} {'-' if v is None else f'{v:.3f}'}" for d, v in scored["alpha"].items())
        lines += ["", f"1-5 scores (Krippendorff's alpha, ordinal, per dimension: {alphas}):", "",
                  "| model | dimension | mean | 95% interval | n |", "|---|---|---|---|---|"]
        lines += [f"| {md(m['system'])} | {m['dimension']} | {m['mean']:.2f} | "
                  + ("-" if m["ci_low"] is None else f"[{m['ci_low']:.2f}, {m['ci_high']:.2f}]") + f" | {m['n']} |"
                  for m in scored["means"]]
    lines += ["", "## Files", "", "`datasets.load_dataset(\"path/to/this/folder\")` reads `answers` (the default); "
              "`load_dataset(\"path/to/this/folder\", \"units\")` reads `units`. `datasets` keeps what it read of a "
              "local folder under the folder's name: after a newer export to the same place, add "
              "`download_mode=\"force_redownload\"`.", "",
              "`answers` (answers.parquet, also answers.jsonl) has one row per answer: the rater, the item "
              "(question_id, model_a, model_b; model_b is empty for a single answer), the model shown first, the "
              "winner of a pair (a, b or tie, of model_a and model_b) or the 1-5 scores of a single answer, seconds "
              "spent, whether it was a planned repeat or a gold check, and when. Columns: "
              + ", ".join(f"`{f}`" for f in ANSWER_FIELDS) + ".", "",
              "`units` (units.parquet, also units.jsonl) has one row per item: the prompt, the two answers shown (or "
              "one), the gold answer if the item is a check, its kind, and the metric scores the comparison gave it "
              "(a JSON object in the Parquet file). Columns: "
              + ", ".join(f"`{f}`" for f in UNIT_FIELDS) + ".", ""]
    return "\n".join(lines)


def import_export(db: Ratings, folder: str | Path, owner: str | None = None, as_owner: bool = False) -> str:
    """A folder ``export`` wrote, back into the database under its own id (all or nothing); ``as_owner``: filed
    under ``owner`` (a visitor who imports a campaign owns the copy), else under the owner it names."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / "campaign.json").read_text())
        unit_rows = [json.loads(x) for x in (folder / "units.jsonl").read_text().splitlines() if x.strip()]
        rows = [json.loads(x) for x in (folder / "answers.jsonl").read_text().splitlines() if x.strip()]
    except (OSError, ValueError) as e:
        raise DataError(f"{folder}: not a campaign export ({e})") from None
    cid = meta["id"]
    index = {(u["question_id"], u["model_a"], u["model_b"]): n for n, u in enumerate(unit_rows)}
    with db.write() as c:
        if c.execute("SELECT 1 FROM campaigns WHERE id = ?", (cid,)).fetchone():
            raise StudioError(f"campaign {cid} is already here")
        c.execute("INSERT INTO campaigns (id, name, spec, state, created, owner) VALUES (?, ?, ?, ?, ?, ?)",
                  (cid, meta["name"], json.dumps(meta["spec"]), meta["state"], meta["created"],
                   owner if as_owner else meta.get("owner")))
        c.executemany("INSERT INTO campaign_units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [(cid, n, u["question_id"], u["prompt"], u["model_a"], u["model_b"], u["output_a"],
                        u["output_b"], u["gold"], u.get("kind", "pair"),
                        json.dumps(u["scores"]) if u.get("scores") else None) for n, u in enumerate(unit_rows)])
        for r in rows:
            unit = index[(r["question_id"], r["model_a"], r["model_b"])]
            shown = r["created"] - (r["seconds"] or 0.0)
            c.execute("INSERT INTO campaign_shown VALUES (?, ?, ?, ?, ?, ?)",
                      (cid, r["rater"], unit, r["left_model"], int(r["repeat"]), shown))
            c.execute(f"INSERT INTO campaign_answers (campaign, rater, unit, left_model, winner, "
                      f"{', '.join(DIMENSIONS)}, seconds, repeat, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      (cid, r["rater"], unit, r["left_model"], r["winner"], *[r.get(d) for d in DIMENSIONS],
                       r["seconds"], int(r["repeat"]), r["created"]))
    return cid
