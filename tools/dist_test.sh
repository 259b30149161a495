#!/usr/bin/env bash
# Multi-process evaluation with torchrun.
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py options...]
#   bash tools/dist_test.sh configs/upernet_spatialmamba_t_ade20k.py upernet_t.pth 8 --tta
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as in tools/dist_train.sh.
# PYTHON: see tools/launch_common.sh.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py options...]" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
torchrun_tool test.py "$NPROC" "$CONFIG" "$CHECKPOINT" "$@"
