#!/usr/bin/env bash
# The CoNSeP 4-class CPU recipe end to end:  tools/misc/consep_cpu.sh SRC WORK_DIR [tools/train.py options]
#   1. convert SRC (the HoVer-Net / CoNSeP layout: Images/*.png|jpg|tif + Labels/*.mat, e.g. 256 px patches named
#      train_<image>_<patch>) to the HW3 layout in WORK_DIR/data with CoNSeP's merged 4 classes (kept if there)
#   2. train configs/consep/<recipe> (other, inflammatory, epithelial, spindle; val: the patches of 2 source
#      images, best by the contest's class-aware segm AP50 at maxDets 100), logging every 10 iterations
#   3. print the validation figures, the config path and the best checkpoint path (like monuseg_cpu.sh)
# Environment overrides: CONSEP_CONFIG, PY, OMP_NUM_THREADS; extra arguments after WORK_DIR go to tools/train.py
# (e.g. --cfg-options train_cfg.max_iters=600). The common steps: tools/misc/recipe_lib.sh.
set -euo pipefail
RECIPE=consep FORMAT=consep SRC_HINT='the CoNSeP layout: Images/ + Labels/*.mat'
# shellcheck source=tools/misc/recipe_lib.sh
source "$(dirname "$0")/recipe_lib.sh"
recipe_init '[tools/train.py options]' "$@"
shift 2
CONFIG=${CONSEP_CONFIG:-configs/consep/mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2400i_consep.py}

recipe_convert
recipe_train "$CONFIG" segm_mAP_50 'CoNSeP recipe: last validation (2 held-out source images)' \
    'segm_mAP_50=contest AP50 (4 classes)' 'segm_mAP=contest AP (4 classes)' \
    'segm_other_AP50=AP50 other' 'segm_inflammatory_AP50=AP50 inflammatory' \
    'segm_epithelial_AP50=AP50 epithelial' 'segm_spindle_AP50=AP50 spindle' -- "$@"
