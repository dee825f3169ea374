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
# Environment overrides: MONUSEG_CONFIG, PY, OMP_NUM_THREADS. The common steps: tools/misc/recipe_lib.sh.
set -euo pipefail
RECIPE=monuseg_cv FORMAT=monuseg SRC_HINT='the MoNuSeg release: images/ + annotations/'
# shellcheck source=tools/misc/recipe_lib.sh
source "$(dirname "$0")/recipe_lib.sh"
recipe_init '[cross_validate.py options: --folds K --iters N --test-scales S ...]' "$@"
shift 2
recipe_convert
recipe_cv "${MONUSEG_CONFIG:-configs/monuseg/mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py}" "$@"
