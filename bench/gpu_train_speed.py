"""GPU benchmark: training images/s per process when 1, 4 and 8 trainings share one GPU, for the trainer's paths.

Each process trains the `cifar10` preset (BoostNet, gradient rescaling on) on in-memory batches that live on the GPU
(as the trainer keeps in-memory data sets), through the trainer's own forward (`training.speed_options`):
"eager" (fp32), "channels_last", "compiled" (channels-last + torch.compile with CUDA graphs, mode "reduce-overhead")
and "bf16". Every process warms up (compiles, records its CUDA graph), says so, and waits; when all are ready they
measure the same number of steps together, so a configuration costs its compile time plus the measured steps.
Prints one JSON object: images/s per process and in total, per path and process count. Needs a CUDA device; on a
machine without one it says so and exits with status 2.
Usage: python bench/gpu_train_speed.py [--processes 1 4 8] [--paths eager compiled bf16] [--steps 200]
       python bench/gpu_train_speed.py --device cpu --processes 1 2 --paths eager --steps 2   # dry run
"""
import argparse
import json
import subprocess
import sys
import time

import torch

PATHS = {"eager": {}, "channels_last": {"channels_last": True},
         "compiled": {"channels_last": True, "compile": True}, "bf16": {"channels_last": True, "precision": "bf16"}}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def worker(path: str, steps: int, batch: int, device: str) -> None:
    from boostnet_core import create_model
    from boostnet_core.training import train_step, training_forward
    device = torch.device(device)
    options = PATHS[path]
    torch.manual_seed(0)
    model = create_model("cifar10", method="boostnet", grad_rescale=True).to(device).train()
    if options.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    forward = training_forward(model, device, **options)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step():
        train_step(forward, opt, x, y, model.reweight)
    t0 = time.perf_counter()
    for _ in range(5):  # warm-up: compiles and records the CUDA graph on the compiled path
        step()
    synchronize(device)
    warmup = time.perf_counter() - t0
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's "go", once every process is ready: all measure the same stretch of time
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    print(json.dumps({"images_per_s": steps * batch / (time.perf_counter() - t0), "warmup_s": warmup}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--paths", nargs="+", default=["eager", "compiled", "bf16"], choices=sorted(PATHS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to check the script itself (a dry run)")
    parser.add_argument("--worker", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.batch_size, args.device)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"benchmark": "GPU training images/s", "error": "no CUDA device on this machine"}))
        sys.exit(2)
    results = {}
    for path in args.paths:
        for n in args.processes:
            procs = [subprocess.Popen([sys.executable, __file__, "--steps", str(args.steps), "--batch-size",
                                       str(args.batch_size), "--device", args.device, "--worker", path],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(n)]
            for p in procs:  # wait until every process has warmed up
                if p.stdout.readline().strip() != "ready":
                    sys.exit(f"a {path} training process failed while warming up (exit {p.wait()})")
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
            per = [o["images_per_s"] for o in outs]
            results[f"{path}/{n}"] = {"processes": n, "images_per_s_per_process": round(sum(per) / n, 1),
                                      "images_per_s_total": round(sum(per), 1),
                                      "warmup_s_max": round(max(o["warmup_s"] for o in outs), 1)}
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else args.device
    print(json.dumps({"benchmark": "GPU training images/s", "device": name,
                      "preset": "cifar10", "batch_size": args.batch_size, "results": results}))


if __name__ == "__main__":
    main()
