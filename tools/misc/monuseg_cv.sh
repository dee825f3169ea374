#!/usr/bin/env bash
# The MoNuSeg validation protocol:  tools/misc/monuseg_cv.sh SRC WORK_DIR [cross_validate.py options]
#   1. convert SRC (the MoNuSeg release: images/*.tif + annotations/*.xml) to the HW3 layout in WORK_DIR/data
#      (kept if already there)
#   2. organ-grouped K-fold cross-validation of the recipe (tools/analysis_tools/cross_validate.py): one model per
#      fold trained on the other organs, scored on the fold's tiles (AP50 / AP at maxDets 1000, AJI, AJI+, PQ);
#      mean ± std over folds in WORK_DIR/cv_summary.{json,md}
# Screening: --iters 300 (the recipe's schedule compressed); test settings: --test-scales 1.25 1.0 --mask-thrs 0.4.
# Folds already done are kept: --only-folds 0 1 now, --only-folds 2 3 later; --results-dir
# benchmarks/results/monuseg_cv/TAG keeps them as small committed files (fold<k>.json), compared across configs by
# tools/analysis_tools/cross_validate.py --compare benchmarks/results/monuseg_cv --reference TAG.
# Environment overrides: MONUSEG_CONFIG, PY, OMP_NUM_THREADS.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SRC WORK_DIR [cross_validate.py options: --folds K --iters N --test-scales S ...]" >&2
    exit 2
fi
SRC=$1
WORK_DIR=$2
shift 2
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
CONFIG=${MONUSEG_CONFIG:-configs/monuseg/mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py}
DATA="$WORK_DIR/data"
# One torch thread per spare core: the data-loading worker needs a core too (as monuseg_cpu.sh).
cores=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores > 1 ? cores - 1 : 1 ))}

if [ ! -x "$PY" ]; then
    echo "monuseg_cv: $PY not found; run 'make install' first" >&2
    exit 1
fi
if [ ! -d "$DATA/train" ]; then
    if [ ! -d "$SRC" ]; then
        echo "monuseg_cv: $SRC: not a folder (expected the MoNuSeg release: images/ + annotations/)" >&2
        exit 1
    fi
    echo "[monuseg_cv] converting $SRC -> $DATA"
    "$PY" tools/dataset_converters/to_hw3.py --format monuseg "$SRC" "$DATA"
fi
echo "[monuseg_cv] cross-validating $CONFIG (work dir $WORK_DIR)"
"$PY" tools/analysis_tools/cross_validate.py "$CONFIG" "$DATA" "$WORK_DIR" "$@" 2>&1 | tee -a "$WORK_DIR/cv.log"
