"""A threshold you can play: step buttons and a play button that sweep the exit setting over its range.

The sweep moves the session's one exit setting (session.py): the global threshold in steps of 0.05, patience one
exit at a time, or the budget in steps of 5% of the full network's MACs; certified thresholds have nothing to sweep.
Playing is a small fragment that wakes every PLAY_SECONDS (`st.fragment(run_every=...)`), moves one step
(`advance`) and runs the whole page again, so that the sidebar's slider, the strip and every image's detail agree.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import streamlit as st

from session import SETTING, ExitMode, ExitSetting, exit_setting

PLAYING = "player_playing"
LAST_STEP = "player_last_step"
PLAY_SECONDS = 0.9          # one step per this long: long enough for a class to see every image's exit change


def sweep(setting: ExitSetting, n_exits: int, lowest_share: int) -> tuple[str, list] | None:
    """(the setting's field that moves, its values in order), or None when nothing can be swept (certified)."""
    if setting.mode is ExitMode.BUDGET:
        return "budget_share", sorted({*range(lowest_share, 101, 5), 100})
    if setting.mode is ExitMode.CERTIFIED:
        return None
    if setting.criterion == "patience":
        return "threshold", [float(t) for t in range(0, max(1, n_exits - 1) + 1)]
    return "threshold", [round(float(t), 2) for t in np.arange(0.0, 1.0001, 0.05)]


def _neighbour(values: list, current, direction: int):
    """The next value above (direction 1) or below (-1) `current`, or None at the end."""
    if direction > 0:
        return next((v for v in values if v > current + 1e-9), None)
    return next((v for v in reversed(values) if v < current - 1e-9), None)


def _move(field: str, value) -> None:
    st.session_state[SETTING] = replace(exit_setting(), **{field: value})


def _step(n_exits: int, lowest_share: int, direction: int) -> None:
    found = sweep(exit_setting(), n_exits, lowest_share)
    if found:
        field, values = found
        value = _neighbour(values, getattr(exit_setting(), field), direction)
        if value is not None:
            _move(field, value)


def _play(n_exits: int, lowest_share: int) -> None:
    found = sweep(exit_setting(), n_exits, lowest_share)
    if not found:
        return
    field, values = found
    if _neighbour(values, getattr(exit_setting(), field), 1) is None:   # at the end: start again from the lowest
        _move(field, values[0])
    st.session_state[PLAYING] = True
    st.session_state[LAST_STEP] = time.monotonic()


def _stop() -> None:
    st.session_state[PLAYING] = False


def playing() -> bool:
    return bool(st.session_state.get(PLAYING))


def controls(n_exits: int, lowest_share: int) -> None:
    """The step and play buttons (on a full run of the page). Shown disabled, with a word, in certified mode."""
    found = sweep(exit_setting(), n_exits, lowest_share)
    what = "budget" if exit_setting().mode is ExitMode.BUDGET else "threshold"
    with st.container(horizontal=True, vertical_alignment="center", key="player"):
        st.button("◀ step", key="player_back", disabled=not found or playing(), on_click=_step,
                  args=(n_exits, lowest_share, -1), help=f"Lower the {what} one step")
        if playing():
            st.button("■ stop", key="player_stop", on_click=_stop, type="primary")
        else:
            st.button(f"▶ play the {what}", key="player_play", disabled=not found, on_click=_play,
                      args=(n_exits, lowest_share), type="primary",
                      help=f"Sweep the {what} from low to high, one step every {PLAY_SECONDS:g} s")
        st.button("step ▶", key="player_forward", disabled=not found or playing(), on_click=_step,
                  args=(n_exits, lowest_share, 1), help=f"Raise the {what} one step")
        if not found:
            st.caption("Certified thresholds come from the risk you allow: change epsilon in the sidebar instead.")


def advance(n_exits: int, lowest_share: int) -> bool:
    """While playing, one step further when the last one is PLAY_SECONDS old (the page's own runs in between do not
    step); at the end of the range the sweep stops. True when the setting changed or the sweep stopped: the page
    should run again."""
    if not playing() or time.monotonic() - st.session_state.get(LAST_STEP, 0.0) < 0.8 * PLAY_SECONDS:
        return False
    found = sweep(exit_setting(), n_exits, lowest_share)
    value = _neighbour(found[1], getattr(exit_setting(), found[0]), 1) if found else None
    if value is None:
        _stop()
        return True
    _move(found[0], value)
    st.session_state[LAST_STEP] = time.monotonic()
    return True
