#!/usr/bin/env bash
# The GPU figures, in one run of under 8 minutes on one GPU (an installed .venv beside it):
#   training throughput: a TeachCLIP student step at ViT-B/32, bf16, batch 120 (samples/s, MFU);
#   the teacher feature cache: a student step taught online and from the cache, at batch 64;
#   indexing throughput of `tclib index` (videos/s, frames/s, decoding's and the model's share).
# Writes results/benchmarks/gpu/ (OUT=...); the GPU's name is in gpu.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-results/benchmarks/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
timeout 200 "$PY" benchmarks/train_throughput.py --device cuda --precision bf16 --batch 120 --steps 10 \
    --out "$OUT/train_throughput.md"
timeout 120 "$PY" benchmarks/teacher_cache.py --device cuda --batch 64 --steps 5 --out "$OUT/teacher_cache.md"
timeout 150 "$PY" benchmarks/search.py --parts indexing --device cuda --index-videos 256 --out "$OUT"
echo "GPU figures in $OUT"
