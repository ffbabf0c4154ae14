"""``python -m studio ...``: the command line over the engine (docs/architecture.md).

One module per command group (``data``, ``train``, ``judge``, ``export``), each with ``add_commands``.
Bad input exits non-zero with one readable line on stderr (``error: file, row, field: ...``), never
a traceback; ``STUDIO_DEBUG=1`` shows tracebacks for bug reports. Exit codes: ``exits.py``.
"""

from __future__ import annotations

import argparse
import sys

from studio.cli.exits import EXIT_BUG, EXIT_INTERRUPTED, EXIT_OK, exit_code


def cmd_ui(a: argparse.Namespace) -> int:
    from studio.ui.launch import launch

    launch(host=a.host, port=a.port)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from studio.cli import data, export, judge, train

    p = argparse.ArgumentParser(prog="python -m studio", description="Fine-tuning studio")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("ui", help="start the web app")
    s.add_argument("--host", default=None, help="default: STUDIO_HOST, else GRADIO_SERVER_NAME, else 127.0.0.1")
    s.add_argument("--port", type=int, default=None, help="default: STUDIO_PORT, else GRADIO_SERVER_PORT, else 7860")
    s.set_defaults(fn=cmd_ui)
    for group in (data, train, judge, export):
        group.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from studio.settings import quiet_libraries

    args = build_parser().parse_args(argv)
    quiet_libraries()
    try:
        return args.fn(args)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the one-line promise holds for our bugs too
        code = exit_code(e)
        if code == EXIT_BUG:
            from studio.settings import settings

            if settings().debug:
                raise
            first = str(e).splitlines()[0][:300] if str(e) else ""
            print(f"error: unexpected {type(e).__name__}: {first} (rerun with STUDIO_DEBUG=1 for details)",
                  file=sys.stderr)
        else:
            print(f"error: {e}", file=sys.stderr)
        return code
