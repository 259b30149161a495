#!/usr/bin/env bash
# Evaluation on a Slurm cluster: srun starts one task per GPU, each runs tools/test.py with
# --launcher slurm.
#
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] \
#       bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options...]
#   GPUS=8 bash tools/slurm_test.sh gpu test_t configs/upernet_spatialmamba_t_ade20k.py upernet_t.pth --tta
#
# The interface of mmdet's and mmseg's tools/slurm_test.sh; the variables as in
# tools/slurm_train.sh.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options...]" >&2
    exit 2
fi
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
PARTITION=$1
JOB_NAME=$2
shift 2
srun_tool "$PARTITION" "$JOB_NAME" test.py "$@"
