#!/usr/bin/env bash
# Multi-process training with torchrun (NCCL on GPUs, gloo on CPU-only machines).
#   tools/dist_train.sh NUM_PROCESSES options/train/X.yml [BasicSR flags, e.g. --auto_resume]
# PYTHON picks the interpreter (default: python; torchrun is this module).
# Multi-node (static rendezvous, no restarts): run the same command on every node with NNODES, NODE_RANK,
# MASTER_ADDR and MASTER_PORT set. With restarts after a lost worker: torchrun with c10d, docs/training.md.
set -euo pipefail
NPROC=$1
OPT=$2
shift 2
exec "${PYTHON:-python}" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" --nproc_per_node="$NPROC" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-4321}" \
    "$(dirname "$0")/train.py" -opt "$OPT" --launcher pytorch "$@"
