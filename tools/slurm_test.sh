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
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
require_args 4 "PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options...]" "$@"
srun_tool "$1" "$2" test.py "${@:3}"
