#!/usr/bin/env bash
# The GPU figures, in one run of under 8 minutes on one GPU (an installed .venv beside it):
#   training in tclib's loop (frame cache, loader workers, cached teachers), bf16, batch 128:
#     ViT-B/32, and ViT-B/16 with activation checkpointing (samples/s, data-wait share, peak memory, MFU);
#   the training loader alone: frames/s at 128 x 12 x 224² for 1, 2, 4, 8 workers;
#   the teacher feature cache: a student step taught online and from the cache, at batch 64;
#   indexing throughput of `tclib index` (videos/s, frames/s, decoding's and the model's share).
# Writes results/benchmarks/gpu/ (OUT=...); the GPU's name is in gpu.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-results/benchmarks/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
timeout 110 "$PY" benchmarks/train_throughput.py --device cuda --precision bf16 --batch 128 \
    --out "$OUT/train_throughput-b32.md"
timeout 150 "$PY" benchmarks/train_throughput.py --device cuda --precision bf16 --batch 128 \
    --model ViT-B-16-quickgelu --grad-checkpointing --out "$OUT/train_throughput-b16.md"
timeout 60 "$PY" benchmarks/loader.py --workers 1 2 4 8 --out "$OUT/loader.md"
timeout 60 "$PY" benchmarks/teacher_cache.py --device cuda --batch 64 --steps 5 --out "$OUT/teacher_cache.md"
timeout 90 "$PY" benchmarks/search.py --parts indexing --device cuda --index-videos 256 --out "$OUT"
echo "GPU figures in $OUT"
