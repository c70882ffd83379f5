"""What a study compares: a variant is a training method and whether MSDNet's gradient rescaling is on.

One type, three spellings, each derived from it: `boostnet:on` on the command line and in study.json, the run folder
`boostnet-rescale-on-seed0`, and the label "boostnet, rescaling on" in reports. Code compares variants, never labels.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ArgumentError

METHODS = ("boostnet", "joint")


@dataclass(frozen=True, order=True)
class Variant:
    """One cell of a study's grid. Ordered by method, then rescaling off before on (the report's order)."""
    method: str           # boostnet | joint
    grad_rescale: bool

    def __post_init__(self):
        if self.method not in METHODS or not isinstance(self.grad_rescale, bool):
            raise ArgumentError(f"A variant is a method ({' or '.join(METHODS)}) and gradient rescaling on or off, "
                             f"got {self.method!r} and {self.grad_rescale!r}.")

    @classmethod
    def parse(cls, text: str) -> "Variant":
        """From its command-line spelling, METHOD:RESCALE (boostnet:on)."""
        method, _, rescale = text.partition(":")
        if method not in METHODS or rescale not in ("on", "off"):
            raise ArgumentError(f"A variant is METHOD:RESCALE with METHOD boostnet or joint and RESCALE on or off, "
                             f"got {text!r} (for example boostnet:on).")
        return cls(method, rescale == "on")

    @classmethod
    def of_meta(cls, meta: dict) -> "Variant":
        """The variant a checkpoint's model.json records."""
        return cls(meta["method"], bool(meta.get("grad_rescale")))

    @classmethod
    def from_label(cls, label: str) -> "Variant":
        """From its report label ("boostnet, rescaling on"), as report.json stores it."""
        method, _, rescale = label.partition(", rescaling ")
        return cls.parse(f"{method}:{rescale}")

    @property
    def rescale(self) -> str:
        """on | off: the value of `boostnet train --grad-rescale`."""
        return "on" if self.grad_rescale else "off"

    @property
    def label(self) -> str:
        return f"{self.method}, rescaling {self.rescale}"

    def __str__(self) -> str:
        return f"{self.method}:{self.rescale}"
