"""The training methods: one module per family, each registering one frozen ``Method``.

A method is everything the studio needs to know of it in one place: its settings, the packages it needs,
the data it takes, the model head it trains, its PEFT config, its trainer and arguments, its callbacks,
whether it merges and exports, its memory terms, how the doctor reads its curves, its model-card tags and
the combinations it refuses. The rest of the studio asks ``get(kind)`` instead of branching on a kind
(tests/test_methods_registry.py scans for such branches).

A new method is one module in this folder (it is imported with the package) or, from anywhere,
``register(Method(...))`` before the config that names it is made.
"""

from __future__ import annotations

import importlib
import pkgutil

from studio.config import METHODS
from studio.engine.registry import (  # noqa: F401  (the registry's names, as method modules and callers know them)
    SUPERVISED,
    Judging,
    Method,
    Parts,
    Settings,
    Sizes,
    adapter_weights,
    batch_tokens,
    find,
    get,
    names,
    of,
    register,
    settings,
)


def _load_builtin() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    for method in sorted(list(METHODS.values()), key=lambda m: m.order):  # the Model tab's order
        METHODS[method.name] = METHODS.pop(method.name)


_load_builtin()
