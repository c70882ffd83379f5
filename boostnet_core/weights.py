"""The identity of a model's weights: the SHA-256 that its model.safetensors would have (checkpoint.save_model writes
those bytes and records this hash in model.json).

Computed from the tensors in memory, not read from the metadata, so that weights changed after loading (fine-tuning,
load_state_dict, an in-place edit) are never taken for the ones a certificate or a cache was computed from.
Memoised per model while its tensors are unchanged (`per_weights`; fast_inference.fingerprint: version counters
and storage).
"""
from __future__ import annotations

import hashlib
import weakref

from .fast_inference import fingerprint, model_tensors

FORMAT = "boostnet-checkpoint/1"   # the format tag of every checkpoint file (checkpoint.py uses this one)
_known: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model -> {name: (fingerprint, value)}


def per_weights(model, name: str, compute):
    """compute(model), worked out once per set of `model`'s weights: again only after its tensors change in place
    or move (fast_inference.fingerprint: 1-3 ms for the CIFAR-10 model). For hashes of the weights, which take
    10 ms (CIFAR-10) to seconds (ImageNet)."""
    key = fingerprint(model_tensors(model))
    known = _known.setdefault(model, {})
    if name not in known or known[name][0] != key:
        known[name] = (key, compute(model))
    return known[name][1]


def weights_sha256(model) -> str:
    """SHA-256 of `model`'s state_dict serialized as save_model serializes it (about 10 ms for the CIFAR-10 model)."""
    return per_weights(model, "sha256", _sha256)


def _sha256(model) -> str:
    from safetensors.torch import save
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return hashlib.sha256(save(tensors, metadata={"format": FORMAT})).hexdigest()
