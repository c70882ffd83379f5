#!/usr/bin/env bash
# The CIFAR-10 study behind the README's results: several seeds per method, then the report.
# Usage: scripts/study_cifar10.sh DATA_ROOT [JOBS]
#   DATA_ROOT: the CIFAR-10 image folder (DATA_ROOT/{train,test}/<class>/*.jpg); JOBS: runs at a time (default 2).
# Every step can be interrupted and started again: finished runs are skipped, interrupted ones resume exactly.
set -euo pipefail
DATA=${1:?usage: scripts/study_cifar10.sh DATA_ROOT [JOBS]}
JOBS=${2:-2}
cd "$(dirname "$0")/.."
RECIPE="--dataset folder --data-root $DATA --preset cifar10 --batch-size 64 --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --schedule cosine"

# 1. The 10-epoch reference recipe, the paper's pair: (a) BoostNet with gradient rescaling, (b) joint without.
boostnet study run checkpoints/study/cifar10-ref10 --variants boostnet:on joint:off --seeds 0 1 2 --jobs "$JOBS" -- \
    $RECIPE --epochs 10 --val-size 0 --eval-test
# 2. The shipped 30-epoch recipe, seeds 1 and 2 (seed 0 is the shipped cifar10-boostnet / cifar10-joint pair),
#    compiled (--compile: the same fp32 maths, rounded differently; 1.36x the eager step on one CPU thread). Seed 1's
#    first epochs ran eager, for both methods (each run's model.json lists how it was resumed).
boostnet study run checkpoints/study/cifar10-30ep --variants boostnet:on joint:off --seeds 1 2 --jobs "$JOBS" -- \
    $RECIPE --epochs 30 --val-size 5000 --compile
# 3. As time allows: (c) BoostNet without rescaling and (d) joint with it, 10 epochs; BoostNet without rescaling,
#    30 epochs, seeds 1 and 2 (seed 0 is the shipped cifar10-boostnet-norescale).
if [ "${STUDY_EXTRA:-0}" = 1 ]; then
  boostnet study run checkpoints/study/cifar10-ref10 --variants boostnet:off joint:on --seeds 0 1 2 --jobs "$JOBS" -- \
      $RECIPE --epochs 10 --val-size 0 --eval-test
  boostnet study run checkpoints/study/cifar10-30ep --variants boostnet:off --seeds 1 2 --jobs "$JOBS" -- \
      $RECIPE --epochs 30 --val-size 5000
fi

# Ship the evidence lean: every run keeps model.json, evaluation.json, the per-sample cache and its log; weights only
# for seed 0 (training states are never committed).
find checkpoints/study -name model.safetensors -path '*-seed[1-9]*' -delete

# 4. The report (tables, plot) that the README and the app read; its tables are copied into the README.
boostnet study report checkpoints/study checkpoints/cifar10-boostnet checkpoints/cifar10-joint \
    checkpoints/cifar10-boostnet-norescale checkpoints/mnist5k-boostnet checkpoints/mnist5k-joint --out assets/report
python scripts/results.py --readme
