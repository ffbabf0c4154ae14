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

from studio.engine.errors import DataError
from studio.policy import policy

SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".parquet": "parquet", ".txt": "txt", ".text": "txt", ".md": "txt"}


@dataclass
class Records:
    rows: list[dict]
    where: list[str]  # "line 5", "record 3", "row 7": how the user finds each record in the file
    kind: str
    notices: list[str] = field(default_factory=list)


# One budget for every reader, measured on the data as read: a text file's bytes, a Parquet file's decoded values
# (a few hundred bytes of dictionary-encoded Parquet can decode to gigabytes, whatever its metadata says).
MAX_BYTES = policy().max_data_bytes
MAX_DEPTH = 64  # JSON nested deeper than this is refused (a record is never that deep)
PARQUET_BATCH = 256  # rows decoded at a time
HEAD, CHUNK = 1 << 16, 1 << 20


def read_records(path: str | Path) -> Records:
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a directory; give a data file inside it")
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    kind = SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise DataError(f"{p.name}: unsupported file type '{p.suffix}'; use .csv, .json, .jsonl, .parquet or .txt")
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise DataError(f"{p.name}: {size / 2**20:,.0f} MB is larger than the {MAX_BYTES / 2**20:,.0f} MB limit "
                        "(STUDIO_MAX_DATA_BYTES)")
    with p.open("rb") as f:
        head = f.read(HEAD)
    if not head.strip():
        raise DataError(f"{p.name}: the file is empty: no records")
    if kind == "parquet":
        return _read_parquet(p, head)
    text, notices = _decode(p, head)
    reader = {"csv": _read_csv, "json": _read_json, "jsonl": _read_jsonl, "txt": _read_txt}[kind]
    try:
        records = reader(p, text)
    except RecursionError:
        raise DataError(f"{p.name}: nested too deeply to read (more than {MAX_DEPTH} levels)") from None
    records.notices[:0] = notices
    if not records.rows:
        raise DataError(f"{p.name}: no records")
    return records


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte-order mark, told by where the NUL bytes of ASCII text fall."""
    sample = head[: len(head) // 4 * 4]
    if len(sample) < 8:
        return None
    n = len(sample)
    zeros = [sum(1 for i in range(k, n, 4) if sample[i] == 0) / (n // 4) for k in range(4)]
    if zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] > 0.9 and zeros[0] < 0.3:
        return "utf-32-le"
    if zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] < 0.3:
        return "utf-32-be"
    if zeros[1] > 0.7 and zeros[3] > 0.7 and zeros[0] < 0.3 and zeros[2] < 0.3:
        return "utf-16-le"
    if zeros[0] > 0.7 and zeros[2] > 0.7 and zeros[1] < 0.3 and zeros[3] < 0.3:
        return "utf-16-be"
    return None  # all NULs, or no pattern: binary, refused on the first chunk


def _decode(p: Path, head: bytes) -> tuple[str, list[str]]:
    """The file as text: UTF-8, UTF-16/32 with or without a byte-order mark, or Windows-1252 with a notice.
    NUL bytes anywhere in an 8-bit file are refused with their line (the file is read in chunks to find it)."""
    for bom, enc in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                     (b"\xfe\xff", "utf-16")):
        if head.startswith(bom):
            return _decode_wide(p, enc, f"converted from {enc.upper()} to UTF-8")
    wide = _wide_encoding(head)
    if wide:
        return _decode_wide(p, wide, f"read as {wide.upper()} (no byte-order mark)")
    raw = bytearray()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            at = chunk.find(b"\x00")
            if at >= 0:
                line = raw.count(b"\n") + chunk[:at].count(b"\n") + 1
                raise DataError(f"{p.name}: line {line}: binary content (a NUL byte), not a {p.suffix} text file")
            raw += chunk
    try:
        return raw.decode("utf-8-sig"), []
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        try:
            text, enc = raw.decode("cp1252"), "Windows-1252"
        except UnicodeDecodeError:
            text, enc = raw.decode("latin-1"), "Latin-1"
        return text, [f"{p.name}: not UTF-8 (byte 0x{raw[e.start]:02x} on line {line}); read as {enc}"]


def _decode_wide(p: Path, encoding: str, note: str) -> tuple[str, list[str]]:
    try:
        text = p.read_bytes().decode(encoding)
    except UnicodeDecodeError:
        raise DataError(f"{p.name}: looks like {encoding.upper()} but does not decode as it") from None
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(f"{p.name}: line {line}: binary content (a NUL character)")
    return text, [f"{p.name}: {note}"]


def depth(obj, limit: int = MAX_DEPTH) -> int:
    """How deeply lists and dicts nest (iterative: a deep record cannot exhaust the stack)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack += [(v, d + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return deepest


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
        except RecursionError:
            raise DataError(f"{p.name}: line {n}: nested more than {MAX_DEPTH} levels deep") from None
        except json.JSONDecodeError as e:
            hint = _hint(text) if n == 1 else ""
            if n == 1 and text.lstrip().startswith("["):
                hint = "; it looks like one JSON array: rename the file to .json"
            raise DataError(f"{p.name}: line {n}: not valid JSON ({e.msg}, column {e.colno}){hint}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{p.name}: line {n}: expected a JSON object, got {_type(obj)}")
        if depth(obj) > MAX_DEPTH:
            raise DataError(f"{p.name}: line {n}: nested more than {MAX_DEPTH} levels deep")
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
        if depth(obj) > MAX_DEPTH:
            raise DataError(f"{p.name}: record {i}: nested more than {MAX_DEPTH} levels deep")
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


def decoded_bytes(batch) -> int:
    """What a batch of Parquet rows takes once decoded: a dictionary-encoded column counts each row's value in
    full (the dictionary's value lengths taken by the row's index), any other column its Arrow buffers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for col in batch.columns:
        if pa.types.is_dictionary(col.type):
            lengths = pc.binary_length(col.dictionary) if not pa.types.is_null(col.dictionary.type) else None
            total += int(pc.sum(pc.take(lengths, col.indices)).as_py() or 0) if lengths is not None else 0
            total += col.indices.nbytes
        else:
            total += col.nbytes
    return total


def _read_parquet(p: Path, head: bytes) -> Records:
    """Read in batches of rows, each measured (its decoded values, dictionary-encoded strings counted as the text
    they stand for) before it is turned into Python values; past ``MAX_BYTES`` the file is refused."""
    if head[:4] != b"PAR1":
        raise DataError(f"{p.name}: not a Parquet file (no PAR1 header){_hint(head[:64].decode('latin-1'))}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, used = [], 0
    try:
        schema = pq.read_schema(p)
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
                   or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
        for batch in pq.ParquetFile(p, read_dictionary=strings).iter_batches(batch_size=PARQUET_BATCH):
            used += decoded_bytes(batch)
            if used > MAX_BYTES:
                raise DataError(f"{p.name}: its values come to more than the {MAX_BYTES / 2**20:,.0f} MB limit "
                                "(STUDIO_MAX_DATA_BYTES) once decoded")
            rows += batch.to_pylist()
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise DataError(f"{p.name}: damaged Parquet file ({type(e).__name__}: {str(e)[:200]})") from None
    rows = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    return Records(rows, [f"row {i}" for i in range(1, len(rows) + 1)], "parquet")


def _type(obj: object) -> str:
    return {list: "an array", dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(obj), "a number")
