#!/usr/bin/env bash
# Multi-process evaluation with torchrun.
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py options...]
#   bash tools/dist_test.sh configs/upernet_spatialmamba_t_ade20k.py upernet_t.pth 8 --tta
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as in tools/dist_train.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py options...]" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
exec "$PYTHON" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
