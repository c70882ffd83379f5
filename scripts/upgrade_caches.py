"""Bring the evaluation caches of checkpoints evaluated by an earlier version up to date: float32 exit logits F_k
and the SHA-256 of the weights they were computed from (evaluation.upgrade_cache).

    python scripts/upgrade_caches.py checkpoints/cifar10-boostnet ...   # CIFAR-10 needs ../shared/data/cifar10-jpg
Every cached confidence, prediction, top-5 hit and label stays as it is (checked: sha256 of each before and after);
the model is run over the cached splits again and must predict exactly the cached classes; the stored logits must
give back the cached predictions. Prints one JSON line per checkpoint. `boostnet evaluate` writes both itself; this
is for the caches shipped before it did.
"""
import hashlib
import json
import sys
from pathlib import Path

from boostnet_core.checkpoint import CACHE, load_tensors
from boostnet_core.evaluation import load_cache, upgrade_cache

KEPT = ("confidence", "prediction", "top5", "labels")


def digests(folder: Path) -> dict[str, str]:
    tensors = load_tensors(folder / CACHE)
    return {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in tensors.items()
            if k.split(".")[-1] in KEPT}


def main(folders):
    for folder in map(Path, folders):
        before = digests(folder)
        gaps = upgrade_cache(folder)
        after = digests(folder)
        report = {"checkpoint": str(folder), "tensors_unchanged": after == before, "unchanged": sorted(before),
                  "fresh_vs_cached_confidence_max_abs": gaps}
        for name, p in load_cache(folder).items():
            if p.logits is not None:
                conf, pred = p.logits.softmax(-1).max(-1)
                report[f"{name}_logits_argmax_equal_share"] = float((pred == p.prediction).double().mean())
                report[f"{name}_logits_confidence_max_abs"] = float((conf - p.confidence).abs().max())
        print(json.dumps(report, allow_nan=False))
        if after != before:
            sys.exit(f"{folder}: a cached tensor changed")


if __name__ == "__main__":
    main(sys.argv[1:])
