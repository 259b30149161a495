#!/usr/bin/env bash
# Training on a Slurm cluster: srun starts one task per GPU, each runs tools/train.py with
# --launcher slurm (mmengine reads the rank, world size and master node from Slurm).
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#       bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py options...]
#   GPUS=16 bash tools/slurm_train.sh gpu sm_t configs/maskrcnn_spatialmamba_t_coco.py work_dirs/sm_t
#
# The interface of mmdet's and mmseg's tools/slurm_train.sh. GPUS: tasks in all (default 8);
# GPUS_PER_NODE: tasks and GPUs per node (default 8); SRUN_ARGS: more srun options, e.g.
# "--quotatype=auto". WORK_DIR defaults to work_dirs/<config name>. MASTER_PORT: the port the
# tasks meet at on the first node (default 29500; set another for a second job on the same
# nodes). PYTHON: see tools/launch_common.sh (on a cluster, a Python every node can run).
# Without CUDA the tasks run on CPU with gloo (for testing the distributed path).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
require_args 3 "PARTITION JOB_NAME CONFIG [WORK_DIR] [train.py options...]" "$@"
# A fourth argument that is not an option is WORK_DIR, passed on as --work-dir.
if [ $# -gt 3 ] && [[ $4 != -* ]]; then
    srun_tool "$1" "$2" train.py "$3" --work-dir "$4" "${@:5}"
else
    srun_tool "$1" "$2" train.py "${@:3}"
fi
