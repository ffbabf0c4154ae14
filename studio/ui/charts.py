"""Plotly figures from metric snapshots (lists of metrics.jsonl records). No state, no gradio.

Figures are written as plain dicts and wrapped without plotly's validation: a validated figure
took ~18 ms to build per chart and poll (the timer redraws every second while training), a dict
takes ~0.6 ms, and the browser draws the same thing.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

# exponentformat "e": a learning rate reads 2e-4, never plotly's SI "200µ" or "0.2m"
GRID = {"gridcolor": "#e5e5e5", "zerolinecolor": "#d0d0d0", "exponentformat": "e"}
BASE = {"plot_bgcolor": "white", "paper_bgcolor": "white", "margin": {"l": 55, "r": 20, "t": 45, "b": 45},
        "height": 320, "legend": {"orientation": "h", "y": -0.28}, "font": {"size": 12}}


def _figure(data: list[dict], **layout) -> go.Figure:
    return go.Figure({"data": data, "layout": {**BASE, **layout}}, _validate=False)


def ema(values: list[float], alpha: float = 0.2) -> list[float]:
    out, s = [], None
    for v in values:
        s = v if s is None else alpha * v + (1 - alpha) * s
        out.append(s)
    return out


def _series(metrics: list[dict], key: str) -> tuple[list, list]:
    pts = [(m["step"], m[key]) for m in metrics if m.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def _line(x, y, name, **kw) -> dict:
    return {"type": "scatter", "x": x, "y": y, "name": name, "mode": "lines", **kw}


def loss_figure(metrics: list[dict], title: str = "Loss") -> go.Figure:
    x, y = _series(metrics, "loss")
    ex, ey = _series(metrics, "eval_loss")
    data = [_line(x, y, "train loss", mode="lines+markers", marker={"size": 4}, opacity=0.45),
            _line(x, ema(y), "train loss (smoothed)", line={"width": 3}),
            _line(ex, ey, "eval loss", mode="lines+markers", marker={"size": 8, "symbol": "diamond"})]
    best = [m for m in metrics if m.get("best_step") is not None]
    if best:
        data.append({"type": "scatter", "x": [best[-1]["best_step"]], "y": [best[-1]["best_eval_loss"]],
                     "mode": "markers+text", "name": "best step (kept)", "text": ["best"], "textposition": "top center",
                     "marker": {"size": 16, "symbol": "star", "color": "#e6a700"}})
    bad = [m["step"] for m in metrics if m.get("diverged")]
    shapes = [{"type": "line", "x0": s, "x1": s, "yref": "paper", "y0": 0, "y1": 1,
               "line": {"color": "red", "dash": "dash"}} for s in bad]
    notes = [{"x": s, "yref": "paper", "y": 1, "text": "diverged (NaN)", "showarrow": False,
              "font": {"color": "red"}} for s in bad]
    extra = _trl_axis(metrics, data)
    return _figure(data, title={"text": title}, xaxis={"title": {"text": "step"}, **GRID},
                   yaxis={"title": {"text": "loss"}, **GRID}, shapes=shapes, annotations=notes, **extra)


TRL_SERIES = (("reward", "mean reward of samples (RL)"), ("accuracy", "pair accuracy (reward model)"))


def _trl_axis(metrics: list[dict], data: list[dict]) -> dict:
    """What an RL or reward-model run is really after, on its own axis at the right: GRPO's loss hovers near 0
    while the mean reward of its samples is what should rise; a reward model's pair accuracy likewise."""
    for key, label in TRL_SERIES:
        x, y = _series(metrics, key)
        if x:
            data.append(_line(x, y, label, yaxis="y2", mode="lines+markers", marker={"size": 5},
                              line={"color": "#2ca02c", "width": 2}))
            return {"yaxis2": {"title": {"text": label}, "overlaying": "y", "side": "right", "showgrid": False}}
    return {}


PANELS = [("learning_rate", "learning rate"), ("grad_norm", "grad norm"), ("tokens_per_s", "tokens / s"),
          ("memory_mb", "memory (MB)")]


def grid_figure(panels: list[tuple[str, list[dict]]], cols: int, height: int) -> go.Figure:
    """Small panels in a grid, each ``(title, traces)``; axes placed by hand, as make_subplots would."""
    rows = -(-len(panels) // cols)
    w, h = (1.0 - 0.08 * (cols - 1)) / cols, (1.0 - 0.16 * (rows - 1)) / rows
    data, layout, notes = [], {}, []
    for i, (title, traces) in enumerate(panels):
        n = "" if i == 0 else str(i + 1)
        x0, y1 = (i % cols) * (w + 0.08), 1.0 - (i // cols) * (h + 0.16)
        data += [{**t, "xaxis": f"x{n}", "yaxis": f"y{n}"} for t in traces]
        layout[f"xaxis{n}"] = {"domain": [x0, x0 + w], "anchor": f"y{n}", **GRID}
        layout[f"yaxis{n}"] = {"domain": [y1 - h, y1], "anchor": f"x{n}", **GRID}
        notes.append({"text": title, "x": x0 + w / 2, "y": y1 + 0.01, "xref": "paper", "yref": "paper",
                      "showarrow": False, "xanchor": "center", "yanchor": "bottom", "font": {"size": 13}})
    return _figure(data, height=height, annotations=notes, margin={"l": 55, "r": 20, "t": 60, "b": 35}, **layout)


def system_figure(metrics: list[dict]) -> go.Figure:
    train = [m for m in metrics if "loss" in m]
    panels = [(title, [_line(*_series(train, key), title, showlegend=False)]) for key, title in PANELS]
    return grid_figure(panels, cols=2, height=440)


def metric_bars(summary, names: list[str]) -> go.Figure:
    """One small panel per metric: base and tuned with their 95 % intervals as error bars."""
    panels = []
    for m in names:
        traces = []
        for v, side, color in ((summary.base[m], "base", "#9e9e9e"), (summary.tuned[m], "tuned", "#2e7d32")):
            traces.append({"type": "bar", "x": [side], "y": [v.value], "name": side, "showlegend": False,
                           "marker": {"color": color},
                           "error_y": {"type": "data", "symmetric": False, "array": [v.ci_high - v.value],
                                       "arrayminus": [v.value - v.ci_low]}})
        panels.append((m, traces))
    return grid_figure(panels, cols=4, height=190 * -(-len(names) // 4) + 60)


def example_scatter(base: list[float], tuned: list[float], metric: str) -> go.Figure:
    lo, hi = min(base + tuned + [0.0]), max(base + tuned + [1e-9])
    data = [{"type": "scatter", "x": base, "y": tuned, "mode": "markers", "name": "examples",
             "text": [f"example {i + 1}" for i in range(len(base))], "marker": {"size": 8, "opacity": 0.7}},
            _line([lo, hi], [lo, hi], "no change", line={"dash": "dash", "color": "#999"})]
    return _figure(data, title={"text": f"{metric} per example: above the line, tuned is better"},
                   xaxis={"title": {"text": f"base {metric}"}, **GRID},
                   yaxis={"title": {"text": f"tuned {metric}"}, **GRID})


def overlay_figure(curves: dict[str, list[dict]], key: str = "loss") -> go.Figure:
    """One line per run: the smoothed train loss, or the eval loss as measured."""
    data = []
    for name, metrics in curves.items():
        x, y = _series(metrics, key)
        data.append(_line(x, ema(y) if key == "loss" else y, name, mode="lines" if key == "loss" else "lines+markers"))
    title = "Loss (smoothed) by run" if key == "loss" else "Eval loss by run"
    return _figure(data, title={"text": title}, xaxis={"title": {"text": "step"}, **GRID},
                   yaxis={"title": {"text": key.replace("_", " ")}, **GRID})


def length_histogram(lengths: list[int], max_length: int) -> go.Figure:
    over = sum(1 for n in lengths if n > max_length)
    data = [{"type": "histogram", "x": lengths, "nbinsx": 40, "name": "examples", "marker": {"color": "#4c78a8"}}]
    cut = [{"type": "line", "x0": max_length, "x1": max_length, "yref": "paper", "y0": 0, "y1": 1,
            "line": {"color": "red", "dash": "dash"}}]
    note = [{"x": max_length, "yref": "paper", "y": 1, "text": f"max_length {max_length}", "showarrow": False,
             "xanchor": "left", "font": {"color": "red"}}]
    return _figure(data, title={"text": f"Token lengths ({over} of {len(lengths)} over max_length, truncated)"},
                   xaxis={"title": {"text": "tokens"}, **GRID}, yaxis={"title": {"text": "examples"}, **GRID},
                   shapes=cut, annotations=note)


def lr_figure(lrs: list[float], losses: list[float], smoothed: list[float], suggestion: float) -> go.Figure:
    """The range test: loss against a log-scaled learning rate, the suggestion marked."""
    data = [_line(lrs, losses, "loss", opacity=0.35), _line(lrs, smoothed, "smoothed loss", line={"width": 3})]
    mark = [{"type": "line", "x0": suggestion, "x1": suggestion, "yref": "paper", "y0": 0, "y1": 1,
             "line": {"color": "#2e7d32", "dash": "dash"}}]
    note = [{"x": math.log10(suggestion), "yref": "paper", "y": 1, "text": f"suggested {suggestion:.1e}",
             "showarrow": False, "xanchor": "left", "font": {"color": "#2e7d32"}}]
    return _figure(data, title={"text": "Learning-rate range test"}, shapes=mark, annotations=note,
                   xaxis={"title": {"text": "learning rate"}, "type": "log", **GRID},
                   yaxis={"title": {"text": "loss"}, **GRID})
