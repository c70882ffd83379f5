"""Benchmark: the README's test command on a fresh clone with cold caches, as CI and a new user first run it.

Clones this repository's committed HEAD into a temporary folder (the development data beside it, as in a checkout:
../shared is linked when it exists, unless --without-shared-data: a user's clone, where the tests that need the data
skip), gives the run a new empty $HOME (no ~/.cache/boostnet, no browser profile),
runs `python -m pytest -q` there, and prints one JSON object: wall seconds, the summary line, and the slowest tests.
The goal is at most 90 s on 2 idle cores; run it on a quiet machine.
Also the machine's CPU seconds over the run (all cores, from /proc/stat), which move less than wall time with the
VM's phases; --ref runs another commit (the baseline of a comparison, run right before or after).
Usage: python bench/cold_suite.py [--slowest 15] [--without-shared-data] [--ref COMMIT]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent not idle since boot (user, nice, system, irq, softirq), or None."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--slowest", type=int, default=15)
    parser.add_argument("--without-shared-data", action="store_true",
                        help="do not link ../shared beside the clone (a user's clone has no development data)")
    parser.add_argument("--ref", default="HEAD", help="the commit to clone and test (default: HEAD)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-suite-") as folder:
        root = Path(folder)
        subprocess.run(["git", "clone", "-q", str(REPO), str(root / "main")], check=True)
        subprocess.run(["git", "-C", str(root / "main"), "checkout", "-q", args.ref], check=True)
        shared = REPO.parent / "shared"
        linked = shared.is_dir() and not args.without_shared_data
        if linked:
            (root / "shared").symlink_to(shared)
        home = root / "home"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("BOOSTNET_CACHE",)}
        env["HOME"] = str(home)
        busy_at_start = _busy_cpu_seconds()
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              f"--durations={args.slowest}"], cwd=root / "main", env=env, capture_output=True,
                             text=True)
        seconds = time.perf_counter() - start
        busy_at_end = _busy_cpu_seconds()
        cpu_seconds = None if busy_at_start is None or busy_at_end is None else busy_at_end - busy_at_start
    lines = run.stdout.splitlines()
    summary = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "")
    slowest = [line.strip() for line in lines if re.match(r"^\d+\.\d+s (call|setup|teardown)", line)]
    print(json.dumps({"benchmark": "README test command on a fresh clone, cold caches", "seconds": round(seconds, 1),
                      "goal_seconds": 90, "returncode": run.returncode, "summary": summary, "ref": args.ref,
                      "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 1),
                      "shared_data_linked": linked,
                      "cpus": os.cpu_count(), "load_average_1min_after": os.getloadavg()[0], "slowest": slowest}))


if __name__ == "__main__":
    main()
