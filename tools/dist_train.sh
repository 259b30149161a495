#!/usr/bin/env bash
# Multi-process training with torchrun (PyTorch DDP through mmengine).
#
#   bash tools/dist_train.sh CONFIG NPROC [tools/train.py options...]
#   bash tools/dist_train.sh configs/maskrcnn_spatialmamba_t_coco.py 8 --amp
# Multi-node (run on every node, NODE_RANK 0..NNODES-1):
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 bash tools/dist_train.sh CONFIG 8
# NPROC is the number of GPUs per node. Without CUDA the processes train on CPU with gloo
# (slow; for testing the distributed path). PYTHON: see tools/launch_common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
require_args 2 "CONFIG NPROC [train.py options...]" "$@"
# torchrun_tool takes NPROC first: CONFIG and the options go on to train.py.
torchrun_tool train.py "$2" "$1" "${@:3}"
