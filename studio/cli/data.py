"""``studio check-data``: a dataset's format, counts, token lengths and problems by row."""

from __future__ import annotations

import argparse
import json
import sys

from studio.config import FORMATS, ConfigError


def cmd_check_data(a: argparse.Namespace) -> int:
    from studio.cli.exits import EXIT_INPUT, EXIT_OK
    from studio.engine.data.check import inspect_data, report_lines

    bad = [c for c in a.column or [] if "=" not in c]
    if bad:
        raise ConfigError(f"--column expects NAME=COLUMN, got {bad[0]!r}")
    columns = dict(c.split("=", 1) for c in a.column or [])
    ins = inspect_data(a.file, fmt=a.format, columns=columns, model=a.model, max_length=a.max_length,
                       preview=a.preview)
    if a.json:
        print(json.dumps({**ins.report, "preview": [[[t, k] for t, k in ex] for ex in ins.preview]}, indent=1))
    else:
        print("\n".join(report_lines(ins.report)))
        for i, example in enumerate(ins.preview):
            print(f"\n--- example {i + 1} (trained tokens {'in green' if sys.stdout.isatty() else 'in [[...]]'}) ---")
            print(marked(example, sys.stdout.isatty()))
    return EXIT_INPUT if ins.report["problems"] else EXIT_OK


def marked(segments: list[tuple[str, bool]], colour: bool) -> str:
    """The example as the model sees it: trained runs in green on a terminal, in [[...]] otherwise."""
    on, off = ("\033[32m", "\033[0m") if colour else ("[[", "]]")
    return "".join(f"{on}{text}{off}" if trained else text for text, trained in segments)


def add_commands(sub) -> None:
    s = sub.add_parser("check-data", help="detect a dataset's format and report problems by row")
    s.add_argument("file")
    s.add_argument("--format", default="auto", choices=FORMATS)
    s.add_argument("--column", action="append", metavar="NAME=COLUMN", help="map a studio name to a column")
    s.add_argument("--model", default="studio-tiny", help="tokenizer to count tokens with")
    s.add_argument("--max-length", type=int, default=512)
    s.add_argument("--preview", type=int, default=0, metavar="N",
                   help="show the first N examples, trained tokens marked")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_check_data)
