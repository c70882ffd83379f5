"""The errors a user can cause, in one hierarchy: the CLI and the app turn exactly these into one sentence.

Everything under `UserError` says, in its message, what was wrong and what to do; the CLI prints it and exits 2.
Any other exception is a bug and keeps its traceback. `UserError` is a ValueError, so code that caught ValueError
around a user's input still catches every user error; `TrainingError` is also still a RuntimeError.
"""
from __future__ import annotations


class UserError(ValueError):
    """Something the user gave or did (a path, a file, a flag, a data set) that cannot be used; one sentence."""


class ArgumentError(UserError):
    """A bad value for a flag or for an argument of a public function (a threshold, a preset name, a device)."""


class CheckpointError(UserError):
    """A checkpoint folder or file that cannot be used, with one sentence saying why."""


class CertificateError(UserError):
    """A certificate file that cannot be used: absent, not one, or computed for other weights (certificate.py)."""


class DataError(UserError):
    """A data set or image that is absent, incomplete or unreadable, with one sentence saying what to do."""


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (non-finite loss, inconsistent resume, a failed run); the message says what was kept."""


class TrainingStopped(TrainingError):
    """Stopped on request (the app's Stop button); the last finished epoch's checkpoint is kept."""
