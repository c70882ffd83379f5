"""What a browser session remembers across pages: the model, the one exit setting, the uploaded images.

Streamlit drops a widget's value when its page is left. Every setting here is therefore kept under a key of its own
and handed back to the widget when a page shows it again (`_restore`), so a threshold set on one page is the one
every other page uses, and uploads outlive a visit elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
import streamlit as st

import restore
from store import available_checkpoints, budget_thresholds, certified, label, load_or_error, predictions


def _copy(widget_key: str, saved_key: str) -> None:
    st.session_state[saved_key] = st.session_state[widget_key]


def bind(key: str, default, saved_key: str | None = None) -> dict:
    """Keyword arguments for a widget whose value outlives its page: `st.selectbox(..., **bind("k", default))`.

    The value is kept under `saved_key` (default "saved_<key>"), copied there by the widget's on_change (callbacks run
    before the page), and handed back to the widget on every run: a widget key left from another page, or from a
    page shown before, would otherwise be dropped or reset by Streamlit."""
    saved_key = saved_key or f"saved_{key}"
    st.session_state[key] = st.session_state.get(saved_key, default)
    st.session_state[saved_key] = st.session_state[key]
    return {"key": key, "on_change": _copy, "args": (key, saved_key)}


def set_remembered(key: str, value, saved_key: str | None = None) -> None:
    """Change a bound widget's value from code (a button's callback, the Train page)."""
    st.session_state[saved_key or f"saved_{key}"] = value


# ---------------------------------------------------------------- the model


def pick_model(key: str = "model", label_text: str = "Model", where=None) -> str | None:
    """A model picker (in the sidebar by default) remembered across pages under `key`; None with a message when
    there is none. A link like ?model=mnist5k-boostnet chooses the model of a session's first page."""
    options = available_checkpoints()
    if not options:
        st.warning("No checkpoint found. Train one (`boostnet train ...`) or load a folder on the Models page.")
        return None
    current = st.session_state.get(key)
    if current is None and "model" in st.query_params:
        asked = st.query_params["model"]
        current = next((p for p in options if label(p) == asked), None)
        if current is None:   # a mistyped link says so, rather than silently showing another model
            st.warning(f"There is no model named '{asked}' here, so this page shows {label(options[0])}. The models "
                       f"are: {', '.join(label(p) for p in options)}.")
    st.session_state[key] = current if current in options else options[0]
    return (where or st.sidebar).selectbox(label_text, options, format_func=label, **bind(f"_{key}_widget", None, key))


def pick_loaded_model():
    """The model picker, and the picked checkpoint's (path, model); stops the page after one sentence when there is
    no checkpoint or the picked one does not load."""
    path = pick_model()
    loaded = load_or_error(path) if path else None
    if loaded is None:
        st.stop()
    return path, loaded


# ---------------------------------------------------------------- the one exit setting


class ExitMode(Enum):
    """How exits are decided, on every page that shows an operating point."""
    THRESHOLD = "One global threshold"
    BUDGET = "Fitted to a cost budget"
    CERTIFIED = "Certified risk (Learn-then-Test)"


CRITERION_NAMES = {"max_softmax": "max softmax (the paper's)", "entropy": "1 − normalised entropy",
                   "margin": "top-2 margin", "patience": "patience (same top class t exits in a row)",
                   "learned": "learned score (fitted on validation)"}
RISKS = {"disagreement": "disagreement with the last exit", "accuracy-drop": "accuracy lost against the last exit"}


@dataclass(frozen=True)
class ExitSetting:
    mode: ExitMode = ExitMode.THRESHOLD
    threshold: float = 0.9
    budget_share: int = 60          # average MACs, % of the full network
    criterion: str = "max_softmax"
    risk: str = "disagreement"      # certified mode: which risk, at most epsilon with probability 1 - delta
    epsilon: float = 0.02
    delta: float = 0.1

    def describe(self) -> str:
        by = "" if self.criterion == "max_softmax" else f", {CRITERION_NAMES[self.criterion]}"
        if self.mode is ExitMode.BUDGET:
            return f"thresholds fitted to {self.budget_share}% of the full MACs{by}"
        if self.mode is ExitMode.CERTIFIED:
            return f"certified {self.risk} ≤ {100 * self.epsilon:g}% with probability ≥ {100 * (1 - self.delta):g}%{by}"
        return f"threshold {self.threshold:.2f}{by}" if self.criterion != "patience" else f"patience {self.threshold:g}"


SETTING = "exit_setting"


def exit_setting() -> ExitSetting:
    return st.session_state.get(SETTING) or ExitSetting()


def _set(field: str, widget_key: str) -> None:
    st.session_state[SETTING] = replace(exit_setting(), **{field: st.session_state[widget_key]})


def _set_share(field: str, widget_key: str) -> None:
    """epsilon and delta: a share strictly between 0 and 1, or a sentence saying it was not applied (and which value
    still holds), rather than an input that turns red while the guarantee silently keeps the old value."""
    value = st.session_state[widget_key]
    if value is None or not 0 < value < 1:
        kept = getattr(exit_setting(), field)
        st.session_state[f"{widget_key}_error"] = (
            f"{field} is a share of images and must lie strictly between 0 and 1 (0.05 = 5%); "
            f"{'nothing' if value is None else f'{value:g}'} was not applied, so the guarantee still uses {kept:g}.")
        return
    st.session_state.pop(f"{widget_key}_error", None)
    _set(field, widget_key)


def _bound_to_setting(field: str, widget_key: str, value) -> dict:
    st.session_state[widget_key] = value
    return {"key": widget_key, "on_change": _set, "args": (field, widget_key)}


def exit_setting_controls(where=None, lowest_share: int = 1, budget_ok: bool = True, n_exits: int = 10) -> ExitSetting:
    """The exit rule's controls (criterion, mode, then threshold, budget or certified risk), the same on every page
    and bound to one session setting. `lowest_share`: the cheapest budget the shown models allow (their first exit's
    share of the cost); `budget_ok` False when a model lacks the validation split that budgets and certificates are
    fitted on; `n_exits`: the most exits of the models shown (patience's largest useful value)."""
    where = where or st.sidebar
    s = exit_setting()
    where.selectbox("Exit criterion", list(CRITERION_NAMES), format_func=CRITERION_NAMES.get,
                    help="How sure exit k is (higher = leave): the score a threshold is compared with.",
                    **_bound_to_setting("criterion", "exit_criterion", s.criterion))
    mode = where.radio("Exit rule", list(ExitMode), format_func=lambda m: m.value,
                       help="The same on every page: a threshold or budget set here is the one the other pages use.",
                       **_bound_to_setting("mode", "exit_mode", s.mode))
    s = exit_setting()
    if mode is not ExitMode.THRESHOLD and not budget_ok:
        where.error("A model shown here was trained without a validation split, so no thresholds can be fitted to "
                    "it; it uses the global threshold.")
    if mode is ExitMode.BUDGET:
        where.slider("Budget: average MACs, % of the full network", lowest_share, 100,
                     **_bound_to_setting("budget_share", "exit_budget", min(100, max(lowest_share, s.budget_share))))
    elif mode is ExitMode.CERTIFIED:
        where.radio("Risk", list(RISKS), format_func=RISKS.get, **_bound_to_setting("risk", "exit_risk", s.risk))
        # No bounds on the inputs themselves: a typed value out of range gets a sentence (_set_share), not a red box.
        for field, key, caption, step in (("epsilon", "exit_epsilon", "epsilon: the most risk allowed", 0.005),
                                          ("delta", "exit_delta", "delta: the chance the guarantee may fail", 0.01)):
            where.number_input(caption, step=step, format="%.3f", help="A share of images: 0.05 = 5%.",
                               **dict(_bound_to_setting(field, key, float(getattr(s, field))), on_change=_set_share))
            if st.session_state.get(f"{key}_error"):
                where.error(st.session_state.pop(f"{key}_error"))
    elif s.criterion == "patience":
        where.slider("Patience t (leave once the top class stayed the same over t exits)", 0, max(1, n_exits - 1),
                     help="t larger than the exits left: nobody leaves before the last exit.",
                     **_bound_to_setting("threshold", "exit_patience", int(min(max(s.threshold, 0), max(1, n_exits - 1)))))
    else:
        where.slider("Threshold on the score", 0.0, 1.0, step=0.01,
                     help="A sample leaves at the first exit whose score (max softmax of F_k by default) reaches this.",
                     **_bound_to_setting("threshold", "exit_threshold", float(min(max(s.threshold, 0.0), 1.0))))
    st.session_state.setdefault(SETTING, s)
    return exit_setting()


def thresholds_for(path: str, n_exits: int, setting: ExitSetting | None = None) -> np.ndarray:
    """Per-exit thresholds of a model under the exit setting (budgets and certificates need its validation split;
    without one the global threshold is used)."""
    s = setting or exit_setting()
    if s.mode is ExitMode.BUDGET and "val" in predictions(path):
        return budget_thresholds(path, s.budget_share, s.criterion)
    if s.mode is ExitMode.CERTIFIED and "val" in predictions(path):
        found = certified(path, s.risk, s.epsilon, s.delta, s.criterion)["thresholds"]
        return np.array([np.inf if t is None else float(t) for t in found])   # JSON null: no exit here
    return np.full(n_exits, float(s.threshold))


# ---------------------------------------------------------------- uploads


UPLOADS = "uploads"


def remembered_uploads(key: str, label_text: str, types: list[str]) -> list[tuple[str, bytes]]:
    """A file uploader whose files outlive a visit to another page: (name, bytes) of the session's uploads, shared by
    every page that takes uploads. A page shown again starts with an empty uploader and the kept files."""
    def changed():
        st.session_state[UPLOADS] = [(f.name, f.getvalue()) for f in st.session_state[key] or []]
        restore.note(UPLOADS)   # an upload reruns only its fragment: kept over a reload from here

    st.file_uploader(label_text, type=types, accept_multiple_files=True, key=key, on_change=changed)
    kept = st.session_state.get(UPLOADS, [])
    if kept and not st.session_state.get(key):
        c1, c2 = st.columns([5, 1])
        c1.caption(f"{len(kept)} uploaded image{'s' if len(kept) > 1 else ''} kept from earlier in this session: "
                   + ", ".join(name for name, _ in kept) + ". Upload again to replace them.")
        if c2.button("Clear", key=f"{key}_clear"):
            st.session_state[UPLOADS] = []
            restore.note(UPLOADS)
            st.rerun()
    return kept
