#!/usr/bin/env bash
# The MoNuSeg CPU recipe end to end:  tools/misc/monuseg_cpu.sh SRC WORK_DIR
#   1. convert SRC (the MoNuSeg release layout: images/*.tif + annotations/*.xml, matched by stem) to the HW3
#      layout in WORK_DIR/data (kept if already there)
#   2. train configs/monuseg/<recipe> (the bf16 one where the CPU has native bfloat16 units) on the fixed 10/3 image split (val: 3 whole tiles, best by segm AP50 at
#      maxDets 1000), logging every 10 iterations
#   3. print the validation figures, the config path and the best checkpoint path (like `make demo`)
# Environment overrides: MONUSEG_CONFIG, PY, OMP_NUM_THREADS; extra arguments after WORK_DIR go to tools/train.py
# (e.g. --cfg-options train_cfg.max_iters=600).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SRC WORK_DIR [tools/train.py options]" >&2
    exit 2
fi
SRC=$1
WORK_DIR=$2
shift 2
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
if [ ! -x "$PY" ]; then
    echo "monuseg_cpu: $PY not found; run 'make install' first" >&2
    exit 1
fi
# The same 30-minute budget: the bf16 recipe (more iterations) where the CPU has native bfloat16 units (the
# test mmcell's precision switch uses), else the fp32 one.
if [ -z "${MONUSEG_CONFIG:-}" ] && [ "$("$PY" -c 'from mmcell.utils.precision import native_bf16; print(int(native_bf16()))' 2>/dev/null)" = 1 ]; then
    MONUSEG_CONFIG=configs/monuseg/mask-rcnn_r18-tiny_fpn_1xb4-cpu-bf16-2600i_monuseg.py
fi
CONFIG=${MONUSEG_CONFIG:-configs/monuseg/mask-rcnn_r18-tiny_fpn_1xb4-cpu-1400i_monuseg.py}
DATA="$WORK_DIR/data"
# One torch thread per spare core: the data-loading worker needs a core too (see tools/misc/demo.sh).
cores=$(nproc)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores > 1 ? cores - 1 : 1 ))}

start=$(date +%s)
stamp() { echo "[monuseg $(( $(date +%s) - start ))s] $*"; }

if [ ! -d "$SRC" ]; then
    echo "monuseg_cpu: $SRC: not a folder (expected the MoNuSeg release: images/ + annotations/)" >&2
    exit 1
fi

# 1. convert ---------------------------------------------------------------------------------------------------
if [ -d "$DATA/train" ]; then
    stamp "using the converted data in $DATA (delete it to convert again)"
else
    stamp "converting $SRC -> $DATA"
    "$PY" tools/dataset_converters/to_hw3.py --format monuseg "$SRC" "$DATA"
fi

# 2. train -----------------------------------------------------------------------------------------------------
stamp "training $CONFIG (work dir $WORK_DIR)"
train_start=$(date +%s)
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" --data-root "$DATA" "$@" 2>&1 | tee "$WORK_DIR/train.log"
train_s=$(( $(date +%s) - train_start ))

best=$(ls -t "$WORK_DIR"/best_coco_segm_mAP_50_md1000_*.pth 2>/dev/null | head -n 1 || true)
if [ -z "$best" ]; then
    best=$(ls -t "$WORK_DIR"/iter_*.pth | head -n 1)
    stamp "no best checkpoint recorded; using the last one: $best"
fi

# 3. summary ---------------------------------------------------------------------------------------------------
"$PY" - "$WORK_DIR/train.log" <<'PYEOF'
import re
import sys
text = open(sys.argv[1]).read()
last = text.rfind('Iter(val)')
found = dict(re.findall(r'coco/(segm_mAP_50_md1000|segm_mAP_md1000|bbox_mAP_50_md1000)[:=]\s*([-0-9.]+)',
                        text[last:] if last >= 0 else text))
print('\n=== MoNuSeg recipe: last validation (3 held-out tiles) ===')
for key, label in [('segm_mAP_50_md1000', 'segm AP50 (maxDets 1000)'), ('segm_mAP_md1000', 'segm AP (maxDets 1000)'),
                   ('bbox_mAP_50_md1000', 'bbox AP50 (maxDets 1000)')]:
    print(f'{label:26s} {float(found[key]):.3f}' if key in found else f'{label:26s} (not found in the log)')
PYEOF
echo "train time:      ${train_s}s; total: $(( $(date +%s) - start ))s"
echo "config:          $WORK_DIR/$(basename "$CONFIG")"
echo "best checkpoint: $best"
