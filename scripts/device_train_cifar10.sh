#!/usr/bin/env bash
# Train the shipped CIFAR-10 models and the four reference-recipe runs on one GPU, side by side.
# Run from the repository root on a machine with the packed data in .gpu/ (scripts/pack_image_folder.py);
# results go to $OUT (the device tool) or ./runs/device. Every run checkpoints each epoch and can be resumed.
set -u
OUT=${OUT:-runs/device}
LIMIT=${LIMIT:-480}          # seconds the trainings may run before they are stopped (the last epoch is kept)
RESUME=${RESUME:-}           # set: continue the shipped runs saved in runs/gpu (no reference runs)
mkdir -p "$OUT"
DATA=../shared/data/cifar10-jpg
if ! mkdir -p "$DATA" 2>/dev/null; then DATA=/tmp/cifar10-jpg; fi
[ -d "$DATA/train" ] || python3 scripts/pack_image_folder.py unpack .gpu/cifar10 "$DATA"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
W=runs/gpu
mkdir -p $W
COMMON="--dataset folder --data-root $DATA --preset cifar10 --batch-size 64 --lr 0.1 --momentum 0.9 --weight-decay 1e-4 --schedule cosine --seed 0 --device cuda --quiet"
run() { name=$1; shift; timeout "$LIMIT" python3 -m boostnet_core train $COMMON --out "$W/$name" "$@" > "$W/$name.log" 2>&1; echo "$name exit $?" >> "$W/status.txt"; }
# Shipped models: 5,000 validation images held out, 30 epochs.
run cifar10-boostnet --method boostnet --epochs 30 --val-size 5000 ${RESUME:+--resume} &
run cifar10-joint --method joint --epochs 30 --val-size 5000 ${RESUME:+--resume} &
if [ -z "$RESUME" ]; then
# Reference recipe (issue 4): all 50,000 training images, 10 epochs, test top-1 per exit every epoch.
run ref-a-boostnet-rescale --method boostnet --grad-rescale on --epochs 10 --val-size 0 --eval-test &
run ref-b-joint-norescale --method joint --grad-rescale off --epochs 10 --val-size 0 --eval-test &
run ref-c-boostnet-norescale --method boostnet --grad-rescale off --epochs 10 --val-size 0 --eval-test &
run ref-d-joint-rescale --method joint --grad-rescale on --epochs 10 --val-size 0 --eval-test &
fi
wait
cat $W/status.txt
for f in $W/*.log; do echo "== $f"; tail -n 3 "$f"; done
tar -cf "$OUT/shipped-boostnet.tar" -C $W cifar10-boostnet/model.safetensors cifar10-boostnet/model.json cifar10-boostnet/train_log.jsonl
tar -cf "$OUT/shipped-joint.tar" -C $W cifar10-joint/model.safetensors cifar10-joint/model.json cifar10-joint/train_log.jsonl
cp $W/cifar10-boostnet/train_state.safetensors "$OUT/state-boostnet.safetensors"
cp $W/cifar10-joint/train_state.safetensors "$OUT/state-joint.safetensors"
[ -n "$RESUME" ] || tar -cf "$OUT/reference.tar" -C $W $(cd $W && ls -d ref-*/model.json ref-*/train_log.jsonl ref-*.log cifar10-*.log status.txt 2>/dev/null)
ls -la "$OUT"
