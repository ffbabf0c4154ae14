"""``python -m studio ...``: the command line over the engine (DESIGN.md section 3).

Bad input exits non-zero with one readable line on stderr (``error: file, row, field: ...``),
never a traceback; ``STUDIO_DEBUG=1`` shows tracebacks for bug reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from .config import FORMATS, ConfigError, StudioConfig


def quiet_libraries() -> None:
    """Library chatter (deprecations, load bars, optional-kernel notes) is not for our users."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not os.environ.get("STUDIO_DEBUG"):
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        for name in ("bitsandbytes", "datasets", "transformers", "trl", "peft", "accelerate", "httpx"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as tlog

        tlog.set_verbosity_error()
        tlog.disable_progress_bar()
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:
        pass


def _load_config(path: str, sets: list[str] | None) -> StudioConfig:
    return StudioConfig.load(path).with_overrides(sets or [])


def cmd_check_data(a: argparse.Namespace) -> int:
    from .engine.check import check_data

    bad = [c for c in a.column or [] if "=" not in c]
    if bad:
        raise ConfigError(f"--column expects NAME=COLUMN, got {bad[0]!r}")
    columns = dict(c.split("=", 1) for c in a.column or [])
    report = check_data(a.file, fmt=a.format, columns=columns, model=a.model, max_length=a.max_length)
    if a.json:
        print(json.dumps(report, indent=1))
    else:
        print(render_report(report))
    return 1 if report["problems"] else 0


def render_report(r: dict) -> str:
    ln = r["lengths"]
    lines = [f"{r['file']}: {r['format']} ({r['objective']}), {r['records']} records, {r['examples']} usable",
             f"tokens ({r['model']}): min {ln['min']}, median {ln['median']}, p95 {ln['p95']}, max {ln['max']}; "
             f"{ln['over_max_length']} over max_length {r['max_length']} (truncated)",
             f"empty rows dropped: {r['empty']}, duplicate rows: {r['duplicates']}"]
    lines += [f"note: {n}" for n in r["notices"]]
    lines += [f"problem: {p}" for p in r["problems"][:50]]
    if len(r["problems"]) > 50:
        lines.append(f"... and {len(r['problems']) - 50} more problems")
    return "\n".join(lines)


def _train(config: StudioConfig, run_dir: str | None, resume: bool) -> int:
    from tqdm import tqdm

    from .engine import train

    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        tqdm.write("stopping after this step (a checkpoint is saved); press Ctrl-C again to abort")

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = tqdm(total=None, unit="step", dynamic_ncols=True, disable=None)
    losses: list[float] = []

    def on_event(e: dict) -> None:
        kind = e.get("kind")
        if kind == "notice":
            tqdm.write(f"note: {e['message']}")
        elif kind == "info" and "trainable_params" in e:
            tqdm.write(f"{e['format']} data, {e['objective']} objective: {e['train_examples']} train / "
                       f"{e['val_examples']} validation examples; {e['trainable_params']:,} of "
                       f"{e['total_params']:,} parameters train ({e['precision']}, {e['threads']} thread(s))")
        elif kind == "state" and e["state"] == "running":
            tqdm.write(f"run directory: {e['run_dir']}")
        elif kind == "metrics":
            if e.get("max_steps"):
                bar.total = e["max_steps"]
            bar.n = e["step"]
            if e.get("loss") is not None:
                losses.append(e["loss"])
                bar.set_postfix(loss=f"{e['loss']:.4f}", refresh=False)
            if e.get("eval_loss") is not None:
                tqdm.write(f"step {e['step']}: eval_loss {e['eval_loss']:.4f}")
            bar.refresh()

    try:
        result = train.run(config, run_dir, on_event, stop.is_set, resume=resume)
    finally:
        bar.close()
        signal.signal(signal.SIGINT, previous)
    trend = f", loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else ""
    print(f"{result.state} at step {result.step}{trend}; run directory: {result.run_dir}")
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return 0 if result.state in ("completed", "stopped") else 1


def cmd_train(a: argparse.Namespace) -> int:
    return _train(_load_config(a.config, a.set), a.output_dir, resume=False)


def cmd_resume(a: argparse.Namespace) -> int:
    run = Path(a.run_dir)
    if not (run / "config.yaml").is_file():
        raise ConfigError(f"{run}: not a run directory (no config.yaml)")
    return _train(StudioConfig.load(run / "config.yaml"), str(run), resume=True)


def cmd_runs(a: argparse.Namespace) -> int:
    from .engine.runs import list_runs

    rows = list_runs()
    if a.json:
        print(json.dumps([{**r.__dict__, "path": str(r.path)} for r in rows], indent=1))
        return 0
    if not rows:
        print("no runs yet")
    for r in rows:
        loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
        dur = f"{r.duration_s:.0f}s" if r.duration_s is not None else "-"
        print(f"{r.name:40s} {r.state:10s} {r.method:6s} step {r.step:<6} loss {loss:8s} {dur:>7s}  {r.model}")
    return 0


def cmd_estimate(a: argparse.Namespace) -> int:
    from .engine.estimate import estimate

    e = estimate(_load_config(a.config, a.set))
    if a.json:
        print(json.dumps({**e.to_dict(), "verdict": e.verdict()}, indent=1))
        return 0
    print(f"parameters {e.params:,} ({e.trainable:,} trainable)")
    for part in ("weights", "gradients", "optimizer", "activations", "runtime"):
        print(f"  {part:12s} {getattr(e, part + '_mb'):10.1f} MB")
    print(f"  {'total':12s} {e.total_mb:10.1f} MB\n{e.verdict()}")
    return 0


def cmd_ui(a: argparse.Namespace) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from app import launch

    launch(host=a.host, port=a.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m studio", description="Fine-tuning studio")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("ui", help="start the web app")
    s.add_argument("--host", default=os.environ.get("STUDIO_HOST", "127.0.0.1"))
    s.add_argument("--port", type=int, default=int(os.environ.get("STUDIO_PORT", 7860)))
    s.set_defaults(fn=cmd_ui)
    s = sub.add_parser("check-data", help="detect a dataset's format and report problems by row")
    s.add_argument("file")
    s.add_argument("--format", default="auto", choices=FORMATS)
    s.add_argument("--column", action="append", metavar="NAME=COLUMN", help="map a studio name to a column")
    s.add_argument("--model", default="studio-tiny", help="tokenizer to count tokens with")
    s.add_argument("--max-length", type=int, default=512)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_check_data)
    for name, fn, helptext in (("train", cmd_train, "train from a YAML config"),
                               ("estimate", cmd_estimate, "predict peak memory for a config")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("config")
        s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
        if name == "train":
            s.add_argument("--output-dir", help="the run directory (default: a new one under STUDIO_HOME/runs)")
        else:
            s.add_argument("--json", action="store_true")
        s.set_defaults(fn=fn)
    s = sub.add_parser("resume", help="continue a run from its last complete checkpoint")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_resume)
    from .cli_judge import add_commands

    add_commands(sub)
    s = sub.add_parser("runs", help="list runs in the studio's home")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_runs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries()
    from .engine.errors import StudioError

    try:
        return args.fn(args)
    except (StudioError, ConfigError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the one-line promise holds for our bugs too
        if os.environ.get("STUDIO_DEBUG"):
            raise
        first = str(e).splitlines()[0][:300] if str(e) else ""
        print(f"error: unexpected {type(e).__name__}: {first} (rerun with STUDIO_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
