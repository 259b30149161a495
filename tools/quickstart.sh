#!/usr/bin/env bash
# The quick start (README's main command): set up .venv if needed, then train and evaluate
# Spatial-Mamba-T on generated data on this machine's CPU (a few minutes).
#
#   bash tools/quickstart.sh                  # Mask R-CNN: COCO bbox/segm mAP
#   bash tools/quickstart.sh --task seg       # UperNet: mIoU
#   bash tools/quickstart.sh --help           # options (iterations, image size, ...)
# Outputs go to work_dirs/quickstart_{det,seg}/ (loss_curve.png, prediction.png, checkpoint).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" "$ROOT/tools/quickstart.py" "$@"
