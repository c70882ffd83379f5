"""Add the exit logits F_k (float16) to the evaluation caches of checkpoints evaluated before the cache kept them.

    python scripts/cache_logits.py checkpoints/cifar10-boostnet ...   # CIFAR-10 needs ../shared/data/cifar10-jpg
Every tensor already in the cache stays as it is (checked: sha256 of each before and after); the model is run over
the cached splits again and must predict exactly the cached classes; the stored logits must give back the cached
predictions and confidences up to float16 rounding. Prints one JSON line per checkpoint. `boostnet evaluate`
writes the logits itself; this is for the caches shipped before it did.
"""
import hashlib
import json
import sys

import torch

from boostnet_core.checkpoint import CACHE, load_tensors
from boostnet_core.evaluation import add_logits_to_cache, load_cache


def digests(folder) -> dict[str, str]:
    tensors = load_tensors(folder / CACHE)
    return {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in tensors.items()}


def main(folders):
    from pathlib import Path
    for folder in map(Path, folders):
        before = digests(folder)
        gaps = add_logits_to_cache(folder)
        after = digests(folder)
        kept = all(after.get(k) == v for k, v in before.items())
        report = {"checkpoint": str(folder), "tensors_unchanged": kept, "unchanged": sorted(before),
                  "added": sorted(set(after) - set(before)), "fresh_vs_cached_confidence_max_abs": gaps}
        for name, p in load_cache(folder).items():
            conf, pred = p.logits.float().softmax(-1).max(-1)
            report[f"{name}_fp16_argmax_equal_share"] = float((pred == p.prediction).double().mean())
            report[f"{name}_fp16_confidence_max_abs"] = float((conf - p.confidence).abs().max())
        print(json.dumps(report))
        if not kept:
            sys.exit(f"{folder}: a cached tensor changed")


if __name__ == "__main__":
    main(sys.argv[1:])
