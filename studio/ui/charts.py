"""Plotly figures from metric snapshots (lists of metrics.jsonl records). No state, no gradio.

Figures are written as plain dicts and wrapped without plotly's validation: a validated figure
took ~18 ms to build per chart and poll (the timer redraws every second while training), a dict
takes ~0.6 ms, and the browser draws the same thing.
"""

from __future__ import annotations

import plotly.graph_objects as go

GRID = {"gridcolor": "#e5e5e5", "zerolinecolor": "#d0d0d0"}
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
    bad = [m["step"] for m in metrics if m.get("diverged")]
    shapes = [{"type": "line", "x0": s, "x1": s, "yref": "paper", "y0": 0, "y1": 1,
               "line": {"color": "red", "dash": "dash"}} for s in bad]
    notes = [{"x": s, "yref": "paper", "y": 1, "text": "diverged (NaN)", "showarrow": False,
              "font": {"color": "red"}} for s in bad]
    return _figure(data, title={"text": title}, xaxis={"title": {"text": "step"}, **GRID},
                   yaxis={"title": {"text": "loss"}, **GRID}, shapes=shapes, annotations=notes)


PANELS = [("learning_rate", "learning rate"), ("grad_norm", "grad norm"), ("tokens_per_s", "tokens / s"),
          ("memory_mb", "memory (MB)")]


def system_figure(metrics: list[dict]) -> go.Figure:
    """Four small panels in a 2x2 grid (axes placed by hand, as make_subplots would)."""
    train = [m for m in metrics if "loss" in m]
    data, layout, notes = [], {}, []
    for i, (key, title) in enumerate(PANELS):
        n = "" if i == 0 else str(i + 1)
        col, row = i % 2, i // 2
        x0, y1 = (0.0 if col == 0 else 0.55), (1.0 if row == 0 else 0.42)
        x, y = _series(train, key)
        data.append(_line(x, y, title, xaxis=f"x{n}", yaxis=f"y{n}", showlegend=False))
        layout[f"xaxis{n}"] = {"domain": [x0, x0 + 0.45], "anchor": f"y{n}", **GRID}
        layout[f"yaxis{n}"] = {"domain": [y1 - 0.42, y1], "anchor": f"x{n}", **GRID}
        notes.append({"text": title, "x": x0 + 0.225, "y": y1 + 0.02, "xref": "paper", "yref": "paper",
                      "showarrow": False, "xanchor": "center", "yanchor": "bottom", "font": {"size": 13}})
    return _figure(data, height=440, annotations=notes, margin={"l": 55, "r": 20, "t": 60, "b": 35}, **layout)


def overlay_figure(curves: dict[str, list[dict]]) -> go.Figure:
    data = []
    for name, metrics in curves.items():
        x, y = _series(metrics, "loss")
        data.append(_line(x, ema(y), name))
    return _figure(data, title={"text": "Loss (smoothed) by run"}, xaxis={"title": {"text": "step"}, **GRID},
                   yaxis={"title": {"text": "loss"}, **GRID})


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
