"""A picture of the network: the backbone's blocks and heads as a grid in plain SVG, read from the model itself.

MSDNet: one row per scale (fine to coarse), one column per block; a scale the network has dropped ("max" pruning)
leaves its cell empty, and every head reads the coarsest scale. RANet: one row per flow (lowest resolution first),
a flow's blocks in its row, a head after each block that has one (`exit_plan`). Each cell gives the block's own MACs,
each head its own and the exit's cumulative MACs (model.macs). For one image, the blocks and heads its exit computed
are drawn in colour, the exit it took outlined in the "taken" colour, the rest greyed: what early exit skipped.
Any other stepwise backbone is drawn as one row of blocks, one per exit.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

import streamlit as st
import torch

from boostnet_core.macs import MacCounter
from boostnet_core.models.stepwise import eval_mode, iter_exits
from charts import EXIT_COLORS, TAKEN_COLOR

COMPUTED, SKIPPED = "#4C78A8", "#C4C9D0"   # opaque, so lines drawn under a block never cross its text
DASHED = ' stroke="currentColor" stroke-opacity="0.35" stroke-dasharray="3 3"'   # the outline of a skipped part
FADED = 'opacity="0.55"'
ON_TEXT, ON_BOLD, OFF_TEXT = 'fill="white"', 'fill="white" font-weight="bold"', 'fill="#4A5058"'


@dataclass(frozen=True)
class Cell:
    row: int
    col: int
    macs: float          # this block's own multiply-adds (one image)
    needed_by: int       # the first exit whose computation runs it (exit index, 0-based)


@dataclass(frozen=True)
class NetworkPicture:
    kind: str                       # "MSDNet", "RANet" or the backbone's class name
    rows: list[str]                 # row names, top first ("scale 1 (32x32)", "flow 2 (16x16)")
    cells: list[Cell]
    head_at: list[tuple[int, int]]  # (row, col) of the block each exit's head reads
    head_macs: list[float]          # each head's own MACs
    exit_macs: list[float]          # cumulative MACs per exit (model.macs)
    stem_macs: float                # a stem outside the blocks (RANet), 0 when it is inside block 1


def _size(t) -> str:
    return f"{t.shape[-1]}x{t.shape[-2]}" if t.shape[-1] != t.shape[-2] else f"{t.shape[-1]}x{t.shape[-1]}"


@torch.no_grad()
def describe(net) -> NetworkPicture:
    """The grid of `net` (a BoostNet): which blocks exist, their MACs (one forward pass at batch 1 with a counter on
    every block and head) and the size of the maps each row holds."""
    backbone = net.backbone
    kind = type(backbone).__name__
    if kind == "MSDNet":
        parts = [(None, b, block) for b, block in enumerate(backbone.blocks)]
        stem = None
    elif kind == "RANet":
        parts = [(j, b, block) for j, flow in enumerate(backbone.flows) for b, block in enumerate(flow)]
        stem = backbone.stem
    else:
        parts = [(None, b, None) for b in range(backbone.num_exits)]
        stem = None
    counters = {(j, b): MacCounter().attach(m) for j, b, m in parts if m is not None}
    heads = [MacCounter().attach(backbone.head(k)) for k in range(backbone.num_exits)]
    stem_counter = MacCounter().attach(stem) if stem is not None else None
    shapes: dict = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, key=(j, b): shapes.__setitem__(key, out))
             for j, b, m in parts if m is not None]
    try:
        with eval_mode(backbone):
            x = torch.zeros(1, *net.input_shape, device=next(backbone.parameters()).device)
            for _ in iter_exits(backbone, x):
                pass
    finally:
        for c in [*counters.values(), *heads] + ([stem_counter] if stem_counter else []):
            c.detach()
        for h in hooks:
            h.remove()
    n = backbone.num_exits
    if kind == "MSDNet":
        n_scales = backbone.cfg.n_scales
        sizes = [""] * n_scales
        cells = []
        for b in range(n):
            kept = shapes[(None, b)]                     # the maps of the scales still kept after block b
            for i, t in enumerate(kept):
                s = n_scales - len(kept) + i
                sizes[s] = sizes[s] or _size(t)
                # The counter measures a block as a whole (its layers mix the scales), so its MACs are written
                # once, in its finest kept scale's cell, rather than split over its rows.
                cells.append(Cell(s, b, counters[(None, b)].count if i == 0 else -1.0, b))
        rows = [f"scale {s + 1} ({sizes[s]})" for s in range(n_scales)]
        head_at = [(n_scales - 1, k) for k in range(n)]
    elif kind == "RANet":
        plan = backbone.exit_plan
        rows = []
        cells = []
        for j, flow in enumerate(backbone.flows):
            x = shapes[(j, len(flow) - 1)][0]
            rows.append(f"flow {j + 1} ({_size(shapes[(j, 0)][0])}{'' if _size(x) == _size(shapes[(j, 0)][0]) else ' to ' + _size(x)})")
            for b in range(len(flow)):
                needed = min(k for k, (f, last) in enumerate(plan) if f == j and last >= b)
                cells.append(Cell(j, b, counters[(j, b)].count, needed))
        head_at = [(f, last) for f, last in plan]
    else:
        rows = ["blocks"]
        increments = [net.macs[0]] + [net.macs[k] - net.macs[k - 1] for k in range(1, n)]
        cells = [Cell(0, b, increments[b] - heads[b].count, b) for b in range(n)]
        head_at = [(0, k) for k in range(n)]
    return NetworkPicture(kind, rows, cells, head_at, [h.count for h in heads], list(net.macs),
                          stem_counter.count if stem_counter else 0.0)


@st.cache_resource(show_spinner=False, max_entries=32)
def picture_of(model_path: str, weights_version: float) -> NetworkPicture:
    """describe() of a checkpoint's model, once per version of its weights (one counted forward pass)."""
    from store import model
    return describe(model(model_path))


def _m(macs: float) -> str:
    return f"{macs / 1e9:.2f} G" if macs >= 1e9 else f"{macs / 1e6:.2f} M"


def network_svg(pic: NetworkPicture, taken: int | None = None, title: str = "", marks: dict[int, str] | None = None) -> str:
    """The grid as SVG. `taken`: the exit an image took (its computed blocks and heads in colour, the rest grey);
    None draws every block and head as computed (the lesson's picture). `marks`: a word under an exit's head (the
    letters of the images that leave there)."""
    marks = marks or {}
    n_cols = max(c.col for c in pic.cells) + 1
    n_rows = len(pic.rows)
    left = max(64, round(6.4 * max(len(r) for r in pic.rows + ["images leaving"])) + 10)   # the row names' width
    top, col_w, row_h, gap = 24 + (16 if title else 0), 92, 34, 8
    head_y = top + n_rows * row_h + 18
    w = left + n_cols * col_w + 8
    h = head_y + (62 if marks else 46)
    done = (lambda k: True) if taken is None else (lambda k: k <= taken)
    parts = [f'<svg viewBox="0 0 {w} {h}" width="100%" style="max-width:{w}px" role="img" font-family="sans-serif" '
             f'font-size="11" fill="currentColor" aria-label="{escape(title or "the network: blocks and heads")}">']
    if title:
        parts.append(f'<text x="0" y="13" font-size="12">{escape(title)}</text>')
    for b in range(n_cols):
        parts.append(f'<text x="{left + b * col_w + (col_w - gap) / 2:.1f}" y="{top - 6}" text-anchor="middle" '
                     f'opacity="0.7">block {b + 1}</text>')
    for r, name in enumerate(pic.rows):
        parts.append(f'<text x="0" y="{top + r * row_h + row_h / 2 + 2:.1f}">{escape(name)}</text>')
    for k, (r, col) in enumerate(pic.head_at):   # each head's line first: the blocks it passes are drawn over it
        cx = left + col * col_w + (col_w - gap) / 2
        parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{top + r * row_h + row_h - 6}" y2="{head_y}" '
                     f'stroke="currentColor" stroke-opacity="{0.5 if done(k) else 0.25}"/>')
    at = {(c.row, c.col): c for c in pic.cells}
    for c in pic.cells:   # the maps passed on from a block to the next one in its row
        if (c.row, c.col + 1) in at:
            y = top + c.row * row_h + row_h / 2 - 3
            x = left + c.col * col_w + col_w - gap
            parts.append(f'<line x1="{x}" x2="{x + gap}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
                         'stroke-opacity="0.5"/>')
    for c in pic.cells:
        x, y = left + c.col * col_w, top + c.row * row_h
        on = done(c.needed_by)
        fill = COMPUTED if on else SKIPPED
        text = "" if c.macs < 0 else _m(c.macs)
        what = f"{pic.rows[c.row]}, block {c.col + 1}: " + (f"{_m(c.macs)} MACs" if c.macs >= 0 else "part of the block above")
        outline = "" if on else DASHED
        parts.append(f'<rect class="block{"" if on else " skipped"}" x="{x}" y="{y}" width="{col_w - gap}" '
                     f'height="{row_h - 6}" rx="4" fill="{fill}"{outline}>'
                     f'<title>{escape(what)}{"" if on else " (skipped)"}</title></rect>')
        if text:
            parts.append(f'<text x="{x + (col_w - gap) / 2:.1f}" y="{y + row_h / 2 + 1:.1f}" text-anchor="middle" '
                         f'{ON_TEXT if on else OFF_TEXT}>{text}</text>')
    for k, (r, col) in enumerate(pic.head_at):
        x = left + col * col_w
        on = done(k)
        color = EXIT_COLORS[k % len(EXIT_COLORS)] if on else SKIPPED
        ring = f' stroke="{TAKEN_COLOR}" stroke-width="4"' if taken == k else ("" if on else DASHED)
        parts.append(f'<rect class="head{" taken" if taken == k else ""}{"" if on else " skipped"}" x="{x}" '
                     f'y="{head_y}" width="{col_w - gap}" height="24" rx="12" fill="{color}"{ring}>'
                     f'<title>head {k + 1}: {_m(pic.head_macs[k])} MACs; exit {k + 1} costs {_m(pic.exit_macs[k])} '
                     f'MACs in all{" (taken)" if taken == k else "" if on else " (skipped)"}</title></rect>'
                     f'<text x="{x + (col_w - gap) / 2:.1f}" y="{head_y + 16}" text-anchor="middle" '
                     f'{ON_BOLD if on else OFF_TEXT}>exit {k + 1}</text>'
                     f'<text x="{x + (col_w - gap) / 2:.1f}" y="{head_y + 40}" text-anchor="middle" '
                     f'{"" if on else FADED}>{_m(pic.exit_macs[k])}</text>')
        if k in marks:
            parts.append(f'<text class="mark" x="{x + (col_w - gap) / 2:.1f}" y="{head_y + 56}" text-anchor="middle" '
                         f'font-weight="bold" fill="{TAKEN_COLOR}">{escape(marks[k])}</text>')
    parts.append(f'<text x="0" y="{head_y + 16}">heads</text>'
                 f'<text x="0" y="{head_y + 40}" opacity="0.7">MACs to here</text>'
                 + (f'<text x="0" y="{head_y + 56}" opacity="0.7">images leaving</text>' if marks else "") + '</svg>')
    return "".join(parts)
