"""Projector mode, and the page style every page shares.

A classroom projector shows 1024x768 or 1280x800 pixels to a room: with the mode on (one toggle in the sidebar, kept
for the session, also set by a link with ?projector=1) the text is larger, the sidebar starts collapsed and every
chart takes a row of its own. Without it, charts keep a readable width and wrap to the next row when the page is
narrow (`chart_row`, `chart_width`), rather than shrinking side by side.
"""
from __future__ import annotations

import streamlit as st

PROJECTOR = "projector_mode"


def on() -> bool:
    return bool(st.session_state.get(PROJECTOR, False))


def start_of_run() -> str:
    """Before st.set_page_config: reads ?projector=1 on a session's first run; the sidebar's state for the page."""
    if PROJECTOR not in st.session_state:
        st.session_state[PROJECTOR] = st.query_params.get("projector") == "1"
    return "collapsed" if on() else "auto"


def style() -> None:
    """The page style: less empty space above the title (the first screen is what a class sees), and in projector
    mode larger text everywhere (Streamlit's sizes are in rem, so the root size scales them all)."""
    # A folded sidebar gives its room back (the router's min-width, which keeps model names whole, held 20rem).
    css = ("[data-testid='stMainBlockContainer'] {padding-top: 2.5rem;} "
           "section[data-testid='stSidebar'][data-collapsed='true'] {min-width: 0 !important;} "
           ".exit-strip td, .exit-strip th {padding: 0.15rem 0.4rem !important; vertical-align: middle;} ")
    if on():
        css += "html {font-size: 20px;} "
    st.html(f"<style>{css}</style>")


def toggle() -> None:
    st.sidebar.toggle("Projector mode", key=PROJECTOR,
                      help="Larger text, the sidebar folded away, one chart per row: for a classroom projector.")


def chart_row():
    """A row of charts that wraps: each keeps its width (`chart_width`) and moves to the next row when the page is
    too narrow, instead of all shrinking until their labels collide."""
    return st.container() if on() else st.container(horizontal=True, wrap=True, gap="medium")   # projector: one per row


def chart_width(pixels: int):
    """A chart's width in a `chart_row`: fixed, or the whole row in projector mode."""
    return "stretch" if on() else pixels


def figure_width(pixels: int) -> int:
    """A fixed width for a figure's box (st.metric) that still holds its label in projector mode's larger text."""
    return round(pixels * 1.25) if on() else pixels


def font_size() -> int:
    """Plotly's text size: larger in projector mode."""
    return 16 if on() else 12
