"""``studio train | resume | runs | estimate``: training in this process, with a progress bar."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

from studio.config import ConfigError, StudioConfig


def load_config(path: str, sets: list[str] | None, say=None) -> StudioConfig:
    """The file's settings, then --set, then the model's defaults wherever both are silent (as the UI does)."""
    from studio.config import apply_overrides, read_yaml
    from studio.engine.train.defaults import with_defaults

    cfg, found = with_defaults(apply_overrides(read_yaml(path), sets or []))
    if say:
        say(f"defaults: {found.reason} (the file's own settings win)")
    return cfg


class Progress:
    """Turns a run's events into a tqdm bar and notes, and remembers the losses."""

    def __init__(self):
        from tqdm import tqdm

        self.tqdm = tqdm
        self.bar = tqdm(total=None, unit="step", dynamic_ncols=True, disable=None)
        self.losses: list[float] = []

    def __call__(self, e) -> None:
        from studio.engine.events import Finding, Metrics, Notice, Result, StateChanged, TrainingInfo

        match e:
            case Notice(message):
                self.tqdm.write(f"note: {message}")
            case Result(message):
                self.tqdm.write(f"measured: {message}")
            case TrainingInfo():
                self.tqdm.write(e.line())
            case Finding():
                self.tqdm.write(f"doctor ({e.severity}, step {e.step}): {e.evidence}. {e.advice}")
            case StateChanged(state="running", run_dir=run_dir):
                self.tqdm.write(f"run directory: {run_dir}")
            case Metrics(record):
                self._metrics(record)

    def _metrics(self, m: dict) -> None:
        if m.get("max_steps"):
            self.bar.total = m["max_steps"]
        self.bar.n = m["step"]
        if m.get("loss") is not None:
            self.losses.append(m["loss"])
            self.bar.set_postfix(loss=f"{m['loss']:.4f}", refresh=False)
        if m.get("eval_loss") is not None:
            self.tqdm.write(f"step {m['step']}: eval_loss {m['eval_loss']:.4f}")
        self.bar.refresh()


def run_in_process(config: StudioConfig, run_dir: str | None, resume: bool) -> int:
    from studio.cli.exits import EXIT_OK, EXIT_RUN
    from studio.engine.train import loop

    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("stopping after this step (a checkpoint is saved); press Ctrl-C again to abort", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    progress = Progress()
    try:
        result = loop.run(config, run_dir, progress, stop.is_set, resume=resume)
    finally:
        progress.bar.close()
        signal.signal(signal.SIGINT, previous)
    losses = progress.losses
    trend = f", loss {losses[0]:.4f} -> {losses[-1]:.4f}" if losses else ""
    print(f"{result.state} at step {result.step}{trend}; run directory: {result.run_dir}")
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
    return EXIT_OK if result.state in ("completed", "stopped") else EXIT_RUN


def cmd_train(a: argparse.Namespace) -> int:
    config = load_config(a.config, a.set, say=print)
    return run_in_process(config, a.output_dir, resume=False)


def cmd_resume(a: argparse.Namespace) -> int:
    from studio.engine import runs

    run = Path(a.run_dir)
    if not runs.is_run(run):
        raise ConfigError(f"{run}: not a run directory (no {runs.CONFIG})")
    return run_in_process(runs.Run(run).config, str(run), resume=True)


def cmd_runs(a: argparse.Namespace) -> int:
    from studio.engine.runs import list_runs

    rows = list_runs()
    if a.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1))
        return 0
    if not rows:
        print("no runs yet")
    for r in rows:
        loss = f"{r.final_loss:.4f}" if r.final_loss is not None else "-"
        dur = f"{r.duration_s:.0f}s" if r.duration_s is not None else "-"
        print(f"{r.name:40s} {r.state:11s} {r.method:6s} step {r.step:<6} loss {loss:8s} {dur:>7s}  {r.model}")
        for note in r.notes():
            print(f"{'':42s}{note}")
    return 0


def cmd_estimate(a: argparse.Namespace) -> int:
    from studio.engine.train.estimate import estimate

    e = estimate(load_config(a.config, a.set))
    if a.json:
        print(json.dumps({**e.to_dict(), "verdict": e.verdict()}, indent=1))
        return 0
    print(f"parameters {e.params:,} ({e.trainable:,} trainable)")
    for part in ("weights", "gradients", "optimizer", "activations", "runtime"):
        print(f"  {part:12s} {getattr(e, part + '_mb'):10.1f} MB")
    print(f"  {'total':12s} {e.total_mb:10.1f} MB\n{e.verdict()}")
    return 0


def cmd_lr_find(a: argparse.Namespace) -> int:
    from studio.engine.train.lr_find import lr_find

    curve = lr_find(load_config(a.config, a.set), steps=a.steps)
    if a.json:
        print(json.dumps(curve.to_dict(), indent=1))
        return 0
    for i in range(0, len(curve.lrs), max(1, len(curve.lrs) // 20)):
        bar = "#" * max(1, int(40 * curve.smoothed[i] / max(curve.smoothed)))
        print(f"lr {curve.lrs[i]:9.2e}  loss {curve.smoothed[i]:7.4f}  {bar}")
    if curve.suggestion is None:
        print("no suggestion: too few steps ran before the loss blew up")
        return 0
    print(f"suggested learning rate: {curve.suggestion:.2e} ({curve.rule})")
    print(f"use it: --set train.learning_rate={curve.suggestion:.2e}")
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    from studio.engine.events import Metrics
    from studio.engine.train import loop
    from studio.engine.train.sweep import Sweep, parse_grid

    sweep = Sweep(load_config(a.config, a.set), parse_grid(a.grid))
    print(f"{sweep.name}: {len(sweep.settings)} settings of {', '.join(sweep.grid)}", file=sys.stderr)

    def train_one(config, report, should_stop):
        def on_event(e):
            if isinstance(e, Metrics) and e.record.get("eval_loss") is not None:
                report(e.record["step"], e.record["eval_loss"])

        return loop.run(config, None, on_event, should_stop)

    result = sweep.run(train_one)
    keys = list(sweep.grid)
    head = " ".join(f"{k:>22s}" for k in keys)
    print(f"{'#':>3} {head} {'state':>10s} {'final eval':>11s} {'best eval':>10s}")
    for t in result.trials:
        fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
        print(f"{t.number:>3} " + " ".join(f"{t.settings[k]!s:>22s}" for k in keys)
              + f" {t.state:>10s} {fmt(t.final_eval_loss):>11s} {fmt(t.best_eval_loss):>10s}")
    if result.best is None:
        print("no trial completed", file=sys.stderr)
        return 4
    print(f"best: {result.best.settings} (eval loss {result.best.best_eval_loss:.4f}); config: "
          f"{result.folder / 'best.yaml'}")
    return 0


def add_commands(sub) -> None:
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
    s = sub.add_parser("lr-find", help="learning-rate range test: loss against LR, and a suggestion")
    s.add_argument("config")
    s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    s.add_argument("--steps", type=int, default=100)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_lr_find)
    s = sub.add_parser("sweep", help="short runs over a grid of settings (Optuna, with pruning)")
    s.add_argument("config")
    s.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config value")
    s.add_argument("--grid", action="append", required=True, metavar="SECTION.KEY=V1,V2", help="values to try")
    s.set_defaults(fn=cmd_sweep)
    s = sub.add_parser("resume", help="continue a run from its last complete checkpoint")
    s.add_argument("run_dir")
    s.set_defaults(fn=cmd_resume)
    s = sub.add_parser("runs", help="list runs in the studio's home")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_runs)
