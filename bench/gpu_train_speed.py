"""GPU benchmark: training images/s per process when 1, 4 and 8 trainings share one GPU, for the trainer's paths.

Each process trains the `cifar10` preset (BoostNet, gradient rescaling on) on in-memory batches that live on the GPU
(as the trainer keeps in-memory data sets), through the trainer's own forward (`training.speed_options`):
"eager" (fp32), "channels_last", "compiled" (channels-last + torch.compile with CUDA graphs, mode "reduce-overhead")
and "bf16". The processes start together and measure the same number of steps after warming up (compiling).
Prints one JSON object: images/s per process and in total, per path and process count. Needs a CUDA device; on a
machine without one it says so and exits with status 2.
Usage: python bench/gpu_train_speed.py [--processes 1 4 8] [--paths eager compiled bf16] [--steps 200]
"""
import argparse
import json
import subprocess
import sys
import time

import torch

PATHS = {"eager": {}, "channels_last": {"channels_last": True},
         "compiled": {"channels_last": True, "compile": True}, "bf16": {"channels_last": True, "precision": "bf16"}}


def worker(path: str, steps: int, batch: int, start_at: float) -> None:
    from boostnet_core import create_model
    from boostnet_core.boosting import boosting_loss
    from boostnet_core.training import _HeadLogits, speed_options
    device = torch.device("cuda")
    options = PATHS[path]
    torch.manual_seed(0)
    model = create_model("cifar10", method="boostnet", grad_rescale=True).to(device).train()
    if options.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    forward = speed_options(_HeadLogits(model), device, **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        loss, _ = boosting_loss(forward(x), y, model.reweight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(5):  # warm-up: compiles and records the CUDA graph on the compiled path
        step()
    torch.cuda.synchronize()
    warmup = time.perf_counter() - t0
    while time.time() < start_at:  # every process measures over the same stretch of time
        time.sleep(0.01)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    print(json.dumps({"images_per_s": steps * batch / (time.perf_counter() - t0), "warmup_s": warmup}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--paths", nargs="+", default=["eager", "compiled", "bf16"], choices=sorted(PATHS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-s", type=float, default=90.0, help="time allowed for every process to compile")
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "START_AT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.steps, args.batch_size, float(args.worker[1]))
        return
    if not torch.cuda.is_available():
        print(json.dumps({"benchmark": "GPU training images/s", "error": "no CUDA device on this machine"}))
        sys.exit(2)
    results = {}
    for path in args.paths:
        for n in args.processes:
            start_at = time.time() + args.warmup_s
            procs = [subprocess.Popen([sys.executable, __file__, "--steps", str(args.steps), "--batch-size",
                                       str(args.batch_size), "--worker", path, str(start_at)],
                                      stdout=subprocess.PIPE, text=True) for _ in range(n)]
            outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            per = [o["images_per_s"] for o in outs]
            results[f"{path}/{n}"] = {"processes": n, "images_per_s_per_process": round(sum(per) / n, 1),
                                      "images_per_s_total": round(sum(per), 1),
                                      "warmup_s_max": round(max(o["warmup_s"] for o in outs), 1)}
    print(json.dumps({"benchmark": "GPU training images/s", "device": torch.cuda.get_device_name(0),
                      "preset": "cifar10", "batch_size": args.batch_size, "results": results}))


if __name__ == "__main__":
    main()
