#!/usr/bin/env bash
# Multi-process training with torchrun (PyTorch DDP through mmengine).
#
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py options...]
#   bash tools/dist_train.sh configs/maskrcnn_spatialmamba_t_coco.py 8 --amp
# Multi-node (run on every node, NODE_RANK 0..NNODES-1):
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 bash tools/dist_train.sh CONFIG 8
# NPROC is the number of GPUs per node. Without CUDA the processes train on CPU with gloo
# (slow; for testing the distributed path). PYTHON defaults to the repository's .venv.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash tools/dist_train.sh CONFIG NPROC [train.py options...]" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG=$1
NPROC=$2
shift 2
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
