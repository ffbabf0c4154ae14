"""Exit codes, one per kind of outcome, the same for every command (docs/cli.md lists them).

0 done; 1 an unexpected error (a bug: please report it); 2 bad input (a file, row, field, setting or run
directory to fix); 3 the model or the hub cannot be had (not found, gated, offline, refused, a push
that failed); 4 training ran and ended failed or diverged; 130 interrupted.
"""

from __future__ import annotations

from studio.config import ConfigError

EXIT_OK, EXIT_BUG, EXIT_INPUT, EXIT_MODEL, EXIT_RUN, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


def exit_code(e: BaseException) -> int:
    from studio.engine.errors import ModelError, StudioError

    if isinstance(e, ModelError):
        return EXIT_MODEL
    if isinstance(e, (StudioError, ConfigError, FileExistsError)):
        return EXIT_INPUT
    return EXIT_BUG
