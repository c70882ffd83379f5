"""What a browser tab keeps over a refresh (F5) of the page.

Streamlit starts a new session when a page is reloaded, and the session's state (uploads, the exit setting, a
training run to watch) would be gone. Each tab therefore gets a random name in its address (?tab=...), set again on
every run (Streamlit clears the address's parameters when the sidebar switches pages); the server keeps what the
tab's session holds under that name (in memory, for the 64 tabs seen last), and a reload of the same address takes it
back. A copied address opened elsewhere shares it (it names the same tab); a restart of the server forgets it.
"""
from __future__ import annotations

import secrets
from collections import OrderedDict

import streamlit as st

TAB = "tab"
KEPT = ("exit_setting", "uploads", "train_job", "model", "projector_mode", "picker_open")
MOST_TABS = 64


@st.cache_resource(show_spinner=False)
def _tabs() -> OrderedDict:
    """Tab name -> the kept part of its session state, for every session of the server (newest last)."""
    return OrderedDict()


def _kept_keys() -> list[str]:
    # Besides KEPT, every setting session.bind keeps for a widget ("saved_..."): picks, chosen models, toggles.
    return [k for k in st.session_state if k in KEPT or str(k).startswith("saved_")]


def note(key: str) -> None:
    """Keep a value changed outside a full run of the app (an upload reruns only its fragment, not the router)."""
    name = st.session_state.get(f"_{TAB}")
    if name is not None and name in _tabs() and key in st.session_state:
        _tabs()[name][key] = st.session_state[key]


def keep_over_refresh() -> None:
    """At the start of every run of the router: on a session's first run, take back what its tab held; then note
    what the session holds now (the values a page changes in this run are noted at the next run)."""
    tabs = _tabs()
    name = st.session_state.get(f"_{TAB}")
    if name is None:
        asked = st.query_params.get(TAB)
        if asked in tabs:   # a reload of this tab: its earlier session's values come back
            for key, value in tabs[asked].items():
                st.session_state.setdefault(key, value)
            name = asked
        else:
            name = secrets.token_urlsafe(6)
        st.session_state[f"_{TAB}"] = name
    if st.query_params.get(TAB) != name:
        st.query_params[TAB] = name
    tabs[name] = {k: st.session_state[k] for k in _kept_keys()}
    tabs.move_to_end(name)
    while len(tabs) > MOST_TABS:
        tabs.popitem(last=False)
