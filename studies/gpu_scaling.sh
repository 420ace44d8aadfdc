#!/usr/bin/env bash
# The scaling table on a GPU in one call, for when one is available (not yet run: docs/benchmarks.md says so).
#
#   bash studies/gpu_scaling.sh ../HINT [OUT_DIR]      # ../HINT: the authors' checkout (or their HINT_arch.py)
#
# fp32 and bf16 (autocast) of this tree against the authors' fp32, channels-last (this tree's default), three
# alternating rounds at 512, 1024 and 2048 px; then torch.compile'd, one round (its compile time falls in the
# untimed warm-up). Writes OUT_DIR/scaling.{md,json,png} and OUT_DIR/compiled.{md,json}. Planned to take under
# 8 minutes on one H100; --memory-gib 70 is that card's budget.
set -euo pipefail
cd "$(dirname "$0")/.."
REFERENCE=${1:?usage: bash studies/gpu_scaling.sh PATH_TO_THE_AUTHORS_HINT [OUT_DIR]}
OUT=${2:-gpu-scaling}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
"$PYTHON" studies/scaling.py --device cuda --sizes 512 1024 2048 --precisions fp32 bf16 --reference "$REFERENCE" \
  --rounds 3 --warmup 2 --repeat 3 --memory-gib 70 --json "$OUT/scaling.json" --plot "$OUT/scaling.png" \
  | tee "$OUT/scaling.md"
"$PYTHON" studies/scaling.py --device cuda --sizes 512 1024 2048 --precisions fp32 bf16 --compile \
  --rounds 1 --warmup 2 --repeat 3 --memory-gib 70 --json "$OUT/compiled.json" | tee "$OUT/compiled.md"
