"""The identity of a model's weights: the SHA-256 that its model.safetensors would have (checkpoint.save_model writes
those bytes and records this hash in model.json).

Computed from the tensors in memory, not read from the metadata, so that weights changed after loading (fine-tuning,
load_state_dict, an in-place edit) are never taken for the ones a certificate or a cache was computed from.
Memoised per model while its tensors are unchanged (fast_inference.fingerprint: version counters and storage).
"""
from __future__ import annotations

import hashlib
import weakref

from .fast_inference import fingerprint, model_tensors

FORMAT = "boostnet-checkpoint/1"   # the format tag of every checkpoint file (checkpoint.py uses this one)
_known: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model -> (fingerprint, sha256)


def weights_sha256(model) -> str:
    """SHA-256 of `model`'s state_dict serialized as save_model serializes it (about 10 ms for the CIFAR-10 model)."""
    from safetensors.torch import save
    key = fingerprint(model_tensors(model))
    known = _known.get(model)
    if known is not None and known[0] == key:
        return known[1]
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    digest = hashlib.sha256(save(tensors, metadata={"format": FORMAT})).hexdigest()
    _known[model] = (key, digest)
    return digest
