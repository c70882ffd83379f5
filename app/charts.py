"""How the app draws: colours (one per exit, one per model), number formats, the chart layout, and the contribution
panels that Inspect and Compare share."""
from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

from store import available_checkpoints

EXIT_COLORS = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC"]
MODEL_COLORS = ["#1F77B4", "#D62728", "#2CA02C", "#9467BD", "#FF7F0E", "#17BECF", "#8C564B", "#E377C2", "#7F7F7F", "#BCBD22"]
THRESHOLD_COLOR = "#E45756"
# The exit an image took, wherever it is marked (score bars, the network picture, the strip): a colour no head uses,
# so that it never reads as "head 2" beside the contribution panels, whose colours are the heads' (EXIT_COLORS).
TAKEN_COLOR = "#6A3D9A"
NOT_TAKEN_COLOR = "#9AA5B1"

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


def fmt_macs_short(macs: float) -> str:
    """MACs without the unit's name, for a figure whose label says "(MACs)": st.metric cuts a long value."""
    return f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.2f} M"


def fmt_pct(value: float) -> str:
    return f"{value:.2f}%"


def plot_layout(fig, x_title: str, y_title: str, height: int = 320, legend: bool | int = True, title: str = ""):
    """Axis titles with units, the legend above the plot (never over the axis labels or the data), transparent
    background so light and dark themes both read well. `legend`: False, True, or the rows its entries may take in a
    narrow chart (room is kept for them). `title`: the chart's own title, above its legend; a chart without one gets
    its title from the page, as text above it. Text is larger in projector mode."""
    from projector import font_size
    right = max(10, fig.layout.margin.r or 0)    # a threshold label drawn outside the plot keeps its room
    size = font_size()
    # Room above the plot: the title's line, then the legend's row (one row; entries wrap if they must).
    top = (size + 16 if title else 0) + ((size + 8) * int(legend) + 16 if legend else 0) or 20
    fig.update_layout(height=height + (size + 16 if title else 0), margin=dict(l=10, r=right, t=top, b=10),
                      xaxis_title=x_title, yaxis_title=y_title, paper_bgcolor="rgba(0,0,0,0)",
                      plot_bgcolor="rgba(0,0,0,0)", font=dict(size=size), showlegend=bool(legend),
                      legend=dict(orientation="h", x=0, y=1.02, xanchor="left", yanchor="bottom"))
    if title:
        fig.update_layout(title=dict(text=title, x=0, xanchor="left", xref="paper", y=1, yref="container",
                                     yanchor="top", pad=dict(t=8), font=dict(size=size + 2)))
    fig.update_xaxes(gridcolor="rgba(128,128,128,0.25)")
    fig.update_yaxes(gridcolor="rgba(128,128,128,0.25)")
    return fig


def threshold_line(fig, threshold: float, text: str | None = None, **where) -> None:
    """A dashed threshold line labelled at the right, outside the plot, so the label never sits on a bar's value."""
    fig.add_hline(y=threshold, line_dash="dash", line_color=THRESHOLD_COLOR, **where)
    fig.add_annotation(xref="paper", x=1.0, xanchor="left", yref=where.get("yref", "y"), y=threshold,
                       text=text or f"{threshold:.2f}", showarrow=False, font=dict(color=THRESHOLD_COLOR, size=11))
    fig.update_layout(margin=dict(r=115))


def svg_block(svg: str) -> str:
    """An SVG chart for st.markdown(..., unsafe_allow_html=True): inside a <div>, Markdown takes the line as an HTML
    block and leaves its text alone (class and file names with *, _ or $ are not read as Markdown or maths)."""
    return f"<div>{svg}</div>"


def stat_block(stats: list[tuple[str, str, str]], helps: dict[str, str] | None = None) -> str:
    """Figures as one HTML block for st.markdown(..., unsafe_allow_html=True), each drawn like st.metric (a label,
    a large value, a note under it; `helps` gives a label a hover text). One element instead of a metric and a
    caption per figure: the Inspect page shows these for up to 16 images and redraws every element of the page at
    each upload, so fewer elements is a faster page (bench/app_browser_latency.py)."""
    helps = helps or {}
    parts = ['<div class="stat-block">']
    for label, value, note in stats:
        hover = f' title="{escape(helps[label])}"' if label in helps else ""
        mark = (' <span style="display:inline-block;width:1.1em;height:1.1em;line-height:1.1em;text-align:center;'
                'border:1px solid;border-radius:50%;font-size:0.7rem">?</span>') if label in helps else ""   # hover me
        parts.append(f'<div class="stat"><div class="stat-label" style="font-size:0.875rem;opacity:0.75"{hover}>'
                     f'{escape(label)}{mark}</div><div class="stat-value" style="font-size:1.75rem;line-height:1.3">'
                     f'{escape(value)}</div>' + (f'<div class="stat-note" style="font-size:0.8rem;opacity:0.6;'
                                                  f'margin-bottom:0.4rem">{escape(note)}</div>' if note else "")
                     + '</div>')
    return "".join(parts) + "</div>"


def top_classes_table(exit_names: list[str], top_k: list[list[tuple[str, float]]], ranks: int = 3) -> str:
    """The top classes of every exit and their probabilities as an HTML table of equal columns (the same on every
    image) that scrolls sideways in a narrow column instead of pushing the page wider."""
    rows = ["<tr><th>rank</th>" + "".join(f"<th>{escape(n)}</th>" for n in exit_names) + "</tr>"]
    for r, rank in enumerate(["1st", "2nd", "3rd", "4th", "5th"][:min(ranks, len(top_k[0]))]):
        rows.append(f"<tr><td>{rank}</td>" + "".join(f"<td>{escape(top_k[i][r][0])} ({top_k[i][r][1]:.2f})</td>"
                                                     for i in range(len(exit_names))) + "</tr>")
    return ('<div style="overflow-x:auto"><table style="width:100%;table-layout:fixed;font-size:0.875rem;'
            f'min-width:{5 * (len(exit_names) + 1)}rem">' + "".join(rows) + "</table></div>")


def png_uri(rgb: np.ndarray) -> str:
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def inferno(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> RGB floats in [0, 255] on plotly's Inferno scale (its stops evenly spaced, linear between)."""
    from plotly.colors import hex_to_rgb, sequential
    stops = np.array([hex_to_rgb(c) for c in sequential.Inferno], dtype=np.float64)
    position = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.minimum(position.astype(int), len(stops) - 2)
    frac = (position - low)[..., None]
    return stops[low] * (1 - frac) + stops[low + 1] * frac


ATTRIBUTION_OPACITY = 0.55


def attribution_svg(view: np.ndarray, heat: np.ndarray, title: str, size: int = 256) -> str:
    """An attribution map over the picture as the model sees it (RGB uint8 [H, W, 3]), in plain SVG: the map on the
    Inferno scale at 55% opacity over the picture, drawn pixel for pixel at `size` px, with its colour scale
    (1 = the map's 99th percentile, so one hot pixel does not wash out the rest) and a title. An image, not a plotly
    heatmap: plotly rebuilt the chart at every rerun of the page (an upload, a threshold step)."""
    scale = float(np.percentile(heat, 99)) or 1.0
    shown = np.clip(heat / scale, 0, 1)
    blend = ATTRIBUTION_OPACITY * inferno(shown) + (1 - ATTRIBUTION_OPACITY) * view.astype(np.float64)
    picture = png_uri(np.clip(np.rint(blend), 0, 255).astype(np.uint8))
    bar = png_uri(np.clip(np.rint(inferno(np.linspace(1, 0, 128))), 0, 255).astype(np.uint8)[:, None, :])
    h = round(size * view.shape[0] / view.shape[1])
    top, bar_x = 30, size + 16
    parts = [f'<svg viewBox="0 0 {size + 100} {h + top + 12}" width="100%" style="max-width:{size + 100}px" '
             f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11" fill="currentColor">'
             f'<text x="0" y="14" font-size="12">{escape(title)}</text>'
             f'<image href="{picture}" x="0" y="{top}" width="{size}" height="{h}" preserveAspectRatio="none" '
             'style="image-rendering:pixelated"/>'
             f'<image href="{bar}" x="{bar_x}" y="{top}" width="14" height="{h}" preserveAspectRatio="none"/>'
             f'<text transform="translate({bar_x + 62} {top + h / 2:.1f}) rotate(-90)" text-anchor="middle">'
             'attribution</text>']
    for value, label in ((1.0, "top 1%"), (0.5, "0.5"), (0.0, "0")):   # 1 = the strongest 1% of the map
        y = top + h * (1 - value)
        parts.append(f'<line x1="{bar_x + 14}" x2="{bar_x + 18}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor"/>'
                     f'<text x="{bar_x + 21}" y="{max(y + 4, top + 8):.1f}">{label}</text>')
    return "".join(parts) + "</svg>"


def _nice_ticks(top: float) -> np.ndarray:
    """Round tick values from 0 to `top` (steps of 1, 2 or 5 times a power of ten; three to six ticks)."""
    raw = top / 5
    power = 10 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return np.arange(0, top + 1e-9, step)


def score_bars_svg(names: list[str], scores: np.ndarray, taken: int, thresholds: float | np.ndarray, top: float,
                   y_title: str, label: str = "") -> str:
    """The scores of one image's exits as a small bar chart in plain SVG: the exit taken in TAKEN_COLOR, the
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
    # Where each exit's threshold line is drawn (none over the last exit when thresholds are per exit).
    line_y = ([y(min(float(thresholds), top))] * len(names) if np.ndim(thresholds) == 0 else
              [y(min(float(t), top)) for t in np.asarray(thresholds)[:len(names) - 1]])
    line_y += [None] * (len(names) - len(line_y))
    for i, (name, score) in enumerate(zip(names, scores)):
        x0 = left + band * (i + 0.15)
        color = TAKEN_COLOR if i == taken else NOT_TAKEN_COLOR
        # The score above its bar, unless the threshold line would strike it through: then inside the bar's top,
        # or above the line for a bar too short to hold it.
        label_y, label_fill = y(score) - 4, ""
        if line_y[i] is not None and y(score) - 16 <= line_y[i] <= y(score) + 1:
            inside = ' fill="white"' if i == taken else ' fill="black"'   # readable on the purple and the grey bar
            label_y, label_fill = (y(score) + 14, inside) if y(0) - y(score) >= 18 else (line_y[i] - 4, "")
        parts.append(f'<rect x="{x0:.1f}" y="{y(score):.1f}" width="{0.7 * band:.1f}" height="{y(0) - y(score):.1f}" '
                     f'fill="{color}"><title>{escape(name)}: score {score:.3f}</title></rect>'
                     f'<text x="{x0 + 0.35 * band:.1f}" y="{label_y:.1f}" text-anchor="middle"{label_fill}>{score:.2f}</text>'
                     f'<text x="{x0 + 0.35 * band:.1f}" y="{y(0) + 16:.1f}" text-anchor="middle">{escape(name)}</text>')
    dash = f'stroke="{THRESHOLD_COLOR}" stroke-width="2" stroke-dasharray="6 4"'
    if np.ndim(thresholds) == 0:
        ty = line_y[0]   # a patience beyond the exits left sits at the top
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" {dash}/>'
                     f'<text x="{left + plot_w + 6}" y="{ty + 4:.1f}" fill="{THRESHOLD_COLOR}">threshold '
                     f'{float(thresholds):.2f}</text>')
    else:   # per exit; the last exit takes every sample that reaches it, so it has none
        for i, t in enumerate(np.asarray(thresholds)[:len(names) - 1]):
            ty = line_y[i]
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


def contribution_panels(t: dict, net, height: int = 300, y_range: tuple[float, float] | None = None) -> str:
    """Small multiples in plain SVG: for every exit, each head's contribution w^(n-i) f_i to the top-3 classes of F_n
    (in score order), stacked so that they visibly sum to F_n (the black diamond); positive parts stack up from 0,
    negative parts down. `y_range` puts several models on one scale. Hover a segment or a diamond for its value.
    SVG rather than plotly: a plotly figure of 5 panels took 70 ms to build on the server and longer to draw, once
    per image, and an upload waited for both."""
    n, names = net.num_exits, [net.classes[c] for c in range(len(net.classes))]
    tops = [np.argsort(-t["exit_logits"][k].numpy())[:3] for k in range(n)]
    low, high = y_range if y_range is not None else contribution_range([t])
    if not (np.isfinite(low) and np.isfinite(high)):   # an overflowed logit: draw what is finite, clipped at the edges
        finite = [float(v) for v in (low, high) if np.isfinite(v)]
        low, high = min(finite + [-1.0]), max(finite + [1.0])
    w, left, right, top_pad, bottom, gap = 960, 62, 10, 46, 44, 12
    panel_w = (w - left - right - gap * (n - 1)) / n
    plot_h = height - top_pad - bottom
    y = lambda v: top_pad + plot_h * (high - min(max(v, low), high)) / (high - low)   # noqa: E731
    parts = [f'<svg viewBox="0 0 {w} {height}" width="100%" role="img" font-family="sans-serif" font-size="11" '
             f'fill="currentColor" aria-label="what each head adds to the top classes at every exit">']
    for i in range(n):   # the legend, above the panels
        parts.append(f'<rect x="{left + 70 * i}" y="4" width="10" height="10" fill="{EXIT_COLORS[i % 10]}"/>'
                     f'<text x="{left + 70 * i + 14}" y="13">head {i + 1}</text>')
    parts.append(f'<path d="M{left + 70 * n + 5} 4 l5 5 l-5 5 l-5 -5 z" fill="currentColor"/>'
                 f'<text x="{left + 70 * n + 14}" y="13">F (sum)</text>')
    ticks = _nice_ticks(max(abs(low), abs(high)))
    for tick in sorted(set(np.concatenate([-ticks, ticks]) + 0.0)):   # + 0.0: no "-0"
        if low <= tick <= high:
            parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
                         f'stroke="rgba(128,128,128,{0.6 if tick == 0 else 0.25})"/>'
                         f'<text x="{left - 5}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for k in range(n):
        x0 = left + k * (panel_w + gap)
        band = panel_w / 3
        contrib, logits = t["contributions"][k].numpy(), t["exit_logits"][k].numpy()
        parts.append(f'<g class="panel"><text x="{x0 + panel_w / 2:.1f}" y="{top_pad - 8}" text-anchor="middle" '
                     f'font-size="12">F_{k + 1} (exit {k + 1})</text>')
        for j, c in enumerate(tops[k]):
            bx, up, down = x0 + band * (j + 0.15), 0.0, 0.0
            for i in range(k + 1):
                v = float(contrib[i, c])
                base = up if v >= 0 else down
                y_top, y_bottom = (y(base + v), y(base)) if v >= 0 else (y(base), y(base + v))
                parts.append(f'<rect x="{bx:.1f}" y="{y_top:.1f}" width="{0.7 * band:.1f}" height="{y_bottom - y_top:.1f}" '
                             f'fill="{EXIT_COLORS[i % 10]}"><title>{escape(names[c])}: head {i + 1} '
                             f'(x{net.reweight ** (k - i):g}) adds {v:.2f}</title></rect>')
                up, down = (up + v, down) if v >= 0 else (up, down + v)
            cx, cy = bx + 0.35 * band, y(float(logits[c]))
            parts.append(f'<path class="sum" d="M{cx:.1f} {cy - 6:.1f} l6 6 l-6 6 l-6 -6 z" fill="currentColor">'
                         f'<title>{escape(names[c])}: F_{k + 1} = {float(logits[c]):.2f}</title></path>'
                         f'<text x="{cx:.1f}" y="{height - bottom + 14}" text-anchor="middle" font-size="10">'
                         f'{escape(names[c] if len(names[c]) <= 10 else names[c][:9] + "…")}</text>')
        parts.append('</g>')
    parts.append(f'<text transform="translate(12 {top_pad + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 'logit contribution w^(n-i) f_i</text>'
                 f'<text x="{left + (w - left - right) / 2:.1f}" y="{height - 8}" text-anchor="middle">the top '
                 f'{min(3, len(names))} classes of each exit, in score order</text></svg>')
    return "".join(parts)


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
    lows, highs = [v for v in lows if np.isfinite(v)], [v for v in highs if np.isfinite(v)]   # an overflowed logit
    span = max(highs) - min(lows) or 1.0
    return min(lows) - 0.05 * span, max(highs) + 0.05 * span


def curves_png(groups: dict[str, list[dict]]) -> bytes:
    """Accuracy vs cost's charts in matplotlib, one panel per data set: the same models, colours, line styles, seed
    bands and operating points (stars)."""
    # A Figure of its own, not pyplot's global state: Streamlit calls this in a thread of its own at the click.
    from matplotlib.figure import Figure
    fig_m = Figure(figsize=(8 * len(groups), 5), dpi=130)
    axes = fig_m.subplots(1, len(groups), squeeze=False)
    for ax, (data, drawn) in zip(axes[0], groups.items()):
        for d in drawn:
            macs = np.array(d["macs"]) / 1e6
            if d["band"]:
                mean, sd = np.array(d["band"]["mean"]), np.array(d["band"]["sd"])
                ax.fill_between(macs, mean - sd, mean + sd, color=d["color"], alpha=0.18, linewidth=0)
            ax.plot(macs, d["top1"], "o:", color=d["color"], label=d["name"])
            if d["budgeted"]:
                ax.plot([p["avg_macs"] / 1e6 for p in d["budgeted"]], [p["top1"] for p in d["budgeted"]], "-", color=d["color"])
            if d["star"]:
                ax.plot(d["star"]["macs"] / 1e6, d["star"]["top1"], "*", ms=16, color=d["color"], markeredgecolor="black")
        ax.set_title(data); ax.set_xlabel("MACs per image (millions)"); ax.set_ylabel("top-1 accuracy (%)")
        ax.grid(alpha=0.3); ax.legend(fontsize=8)
    fig_m.text(0.01, 0.01, "dotted: anytime (exit k); solid: budgeted batch; shaded: mean ± sd over seeds; "
               "star: operating point", fontsize=8)
    buf = io.BytesIO()
    fig_m.tight_layout(rect=(0, 0.04, 1, 1))
    fig_m.savefig(buf, format="png")
    return buf.getvalue()
