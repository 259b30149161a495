# Sourced by tools/dist_{train,test}.sh and tools/slurm_{train,test}.sh: which Python runs the
# tools, and how torchrun and srun start them.
#
# PYTHON, if set, is used as it is (e.g. the python of your own OpenMMLab environment);
# otherwise the repository's .venv (made by tools/setup_env.sh) if it exists, else python3.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

# require_args N USAGE ARGS...: unless ARGS holds at least N arguments, print
# "usage: bash tools/<this script> USAGE" to stderr and exit with status 2.
require_args() {
    local n=$1 usage=$2
    shift 2
    if [ $# -lt "$n" ]; then
        echo "usage: bash tools/$(basename "$0") $usage" >&2
        exit 2
    fi
}

# torchrun_tool TOOL NPROC ARGS...: run tools/TOOL on NPROC processes of this node with
# torchrun (--launcher pytorch). NNODES, NODE_RANK, MASTER_ADDR and PORT describe the nodes.
torchrun_tool() {
    local tool=$1 nproc=$2
    shift 2
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
        --nproc_per_node="$nproc" \
        "$ROOT/tools/$tool" "$@" --launcher pytorch
}

# srun_tool PARTITION JOB_NAME TOOL ARGS...: run tools/TOOL as a Slurm job step of GPUS tasks,
# GPUS_PER_NODE per node, one GPU each (--launcher slurm: every task reads its rank and the
# master node from Slurm's variables). SRUN_ARGS is split on spaces and passed to srun.
srun_tool() {
    local partition=$1 job_name=$2 tool=$3
    shift 3
    local srun_args=()
    read -r -a srun_args <<< "${SRUN_ARGS:-}"
    exec srun -p "$partition" --job-name="$job_name" \
        --gres="gpu:${GPUS_PER_NODE:-8}" --ntasks="${GPUS:-8}" \
        --ntasks-per-node="${GPUS_PER_NODE:-8}" --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 ${srun_args[@]+"${srun_args[@]}"} \
        "$PYTHON" -u "$ROOT/tools/$tool" "$@" --launcher slurm
}
