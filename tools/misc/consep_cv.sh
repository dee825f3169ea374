#!/usr/bin/env bash
# The CoNSeP validation protocol:  tools/misc/consep_cv.sh SRC WORK_DIR [cross_validate.py options]
#   1. convert SRC (the CoNSeP layout: Images/ + Labels/*.mat, patches train_<image>_<patch>) to WORK_DIR/data
#   2. K-fold cross-validation grouped by source image (a source image's patches never split): one model per fold,
#      scored on the fold's patches: the contest AP50 (class-aware, maxDets 100), the AP50 of each class, and the
#      class-agnostic AP50 / AP (maxDets 1000), AJI, AJI+, PQ (= bPQ), mPQ and the PQ of each class; mean ± std over
#      folds
# Keep the small per-fold JSONs in the repository: --results-dir benchmarks/results/consep_cv/<tag>.
# Screening: --iters 600; folds already done are kept: --only-folds 0 now, --only-folds 1 later.
# Environment overrides: CONSEP_CONFIG, PY, OMP_NUM_THREADS. The common steps: tools/misc/recipe_lib.sh.
set -euo pipefail
RECIPE=consep_cv FORMAT=consep SRC_HINT='the CoNSeP layout: Images/ + Labels/*.mat'
# shellcheck source=tools/misc/recipe_lib.sh
source "$(dirname "$0")/recipe_lib.sh"
recipe_init '[cross_validate.py options: --folds K --iters N --results-dir DIR ...]' "$@"
shift 2
recipe_convert
recipe_cv "${CONSEP_CONFIG:-configs/consep/mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2400i_consep.py}" "$@"
