"""Check: the fast inference path against the eager model on the shipped models' whole test splits.

For every checkpoint: the largest difference of any exit logit, whether every exit's prediction is identical, and
whether the exits taken are identical at a range of thresholds (one per exit as fitted to budgets on the validation
split where there is one, plus single thresholds 0.5-0.99; assigned from each model's confidences, and by real early
exit at threshold 0.9). Prints one JSON object.
Usage: python bench/fast_inference_check.py [--data-root ../shared/data/cifar10-jpg] [CHECKPOINT ...]
"""
import argparse
import json
import sys
from pathlib import Path

import torch

from boostnet_core import load_model
from boostnet_core.boosting import ensemble
from boostnet_core.data import load_dataset, normalize
from boostnet_core.early_exit import predict_early
from boostnet_core.evaluation import assign_exits, load_cache
from boostnet_core.thresholds import fit_to_budget
from boostnet_core.engines import ENGINES, prepare_inference
from boostnet_core.factory import input_channels
from boostnet_core.models.stepwise import iter_exits


def check(folder: Path, data_root: str | None, engine_name: str, batch: int = 500) -> dict:
    model = load_model(folder).eval()
    data = model.meta["data"]
    root = data_root if data["dataset"] in ("folder", "cifar10") else None
    bundle = load_dataset(data["dataset"], root or data.get("data_root"), model.meta["input_size"],
                          input_channels(model.meta), val_size=data["val_size"], split_seed=data["split_seed"])
    x_all = normalize(bundle.test.images, model.meta["mean"], model.meta["std"])
    engine = prepare_inference(model, engine_name)
    thresholds = [[t] * model.num_exits for t in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)]
    val = load_cache(folder).get("val")
    if val is not None:
        thresholds += [fit_to_budget(val, model.macs, s * model.macs[-1]).tolist() for s in (0.35, 0.5, 0.7, 0.85)
                       if s * model.macs[-1] > model.macs[0]]
    worst, same_predictions, same_exits = 0.0, True, True
    with torch.inference_mode():
        for x in x_all.split(batch):
            fast = ensemble(engine.head_logits(x), model.reweight)   # exit logits F_1..F_N
            eager = ensemble([s.head_logits for s in iter_exits(model.backbone, x)], model.reweight)
            worst = max(worst, max(float((a - b).abs().max()) for a, b in zip(fast, eager)))
            same_predictions &= all(torch.equal(a.argmax(-1), b.argmax(-1)) for a, b in zip(fast, eager))
            conf_fast = torch.stack([f.softmax(-1).max(-1).values for f in fast])
            conf_eager = torch.stack([f.softmax(-1).max(-1).values for f in eager])
            for t in thresholds:   # the exits every threshold setting assigns, from either model's confidences
                same_exits &= torch.equal(assign_exits(conf_fast, t), assign_exits(conf_eager, t))
            t = thresholds[3]      # and real early exit itself, at one setting
            same_exits &= torch.equal(predict_early(model, x, t, engine=engine).exit_index,
                                      predict_early(model, x, t, fast=False).exit_index)
    return {"checkpoint": str(folder), "engine": engine.describe(), "test_images": len(x_all), "thresholds_checked": len(thresholds),
            "max_abs_logit_difference": worst, "exit_predictions_identical": same_predictions,
            "exits_identical": same_exits}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--data-root", default="../shared/data/cifar10-jpg")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engine", choices=ENGINES, default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folders = [Path(c) for c in args.checkpoints] or sorted(p.parent for p in Path("checkpoints").glob("*/model.safetensors"))
    results = []
    for f in folders:
        results.append(check(f, args.data_root, args.engine))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"check": "fast inference vs eager, whole test splits", "models": results,
                      "all_exits_identical": all(r["exits_identical"] for r in results),
                      "target": "max_abs_logit_difference <= 1e-4 and exits_identical for every model"}))


if __name__ == "__main__":
    main()
