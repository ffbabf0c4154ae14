"""Plotly figures from metric snapshots (lists of metrics.jsonl records). No state, no gradio."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

LAYOUT = {"template": "plotly_white", "margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "height": 320,
          "legend": {"orientation": "h", "y": -0.28}}


def ema(values: list[float], alpha: float = 0.2) -> list[float]:
    out, s = [], None
    for v in values:
        s = v if s is None else alpha * v + (1 - alpha) * s
        out.append(s)
    return out


def _series(metrics: list[dict], key: str) -> tuple[list, list]:
    pts = [(m["step"], m[key]) for m in metrics if m.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def loss_figure(metrics: list[dict], title: str = "Loss") -> go.Figure:
    fig = go.Figure()
    x, y = _series(metrics, "loss")
    fig.add_scatter(x=x, y=y, mode="lines+markers", name="train loss", marker={"size": 4}, opacity=0.45)
    fig.add_scatter(x=x, y=ema(y), mode="lines", name="train loss (smoothed)", line={"width": 3})
    ex, ey = _series(metrics, "eval_loss")
    fig.add_scatter(x=ex, y=ey, mode="lines+markers", name="eval loss", marker={"size": 8, "symbol": "diamond"})
    bad = [m["step"] for m in metrics if m.get("diverged")]
    for step in bad:
        fig.add_vline(x=step, line={"color": "red", "dash": "dash"}, annotation_text="diverged (NaN)")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="loss", **LAYOUT)
    return fig


def system_figure(metrics: list[dict]) -> go.Figure:
    panels = [("learning_rate", "learning rate"), ("grad_norm", "grad norm"), ("tokens_per_s", "tokens / s"),
              ("memory_mb", "memory (MB)")]
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in panels], vertical_spacing=0.18)
    for i, (key, title) in enumerate(panels):
        x, y = _series([m for m in metrics if "loss" in m], key)
        fig.add_scatter(x=x, y=y, mode="lines", name=title, row=i // 2 + 1, col=i % 2 + 1, showlegend=False)
    fig.update_layout(**{**LAYOUT, "height": 420})
    return fig


def overlay_figure(curves: dict[str, list[dict]]) -> go.Figure:
    fig = go.Figure()
    for name, metrics in curves.items():
        x, y = _series(metrics, "loss")
        fig.add_scatter(x=x, y=ema(y), mode="lines", name=name)
    fig.update_layout(title="Loss (smoothed) by run", xaxis_title="step", yaxis_title="loss", **LAYOUT)
    return fig


def length_histogram(lengths: list[int], max_length: int) -> go.Figure:
    fig = go.Figure()
    fig.add_histogram(x=lengths, nbinsx=40, name="examples", marker={"color": "#4c78a8"})
    fig.add_vline(x=max_length, line={"color": "red", "dash": "dash"},
                  annotation_text=f"max_length {max_length}", annotation_position="top right")
    over = sum(1 for n in lengths if n > max_length)
    fig.update_layout(title=f"Token lengths ({over} of {len(lengths)} over max_length, truncated)",
                      xaxis_title="tokens", yaxis_title="examples", **LAYOUT)
    return fig
