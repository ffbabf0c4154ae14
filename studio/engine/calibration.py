"""What this machine measured, kept in the studio home (``calibration.json``) so that it is measured once: bf16's
gain and a decoder layer's seconds per model shape (engine/precision.py), the seconds a regional compile took
(train/compiled.py) and the speed real runs trained at (the time estimates). Every entry is keyed by the machine
(CPU model or GPU name, torch version, threads) and what was measured, so a copied home or a new torch measures
again instead of trusting another machine's numbers. Updates are read-modify-write under the file's lock.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from studio.engine.storage import locked, write_atomic
from studio.settings import studio_home

FILE = "calibration.json"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """This machine as the calibration keys it: the device, torch and the threads torch uses now."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else _cpu()
    return f"{device} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def shape(arch) -> str:
    """A model's shape as the calibration keys it (its family and sizes, not its name or weights)."""
    return "-".join(str(getattr(arch, k, "")) for k in ("model_type", "hidden_size", "intermediate_size",
                                                       "num_attention_heads", "num_key_value_heads", "vocab_size"))


def path() -> Path:
    return studio_home() / FILE


def read() -> dict:
    try:
        kept = json.loads(path().read_text(encoding="utf-8"))
        return kept if isinstance(kept, dict) else {}
    except (OSError, ValueError):
        return {}


def get(section: str, key: str) -> Any:
    return read().get(section, {}).get(key)


def put(section: str, key: str, value: Any) -> None:
    with locked(path()):
        kept = read()
        kept.setdefault(section, {})[key] = value
        write_atomic(path(), json.dumps(kept, indent=1))


def measured(section: str, key: str, measure) -> Any:
    """The kept value, or ``measure()``'s (kept for next time) under the lock: two processes asking at once
    measure once. A ``measure`` that returns None keeps nothing."""
    with locked(path()):
        kept = read()
        if key in kept.get(section, {}):
            return kept[section][key]
        value = measure()
        if value is not None:
            kept.setdefault(section, {})[key] = value
            write_atomic(path(), json.dumps(kept, indent=1))
        return value
