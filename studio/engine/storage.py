"""Files written so that a reader or a killed process never sees half of one: the bottom of the engine (it
imports nothing of the studio). ``write_atomic`` writes a temporary file and then ``os.replace``s it;
``write_jsonl`` is one JSON object a line, atomically; ``locked(path)`` holds a lock beside a file for a
read-modify-write (``status.json``: the training process and the app both update it); ``as_user_made`` gives a
finished file the mode the user's umask gives. An append (``metrics.jsonl``, the audit log) is one line a
write, and a reader skips a line a kill cut short."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the thread lock below still orders this process's writers
    fcntl = None


def _read_umask() -> int:
    """The process's umask, read once at import (reading it means setting it, which would race with the threads of
    a server creating files; nothing in the studio changes it afterwards)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _read_umask()
_threads = threading.Lock()


def as_user_made(path: Path) -> Path:
    """Temporary files are private (0600/0700); a finished file gets the mode the user's umask gives (0644)."""
    os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~UMASK)
    return path


def write_atomic(path: Path, text: str, durable: bool = False) -> None:
    """Readers see the old or the new file, never half of one; ``durable`` also survives power loss."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        as_user_made(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: Path, rows) -> None:
    """One JSON object a line (UTF-8, not escaped), written atomically."""
    write_atomic(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@contextlib.contextmanager
def locked(path: Path):
    """One writer at a time for ``path`` across threads and processes (an advisory lock on ``.<name>.lock`` beside
    it), for a read-modify-write whose writers are in different processes. A folder that cannot hold the lock
    file (read-only) is not locked: its writes fail on their own."""
    lock = Path(path).with_name(f".{Path(path).name}.lock")
    with _threads:
        try:
            handle = open(lock, "a")  # noqa: SIM115 - held for the block
        except OSError:
            yield
            return
        try:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            handle.close()  # closing releases the lock
