"""How the app draws: colours (one per exit, one per model), number formats, the chart layout, and the contribution
panels that Inspect and Compare share."""
from __future__ import annotations

from html import escape

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from store import available_checkpoints

EXIT_COLORS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC"]
MODEL_COLORS = ["#1F77B4", "#D62728", "#2CA02C", "#9467BD", "#FF7F0E", "#17BECF", "#8C564B", "#E377C2", "#7F7F7F", "#BCBD22"]
THRESHOLD_COLOR = "#E45756"

# Charts redrawn on every threshold move: no tool bar, so the browser has less to build each time (hover stays).
LIGHT = {"displayModeBar": False}


def model_color(path: str) -> str:
    """One colour per checkpoint for the whole session, whatever is selected: its place among all checkpoints."""
    options = available_checkpoints()
    index = options.index(path) if path in options else len(options) + sum(map(ord, path))
    return MODEL_COLORS[index % len(MODEL_COLORS)]


# One format per quantity, everywhere in the app: MACs with two decimals in M or G, accuracy in % with two.


def fmt_macs(macs: float) -> str:
    return f"{macs / 1e9:.2f} G MACs" if macs >= 1e9 else f"{macs / 1e6:.2f} M MACs"


def fmt_pct(value: float) -> str:
    return f"{value:.2f}%"


def plot_layout(fig, x_title: str, y_title: str, height: int = 320, legend: bool = True):
    """Axis titles with units, the legend above the plot (never over the axis labels or the data), transparent
    background so light and dark themes both read well. Titles go above the chart as text, not inside it."""
    right = max(10, fig.layout.margin.r or 0)    # a threshold label drawn outside the plot keeps its room
    fig.update_layout(height=height, margin=dict(l=10, r=right, t=40 if legend else 20, b=10), xaxis_title=x_title,
                      yaxis_title=y_title, paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
                      showlegend=legend, legend=dict(orientation="h", x=0, y=1.02, xanchor="left", yanchor="bottom"))
    fig.update_xaxes(gridcolor="rgba(128,128,128,0.25)")
    fig.update_yaxes(gridcolor="rgba(128,128,128,0.25)")
    return fig


def threshold_line(fig, threshold: float, text: str | None = None, **where) -> None:
    """A dashed threshold line labelled at the right, outside the plot, so the label never sits on a bar's value."""
    fig.add_hline(y=threshold, line_dash="dash", line_color=THRESHOLD_COLOR, **where)
    fig.add_annotation(xref="paper", x=1.0, xanchor="left", yref=where.get("yref", "y"), y=threshold,
                       text=text or f"{threshold:.2f}", showarrow=False, font=dict(color=THRESHOLD_COLOR, size=11))
    fig.update_layout(margin=dict(r=115))


def _nice_ticks(top: float) -> np.ndarray:
    """Round tick values from 0 to `top` (steps of 1, 2 or 5 times a power of ten, four to eight ticks)."""
    raw = top / 5
    power = 10 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return np.arange(0, top + 1e-9, step)


def score_bars_svg(names: list[str], scores: np.ndarray, taken: int, thresholds: float | np.ndarray, top: float,
                   y_title: str, label: str = "") -> str:
    """The scores of one image's exits as a small bar chart in plain SVG: the exit taken in the second colour, the
    threshold a dashed line labelled at the right (or, per exit, a mark over every exit but the last). Drawn in SVG,
    not plotly, because it is redrawn at every threshold move: the browser lays out a few dozen shapes instead of
    building a plotly chart (that rebuild was most of a threshold step's time on Inspect). Hover a bar for its score."""
    w, h, left, right, top_pad, bottom = 720, 240, 58, 108, 12, 42
    plot_w, plot_h = w - left - right, h - top_pad - bottom
    y_max = 1.12 * top
    y = lambda v: top_pad + plot_h * (1 - min(max(v, 0.0), y_max) / y_max)   # noqa: E731
    band = plot_w / len(names)
    parts = [f'<svg viewBox="0 0 {w} {h}" width="100%" style="max-width:{w}px" role="img" '
             f'aria-label="{escape(label or y_title)}" font-family="sans-serif" font-size="12" fill="currentColor">']
    for tick in _nice_ticks(y_max):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                     'stroke="rgba(128,128,128,0.25)"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for i, (name, score) in enumerate(zip(names, scores)):
        x0 = left + band * (i + 0.15)
        color = EXIT_COLORS[1] if i == taken else EXIT_COLORS[0]
        parts.append(f'<rect x="{x0:.1f}" y="{y(score):.1f}" width="{0.7 * band:.1f}" height="{y(0) - y(score):.1f}" '
                     f'fill="{color}"><title>{escape(name)}: score {score:.3f}</title></rect>'
                     f'<text x="{x0 + 0.35 * band:.1f}" y="{y(score) - 4:.1f}" text-anchor="middle">{score:.2f}</text>'
                     f'<text x="{x0 + 0.35 * band:.1f}" y="{y(0) + 16:.1f}" text-anchor="middle">{escape(name)}</text>')
    dash = f'stroke="{THRESHOLD_COLOR}" stroke-width="2" stroke-dasharray="6 4"'
    if np.ndim(thresholds) == 0:
        ty = y(min(float(thresholds), top))   # a patience beyond the exits left sits at the top
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" {dash}/>'
                     f'<text x="{left + plot_w + 6}" y="{ty + 4:.1f}" fill="{THRESHOLD_COLOR}">threshold '
                     f'{float(thresholds):.2f}</text>')
    else:   # per exit; the last exit takes every sample that reaches it, so it has none
        for i, t in enumerate(np.asarray(thresholds)[:len(names) - 1]):
            ty = y(min(float(t), top))
            parts.append(f'<line x1="{left + band * (i + 0.08):.1f}" x2="{left + band * (i + 0.92):.1f}" '
                         f'y1="{ty:.1f}" y2="{ty:.1f}" stroke="{THRESHOLD_COLOR}" stroke-width="3">'
                         f'<title>{escape(names[i])}: threshold {float(t):.3f}</title></line>')
        parts.append(f'<text x="{left + plot_w + 6}" y="{top_pad + 12}" fill="{THRESHOLD_COLOR}">— threshold</text>'
                     f'<text x="{left + plot_w + 6}" y="{top_pad + 28}" fill="{THRESHOLD_COLOR}">(per exit)</text>')
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="currentColor" '
                 'stroke-opacity="0.5"/>'
                 f'<text x="{left + plot_w / 2:.1f}" y="{h - 6}" text-anchor="middle">exit</text>'
                 f'<text transform="translate(14 {top_pad + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 f'{escape(y_title)}</text></svg>')
    return "".join(parts)


def contribution_panels(t: dict, net, height: int = 300, y_range: tuple[float, float] | None = None) -> go.Figure:
    """Small multiples: for every exit, each head's contribution w^(n-i) f_i to the top-3 classes of F_n, stacked so
    that they visibly sum to F_n (the diamond). `y_range` puts several models on one scale."""
    n = net.num_exits
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, subplot_titles=[f"F_{k + 1} (exit {k + 1})" for k in range(n)],
                        horizontal_spacing=0.02)
    for k in range(n):
        contrib = t["contributions"][k].numpy()                 # [k + 1, C]
        logits = t["exit_logits"][k].numpy()
        top = np.argsort(-logits)[:3]
        names = [net.classes[c] for c in top]
        for i in range(k + 1):
            fig.add_bar(x=names, y=contrib[i, top], marker_color=EXIT_COLORS[i % 10], name=f"head {i + 1}",
                        legendgroup=f"h{i}", showlegend=k == n - 1, row=1, col=k + 1,
                        hovertemplate=f"head {i + 1} (x{net.reweight ** (k - i):g}): " + "%{y:.2f}<extra></extra>")
        fig.add_scatter(x=names, y=logits[top], mode="markers", marker=dict(symbol="diamond", size=10, color="black"),
                        name="F (sum)", legendgroup="F", showlegend=k == n - 1, row=1, col=k + 1,
                        hovertemplate="F: %{y:.2f}<extra></extra>")
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=names, row=1, col=k + 1)
    fig.update_layout(barmode="relative")
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    plot_layout(fig, "", "logit contribution w^(n-i) f_i", height)
    fig.update_layout(margin=dict(t=60))      # the legend above the panel titles
    fig.update_layout(legend=dict(y=1.12))
    return fig


def contribution_range(traces: list[dict]) -> tuple[float, float]:
    """One y range for the contribution panels of several models (stacked sums of the top-3 classes, with room)."""
    lows, highs = [0.0], [0.0]
    for t in traces:
        for k, contrib in enumerate(t["contributions"]):
            top = np.argsort(-t["exit_logits"][k].numpy())[:3]
            c = contrib.numpy()[:, top]
            lows.append(float(np.minimum(c, 0).sum(0).min()))
            highs.append(float(np.maximum(c, 0).sum(0).max()))
            highs.append(float(t["exit_logits"][k].numpy()[top].max()))
    span = max(highs) - min(lows) or 1.0
    return min(lows) - 0.05 * span, max(highs) + 0.05 * span
