"""Read a dataset file into records: a list of dicts, each with where it came from.

Contract: ``read_records(path)`` returns ``Records`` or raises ``DataError`` with one sentence
naming the file and the line, row or record. Nothing is silently shifted, dropped or guessed:
a ragged CSV row is refused (pandas would move it into the index), a file whose content is not
what its suffix says is refused, non-UTF-8 text is converted with a notice.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".parquet": "parquet", ".txt": "txt", ".text": "txt", ".md": "txt"}


@dataclass
class Records:
    rows: list[dict]
    where: list[str]  # "line 5", "record 3", "row 7": how the user finds each record in the file
    kind: str
    notices: list[str] = field(default_factory=list)


def read_records(path: str | Path) -> Records:
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    kind = SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise DataError(f"{p.name}: unsupported file type '{p.suffix}'; use .csv, .json, .jsonl, .parquet or .txt")
    raw = p.read_bytes()
    if not raw.strip():
        raise DataError(f"{p.name}: the file is empty: no records")
    if kind == "parquet":
        return _read_parquet(p, raw)
    text, notices = _decode(p, raw)
    reader = {"csv": _read_csv, "json": _read_json, "jsonl": _read_jsonl, "txt": _read_txt}[kind]
    records = reader(p, text)
    records.notices[:0] = notices
    if not records.rows:
        raise DataError(f"{p.name}: no records")
    return records


def _decode(p: Path, raw: bytes) -> tuple[str, list[str]]:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return raw.decode("utf-16"), [f"{p.name}: converted from UTF-16 to UTF-8"]
        except UnicodeDecodeError:
            raise DataError(f"{p.name}: starts like UTF-16 but does not decode as UTF-16") from None
    if b"\x00" in raw[:8192]:
        raise DataError(f"{p.name}: binary content (NUL bytes), not a {p.suffix} text file")
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        try:
            text, enc = raw.decode("cp1252"), "Windows-1252"
        except UnicodeDecodeError:
            text, enc = raw.decode("latin-1"), "Latin-1"
        return text, [f"{p.name}: not UTF-8 (byte 0x{raw[e.start]:02x} on line {line}); read as {enc}"]


def _hint(text: str) -> str:
    head = text.lstrip()[:1]
    if head in "[{":
        return "; it looks like JSON"
    return "; it looks like plain text (.txt)" if head else ""


def _read_jsonl(p: Path, text: str) -> Records:
    rows, where = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            hint = _hint(text) if n == 1 else ""
            if n == 1 and text.lstrip().startswith("["):
                hint = "; it looks like one JSON array: rename the file to .json"
            raise DataError(f"{p.name}: line {n}: not valid JSON ({e.msg}, column {e.colno}){hint}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{p.name}: line {n}: expected a JSON object, got {_type(obj)}")
        rows.append(obj)
        where.append(f"line {n}")
    return Records(rows, where, "jsonl")


def _read_json(p: Path, text: str) -> Records:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        hint = _hint(text)
        if text.lstrip()[:1] == "{" and e.lineno > 1:
            hint = "; if it holds one object per line, rename it to .jsonl"
        raise DataError(f"{p.name}: line {e.lineno}: not valid JSON ({e.msg}, column {e.colno}){hint}") from None
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if len(lists) == 1 and all(isinstance(x, dict) for x in next(iter(lists.values()))):
            data = next(iter(lists.values()))  # {"data": [{...}, ...]}
        elif lists and len(lists) == len(data):
            lengths = {k: len(v) for k, v in lists.items()}
            if len(set(lengths.values())) != 1:
                raise DataError(f"{p.name}: a dict of columns needs equal-length lists, got lengths {lengths}")
            n = next(iter(lengths.values()))
            data = [{k: v[i] for k, v in lists.items()} for i in range(n)]
        else:
            data = [data]
    if not isinstance(data, list):
        raise DataError(f"{p.name}: expected a JSON array of objects or a dict of columns, got {_type(data)}")
    for i, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            raise DataError(f"{p.name}: record {i}: expected an object like the others, got {_type(obj)} "
                            "(records of mixed shapes)")
    return Records(data, [f"record {i}" for i in range(1, len(data) + 1)], "json")


def _read_csv(p: Path, text: str) -> Records:
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise DataError(f"{p.name}: no header row: no records")
        header = [h.strip() for h in header]
        if any(not h for h in header):
            raise DataError(f"{p.name}: line 1: the header has an empty column name")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise DataError(f"{p.name}: line 1: duplicate column names {dupes}")
        rows, where = [], []
        start = reader.line_num + 1
        for cells in reader:
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                start = reader.line_num + 1
                continue
            if len(cells) != len(header):
                raise DataError(f"{p.name}: line {start}: {len(cells)} fields, but the header has {len(header)} "
                                f"({', '.join(header)})")
            rows.append({h: (c if c != "" else None) for h, c in zip(header, cells)})
            where.append(f"line {start}")
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{p.name}: line {reader.line_num}: not valid CSV ({e})") from None
    if not rows:
        raise DataError(f"{p.name}: only a header row: no records")
    return Records(rows, where, "csv")


def _read_txt(p: Path, text: str) -> Records:
    """Documents are separated by blank lines; a file without blank lines has one per line."""
    lines = text.rstrip().splitlines()
    by_paragraph = any(not ln.strip() for ln in lines)
    docs: list[tuple[int, list[str]]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if by_paragraph and docs and n > 1 and lines[n - 2].strip():
            docs[-1][1].append(line)
        else:
            docs.append((n, [line]))
    return Records([{"text": "\n".join(b)} for _, b in docs], [f"line {n}" for n, _ in docs], "txt")


def _read_parquet(p: Path, raw: bytes) -> Records:
    if raw[:4] != b"PAR1":
        raise DataError(f"{p.name}: not a Parquet file (no PAR1 header){_hint(raw[:64].decode('latin-1'))}")
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(io.BytesIO(raw)).to_pylist()
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise DataError(f"{p.name}: damaged Parquet file ({type(e).__name__}: {e})") from None
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    return Records(rows, [f"row {i}" for i in range(1, len(rows) + 1)], "parquet")


def _type(obj: object) -> str:
    return {list: "an array", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(obj), "a number")
