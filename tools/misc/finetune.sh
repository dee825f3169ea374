#!/usr/bin/env bash
# Fine-tune a trained model on QuPath annotations:  tools/misc/finetune.sh SLIDES_AND_GEOJSON WORK_DIR --from CKPT
#   1. convert SLIDES_AND_GEOJSON (slides + their QuPath exports, matched by stem) with to_hw3.py --format qupath
#      into WORK_DIR/data (kept if already there; its classes.json lists the classes)
#   2. write WORK_DIR/finetune.py: configs/finetune/<recipe> with those classes, the data and load_from=CKPT
#   3. train it (tools/train.py), then print the config and the best checkpoint
# Environment overrides: FINETUNE_CONFIG, PY, FINETUNE_DRY_RUN=1 (stop after step 2); extra arguments after CKPT go
# to tools/train.py (e.g. --cfg-options train_cfg.max_iters=100).
set -euo pipefail

if [ $# -lt 4 ] || [ "$3" != "--from" ]; then
    echo "usage: $0 SLIDES_AND_GEOJSON WORK_DIR --from CKPT [tools/train.py options]" >&2
    exit 2
fi
SRC=$1
WORK_DIR=$2
CKPT=$4
shift 4
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
CONFIG=${FINETUNE_CONFIG:-configs/finetune/mask-rcnn_r18-tiny_fpn_1xb4-cpu-300i_qupath.py}
DATA="$WORK_DIR/data"
for f in "$CKPT" "$CONFIG"; do
    [ -f "$f" ] || { echo "finetune: $f: no such file" >&2; exit 1; }
done
mkdir -p "$WORK_DIR"

if [ -f "$DATA/classes.json" ]; then
    echo "finetune: using the converted data in $DATA (delete it to convert again)"
else
    "$PY" tools/dataset_converters/to_hw3.py --format qupath "$SRC" "$DATA" --no-progress
fi

"$PY" - "$CONFIG" "$DATA" "$CKPT" "$WORK_DIR/finetune.py" <<'PYEOF'
import json
import os.path as osp
import sys

config, data, ckpt, out = sys.argv[1:]
classes = tuple(json.load(open(osp.join(data, 'classes.json')))['classes'])
qupath_dataset = dict(data_root=osp.abspath(data) + '/', metainfo=dict(classes=classes, palette=None),
                      class_agnostic=False)
text = f'''# written by tools/misc/finetune.sh: {osp.basename(config)} on {data} from {ckpt}
_base_ = {osp.abspath(config)!r}
classes = {classes!r}
load_from = {osp.abspath(ckpt)!r}
model = dict(roi_head=dict(bbox_head=dict(num_classes={len(classes)}), mask_head=dict(num_classes={len(classes)})))
train_dataloader = dict(dataset={qupath_dataset!r})
val_dataloader = dict(dataset={qupath_dataset!r})
test_dataloader = dict(dataset={qupath_dataset!r})
'''
open(out, 'w').write(text)
print(f'finetune: {len(classes)} classes {classes} -> {out}')
PYEOF
if [ "${FINETUNE_DRY_RUN:-0}" = "1" ]; then
    echo "config:          $WORK_DIR/finetune.py (dry run: not trained)"
    exit 0
fi

"$PY" tools/train.py "$WORK_DIR/finetune.py" --work-dir "$WORK_DIR" "$@"
best=$(ls -t "$WORK_DIR"/best_*.pth 2>/dev/null | head -n 1 || true)
[ -n "$best" ] || best=$(ls -t "$WORK_DIR"/iter_*.pth | head -n 1)
echo "config:          $WORK_DIR/finetune.py"
echo "best checkpoint: $best"
