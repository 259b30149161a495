#!/usr/bin/env bash
# Multi-process evaluation with torchrun.
#
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC [tools/test.py options...]
#   bash tools/dist_test.sh configs/upernet_spatialmamba_t_ade20k.py upernet_t.pth 8 --tta
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as in tools/dist_train.sh.
# PYTHON: see tools/launch_common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
require_args 3 "CONFIG CHECKPOINT NPROC [test.py options...]" "$@"
# torchrun_tool takes NPROC first: CONFIG, CHECKPOINT and the options go on to test.py.
torchrun_tool test.py "$3" "$1" "$2" "${@:4}"
