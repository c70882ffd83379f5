"""A certificate file: what `boostnet calibrate` certified, bound to the weights it was computed from.

`boostnet calibrate CKPT ... --out cert.json` writes the calibration result (calibration.calibrate_checkpoint) as a
strict JSON file: the exit criterion and its fitted parameters, the risk, epsilon and delta, the exact thresholds
(null: no exit here; thresholds.py), the calibration split's size and identity, the guarantee in one sentence, and
the SHA-256 of the weights file and of the evaluation cache it was computed from. Whatever applies certified
thresholds reads this file (`read_certificate`): `predict --certificate`, `export --certificate`, `stress
--certificate`, the app's certified mode, and `model.predict_early(x, certificate)` in Python. A certificate
computed on other weights is refused (`Certificate.check_model`), so a guarantee is never carried over to a model
it says nothing about.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CertificateError
from .thresholds import check_thresholds
from .weights import weights_sha256

FORMAT = "boostnet-certificate/1"
RISKS = ("disagreement", "accuracy-drop")   # what can be certified (calibration.py defines each one's loss)
MAX_BYTES = 1 << 20   # a certificate is a few kilobytes; anything larger is not one


@dataclass(frozen=True)
class Certificate:
    """Certified per-exit thresholds and what they promise, for the weights whose SHA-256 is `weights_sha256`."""
    thresholds: tuple            # one per exit: float, or None for "no exit here"
    criterion: str               # the exit criterion's name (criteria.py)
    criterion_params: dict | None  # the learned score's fitted parameters; None for the others
    risk: str                    # one of RISKS
    epsilon: float
    delta: float
    guarantee: str               # the promise in one sentence
    weights_sha256: str          # of the checkpoint's model.safetensors
    cache_sha256: str            # of the evaluation cache the calibration read
    record: dict = field(repr=False, compare=False, default_factory=dict)   # the whole file, as read

    def criterion_object(self):
        """The exit criterion the thresholds were certified for, with its fitted parameters."""
        from .criteria import get_criterion
        if self.criterion == "learned":
            return get_criterion("learned", params=self.criterion_params)
        return get_criterion(self.criterion)

    def check_model(self, model, source: str = "the model") -> None:
        """Refuse (CertificateError) a model whose weights are not the ones the thresholds were certified on: the
        hash of its tensors in memory (weights.py), so weights changed after loading are refused too."""
        found = weights_sha256(model)
        if found != self.weights_sha256:
            raise CertificateError(
                f"This certificate was computed for weights with SHA-256 {self.weights_sha256[:12]}..., but {source} "
                f"has weights {found[:12]}...; calibrate this model again ('boostnet calibrate ... --out').")


def certificate_record(result: dict, weights_sha256: str, cache_sha256: str, criterion_params: dict | None) -> dict:
    """The file's contents: calibrate's result with the format tag, the hashes and the criterion's parameters."""
    return {"format": FORMAT, **result, "criterion_params": criterion_params, "weights_sha256": weights_sha256,
            "cache_sha256": cache_sha256}


def write_certificate(record: dict, path) -> Path:
    """Write a certificate record atomically as strict JSON (no NaN or Infinity)."""
    from .atomic import atomic_write_json
    path = Path(path)
    if path.is_dir():
        raise CertificateError(f"{str(path)!r} is a folder; give a file name for the certificate, e.g. cert.json.")
    atomic_write_json(path, record)
    return path


def read_certificate(path) -> Certificate:
    """A certificate file, checked to be one (CertificateError with one sentence otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise CertificateError(f"Certificate {str(path)!r} does not exist or is not a file; write one with "
                               "'boostnet calibrate CKPT --risk ... --epsilon ... --delta ... --out FILE'.")
    if path.stat().st_size > MAX_BYTES:
        raise CertificateError(f"{str(path)!r} is {path.stat().st_size:,} bytes, too large for a certificate.")
    try:
        record = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError, RecursionError) as e:
        raise CertificateError(f"{str(path)!r} is not a certificate: not valid JSON ({e}).") from None
    return certificate_from_record(record, str(path))


def certificate_from_record(record, source: str = "the certificate") -> Certificate:
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CertificateError(f"{source} is not a BoostNet certificate (expected \"format\": \"{FORMAT}\"); "
                               "write one with 'boostnet calibrate ... --out FILE'.")
    missing = [k for k in ("thresholds", "criterion", "risk", "epsilon", "delta", "guarantee", "weights_sha256",
                           "cache_sha256") if k not in record]
    if missing:
        raise CertificateError(f"{source} lacks {', '.join(missing)}; the file was edited or is incomplete.")
    thresholds = record["thresholds"]
    if not isinstance(thresholds, list) or not thresholds:
        raise CertificateError(f"{source}: 'thresholds' must be a list with one value per exit.")
    try:
        check_thresholds(thresholds, len(thresholds), (-math.inf, math.inf))
    except ValueError as e:
        raise CertificateError(f"{source}: {e}") from None
    for name in ("epsilon", "delta"):
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise CertificateError(f"{source}: {name!r} must be a number strictly between 0 and 1, got {value!r}.")
    for name in ("weights_sha256", "cache_sha256"):
        value = record[name]
        if not (isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)):
            raise CertificateError(f"{source}: {name!r} must be a SHA-256 (64 hexadecimal digits), got {value!r}.")
    from .criteria import CRITERIA
    if record["risk"] not in RISKS or not isinstance(record["criterion"], str) or record["criterion"] not in CRITERIA:
        raise CertificateError(f"{source}: unknown risk {record['risk']!r} or criterion {record['criterion']!r}.")
    params = record.get("criterion_params")
    if record["criterion"] == "learned":
        _check_learned(params, len(thresholds), source)
    return Certificate(tuple(thresholds), str(record["criterion"]), params, str(record["risk"]),
                       float(record["epsilon"]), float(record["delta"]), str(record["guarantee"]),
                       str(record["weights_sha256"]), str(record["cache_sha256"]), record)


def _check_learned(params, n_exits: int, source: str) -> None:
    """The learned score's fitted parameters: per exit, the features' mean and scale, the coefficients and the
    intercept, with one value per feature (criteria.LEARNED_FEATURES)."""
    from .criteria import LEARNED_FEATURES
    n = len(LEARNED_FEATURES)

    def numbers(v, length):
        return (isinstance(v, list) and len(v) == length
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v))
    ok = isinstance(params, dict) and all(
        isinstance(params.get(key), list) and len(params[key]) == n_exits for key in ("mean", "scale", "coef"))
    ok = ok and all(numbers(row, n) for key in ("mean", "scale", "coef") for row in params[key])
    ok = ok and numbers(params.get("intercept"), n_exits)
    if not ok:
        raise CertificateError(f"{source} certifies the learned criterion, but its fitted parameters are missing or "
                               f"incomplete (per exit: {n} means, scales and coefficients, and an intercept).")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")

