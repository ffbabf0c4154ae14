"""Human ratings in SQLite: items, Likert ratings, blind pairwise votes, raters.

Contract: ``Ratings(path)`` is safe to share between threads (a connection per thread) and
processes (WAL, ``BEGIN IMMEDIATE`` for every write, a busy timeout); a committed rating survives
a SIGKILL. A rater rating the same thing again replaces their current rating and keeps the old one
as history (``current = 0``), so nothing is counted twice; a vote carries a client key, so a
double-click is stored once. The schema has a version and migrations.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

DIMENSIONS = ("quality", "relevance", "coherence", "helpfulness")
WINNERS = ("a", "b", "tie", "bothbad")
SCHEMA_VERSION = 3
MIGRATIONS = {1: """
CREATE TABLE raters (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, prompt TEXT NOT NULL,
                    reference TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',
                    scores TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE TABLE outputs (item_id INTEGER NOT NULL REFERENCES items(id), system TEXT NOT NULL, text TEXT NOT NULL,
                      PRIMARY KEY (item_id, system));
CREATE TABLE likert (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items(id), system TEXT NOT NULL,
                     rater_id INTEGER NOT NULL REFERENCES raters(id), quality INTEGER, relevance INTEGER,
                     coherence INTEGER, helpfulness INTEGER, comment TEXT NOT NULL DEFAULT '',
                     created REAL NOT NULL, current INTEGER NOT NULL DEFAULT 1);
CREATE UNIQUE INDEX likert_current ON likert(item_id, system, rater_id) WHERE current = 1;
CREATE TABLE votes (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items(id),
                    system_a TEXT NOT NULL, system_b TEXT NOT NULL, left_system TEXT NOT NULL,
                    winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie', 'bothbad')),
                    rater_id INTEGER NOT NULL REFERENCES raters(id), client_key TEXT UNIQUE,
                    created REAL NOT NULL, current INTEGER NOT NULL DEFAULT 1);
CREATE UNIQUE INDEX votes_current ON votes(item_id, system_a, system_b, rater_id) WHERE current = 1;
""",
    2: """
CREATE TABLE IF NOT EXISTS campaigns (id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL,
                                      state TEXT NOT NULL DEFAULT 'open', created REAL NOT NULL, owner TEXT);
CREATE TABLE IF NOT EXISTS campaign_units (campaign TEXT NOT NULL REFERENCES campaigns(id), unit INTEGER NOT NULL,
                                           question_id TEXT NOT NULL, prompt TEXT NOT NULL, model_a TEXT NOT NULL,
                                           model_b TEXT NOT NULL, output_a TEXT NOT NULL, output_b TEXT NOT NULL,
                                           gold TEXT, kind TEXT NOT NULL DEFAULT 'pair', scores TEXT,
                                           PRIMARY KEY (campaign, unit));
CREATE TABLE IF NOT EXISTS campaign_shown (campaign TEXT NOT NULL, rater TEXT NOT NULL, unit INTEGER NOT NULL,
                                           left_model TEXT NOT NULL, repeat INTEGER NOT NULL, shown REAL NOT NULL,
                                           PRIMARY KEY (campaign, rater, unit, repeat));
CREATE TABLE IF NOT EXISTS campaign_answers (id INTEGER PRIMARY KEY, campaign TEXT NOT NULL, rater TEXT NOT NULL,
                                             unit INTEGER NOT NULL, left_model TEXT NOT NULL,
                                             winner TEXT CHECK (winner IN ('a', 'b', 'tie')),
                                             quality INTEGER, relevance INTEGER, coherence INTEGER,
                                             helpfulness INTEGER, seconds REAL, repeat INTEGER NOT NULL,
                                             created REAL NOT NULL, UNIQUE (campaign, rater, unit, repeat))
""",  # rating campaigns (``campaign``): "IF NOT EXISTS", as a database of the first version may have them
    3: """
ALTER TABLE campaigns ADD COLUMN draft_key TEXT
"""}  # a draft's preview link carries this key: only its owner's page shows it


def default_db() -> Ratings:
    """The studio's ratings database, in its home."""
    from studio.settings import studio_home

    return Ratings(studio_home() / "ratings.sqlite")


class Ratings:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self.write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v].split(";"):  # executescript would commit mid-transaction
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(v),))

    # -- connections ---------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a committed rating survives power loss too
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self):
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- writes ----------------------------------------------------------------------------
    def rater(self, name: str) -> int:
        name = name.strip()[:100] or "anonymous"
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO raters (name, created) VALUES (?, ?)", (name, time.time()))
            return db.execute("SELECT id FROM raters WHERE name = ?", (name,)).fetchone()[0]

    def add_item(self, key: str, prompt: str, outputs: dict[str, str], reference: str = "", source: str = "",
                 scores: dict | None = None) -> int:
        """An item to rate; ``scores`` holds its automatic metrics (``tuned_rougeL`` ...) for human-vs-metric."""
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO items (key, prompt, reference, source, scores, created) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (key, prompt, reference, source, json.dumps(scores or {}),
                                                     time.time()))
            item = db.execute("SELECT id FROM items WHERE key = ?", (key,)).fetchone()[0]
            db.executemany("INSERT OR REPLACE INTO outputs (item_id, system, text) VALUES (?, ?, ?)",
                           [(item, s, t) for s, t in outputs.items()])
            return item

    def rate(self, item: int, system: str, rater: str, scores: dict[str, int], comment: str = "") -> int:
        bad = {k: v for k, v in scores.items() if k not in DIMENSIONS or not (isinstance(v, int) and 1 <= v <= 5)}
        if bad:
            raise ValueError(f"Likert scores are 1-5 on {', '.join(DIMENSIONS)}; got {bad}")
        rid = self.rater(rater)
        with self.write() as db:
            db.execute("UPDATE likert SET current = 0 WHERE item_id = ? AND system = ? AND rater_id = ? "
                       "AND current = 1", (item, system, rid))
            cur = db.execute(f"INSERT INTO likert (item_id, system, rater_id, {', '.join(DIMENSIONS)}, comment, "
                             "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (item, system, rid, *[scores.get(d) for d in DIMENSIONS], comment, time.time()))
            return cur.lastrowid

    def vote(self, item: int, system_a: str, system_b: str, winner: str, rater: str, left: str | None = None,
             client_key: str | None = None) -> int:
        """``winner`` is a, b, tie or bothbad; a pair is stored in name order, so A/B sides never double count."""
        if winner not in WINNERS:
            raise ValueError(f"winner must be one of {', '.join(WINNERS)}, got {winner!r}")
        left = left or system_a
        if system_a > system_b:
            system_a, system_b = system_b, system_a
            winner = {"a": "b", "b": "a"}.get(winner, winner)
        rid = self.rater(rater)
        with self.write() as db:
            if client_key:
                seen = db.execute("SELECT id FROM votes WHERE client_key = ?", (client_key,)).fetchone()
                if seen:
                    return seen[0]
            db.execute("UPDATE votes SET current = 0 WHERE item_id = ? AND system_a = ? AND system_b = ? "
                       "AND rater_id = ? AND current = 1", (item, system_a, system_b, rid))
            cur = db.execute("INSERT INTO votes (item_id, system_a, system_b, left_system, winner, rater_id, "
                             "client_key, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (item, system_a, system_b, left, winner, rid, client_key, time.time()))
            return cur.lastrowid

    def bulk(self, items: list[dict], votes: list[dict], likert: list[dict]) -> dict:
        """Many items, votes and Likert ratings in one transaction (all or nothing), in batches: what an import
        needs. ``votes``: item key, system_a, system_b, winner, rater, created; ``likert``: item key, system,
        rater, dimension scores, comment, created. Returns how many were added, replaced and skipped (the same
        rating was already there)."""
        counts = {"added": 0, "replaced": 0, "skipped": 0}
        with self.write() as db:
            now = time.time()
            db.executemany("INSERT OR IGNORE INTO raters (name, created) VALUES (?, ?)",
                           [(n, now) for n in {r["rater"] for r in votes + likert}])
            raters = dict(db.execute("SELECT name, id FROM raters").fetchall())
            db.executemany("INSERT OR IGNORE INTO items (key, prompt, reference, source, scores, created) "
                           "VALUES (?, ?, '', ?, '{}', ?)", [(i["key"], i["prompt"], i["source"], now) for i in items])
            ids = dict(db.execute("SELECT key, id FROM items").fetchall())
            db.executemany("INSERT OR IGNORE INTO outputs (item_id, system, text) VALUES (?, ?, ?)",
                           [(ids[i["key"]], sys, text) for i in items for sys, text in i["outputs"].items() if text])
            self._bulk_votes(db, votes, raters, ids, counts)
            self._bulk_likert(db, likert, raters, ids, counts)
        return counts

    @staticmethod
    def _bulk_votes(db, votes: list[dict], raters: dict, ids: dict, counts: dict) -> None:
        current = {(i, a, b, r): (vid, w) for vid, i, a, b, r, w in db.execute(
            "SELECT id, item_id, system_a, system_b, rater_id, winner FROM votes WHERE current = 1")}
        pending: dict[tuple, tuple] = {}  # the file's last word on each (item, pair, rater)
        for v in votes:
            a, b, winner = v["system_a"], v["system_b"], v["winner"]
            if a > b:
                a, b, winner = b, a, {"a": "b", "b": "a"}.get(winner, winner)
            key = (ids[v["item"]], a, b, raters[v["rater"]])
            pending[key] = (*key[:3], v.get("left") or a, winner, key[3], v.get("created") or time.time())
        retire = _settle(pending, current, lambda row: row[4], counts)
        db.executemany("UPDATE votes SET current = 0 WHERE id = ?", retire)
        db.executemany("INSERT INTO votes (item_id, system_a, system_b, left_system, winner, rater_id, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", list(pending.values()))

    @staticmethod
    def _bulk_likert(db, rows: list[dict], raters: dict, ids: dict, counts: dict) -> None:
        dims = ", ".join(DIMENSIONS)
        current = {(i, s, r): (lid, tuple(rest)) for lid, i, s, r, *rest in db.execute(
            f"SELECT id, item_id, system, rater_id, {dims}, comment FROM likert WHERE current = 1")}
        pending: dict[tuple, tuple] = {}
        for row in rows:
            key = (ids[row["item"]], row["system"], raters[row["rater"]])
            pending[key] = (*[row["scores"].get(d) for d in DIMENSIONS], row.get("comment") or "",
                            row.get("created") or time.time())
        retire = _settle(pending, current, lambda values: values[:-1], counts)
        db.executemany("UPDATE likert SET current = 0 WHERE id = ?", retire)
        db.executemany(f"INSERT INTO likert (item_id, system, rater_id, {dims}, comment, created) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(*k, *v) for k, v in pending.items()])

    # -- reads -----------------------------------------------------------------------------
    def items(self) -> list[dict]:
        rows = self.db.execute("SELECT id, key, prompt, reference, source, scores FROM items ORDER BY id").fetchall()
        outs = self.db.execute("SELECT item_id, system, text FROM outputs").fetchall()
        by_item: dict[int, dict] = {}
        for item, system, text in outs:
            by_item.setdefault(item, {})[system] = text
        return [{"id": i, "key": k, "prompt": p, "reference": r, "source": s, "scores": json.loads(sc),
                 "outputs": by_item.get(i, {})} for i, k, p, r, s, sc in rows]

    def votes(self) -> list[dict]:
        cols = ["id", "item_id", "system_a", "system_b", "left_system", "winner", "rater", "created"]
        rows = self.db.execute("SELECT v.id, v.item_id, v.system_a, v.system_b, v.left_system, v.winner, r.name, "
                               "v.created FROM votes v JOIN raters r ON r.id = v.rater_id WHERE v.current = 1 "
                               "ORDER BY v.id").fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def likert(self) -> list[dict]:
        cols = ["id", "item_id", "system", "rater", *DIMENSIONS, "comment", "created"]
        dims = ", ".join("l." + d for d in DIMENSIONS)
        rows = self.db.execute(f"SELECT l.id, l.item_id, l.system, r.name, {dims}, l.comment, l.created "
                               "FROM likert l JOIN raters r ON r.id = l.rater_id WHERE l.current = 1 "
                               "ORDER BY l.id").fetchall()
        return [dict(zip(cols, r)) for r in rows]

    def counts(self) -> dict:
        q = self.db.execute
        return {"items": q("SELECT COUNT(*) FROM items").fetchone()[0],
                "votes": q("SELECT COUNT(*) FROM votes WHERE current = 1").fetchone()[0],
                "likert": q("SELECT COUNT(*) FROM likert WHERE current = 1").fetchone()[0],
                "history": q("SELECT COUNT(*) FROM votes WHERE current = 0").fetchone()[0]
                + q("SELECT COUNT(*) FROM likert WHERE current = 0").fetchone()[0]}


def _settle(pending: dict, current: dict, judged, counts: dict) -> list[tuple]:
    """Compare each incoming row with the current one of the same key: the same judgement is skipped (and
    dropped from ``pending``), a different one replaces it; returns the ids to retire into the history."""
    retire = []
    for key, row in list(pending.items()):
        old = current.get(key)
        if old and old[1] == judged(row):
            counts["skipped"] += 1
            del pending[key]
            continue
        counts["replaced" if old else "added"] += 1
        if old:
            retire.append((old[0],))
    return retire
