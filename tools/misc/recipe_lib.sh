# The common part of the real-data CPU recipes, sourced by tools/misc/{monuseg,consep}_{cpu,cv}.sh (one home):
# argument check, interpreter, threads, conversion (to_hw3.py --format FORMAT), training with the best checkpoint and
# a summary of the last validation, and the cross-validation call.
# The sourcing script sets: RECIPE (log prefix), FORMAT (to_hw3.py --format), SRC_HINT (what SRC must be).
# shellcheck shell=bash

# recipe_init USAGE ARGS...: check "SRC WORK_DIR ...", cd to the repository, set PY, DATA and OMP_NUM_THREADS
recipe_init() {
    local usage=$1
    shift
    if [ $# -lt 2 ]; then
        echo "usage: $0 SRC WORK_DIR $usage" >&2
        exit 2
    fi
    SRC=$1
    WORK_DIR=$2
    cd "$(dirname "$0")/../.."
    PY=${PY:-.venv/bin/python}
    if [ ! -x "$PY" ]; then
        echo "$RECIPE: $PY not found; run 'make install' first" >&2
        exit 1
    fi
    DATA="$WORK_DIR/data"
    # One torch thread per spare core: the data-loading worker needs a core too (see tools/misc/demo.sh).
    local cores
    cores=$(nproc)
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores > 1 ? cores - 1 : 1 ))}
    START=$(date +%s)
}

recipe_stamp() { echo "[$RECIPE $(( $(date +%s) - START ))s] $*"; }

# recipe_convert: SRC -> DATA in the HW3 layout (kept if already there)
recipe_convert() {
    if [ -d "$DATA/train" ]; then
        recipe_stamp "using the converted data in $DATA (delete it to convert again)"
        return
    fi
    if [ ! -d "$SRC" ]; then
        echo "$RECIPE: $SRC: not a folder (expected $SRC_HINT)" >&2
        exit 1
    fi
    recipe_stamp "converting $SRC -> $DATA"
    "$PY" tools/dataset_converters/to_hw3.py --format "$FORMAT" "$SRC" "$DATA"
}

# recipe_train CONFIG BEST_KEY TITLE KEY=LABEL... -- TRAIN_ARGS...: train CONFIG on DATA into WORK_DIR, then print
# the last validation's figures (KEY: a coco/ metric name), the train time, the config and the best checkpoint by
# coco/BEST_KEY (the last checkpoint when none was recorded), last.
recipe_train() {
    local config=$1 best_key=$2 title=$3
    shift 3
    local keys=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do keys+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    mkdir -p "$WORK_DIR"
    recipe_stamp "training $config (work dir $WORK_DIR)"
    local train_start train_s best
    train_start=$(date +%s)
    "$PY" tools/train.py "$config" --work-dir "$WORK_DIR" --data-root "$DATA" "$@" 2>&1 | tee "$WORK_DIR/train.log"
    train_s=$(( $(date +%s) - train_start ))
    best=$(ls -t "$WORK_DIR"/best_coco_"${best_key}"_iter_*.pth 2>/dev/null | head -n 1 || true)
    if [ -z "$best" ]; then
        best=$(ls -t "$WORK_DIR"/iter_*.pth | head -n 1)
        recipe_stamp "no best checkpoint recorded; using the last one: $best"
    fi
    "$PY" - "$WORK_DIR/train.log" "$title" "${keys[@]}" <<'PYEOF'
import re
import sys
text = open(sys.argv[1]).read()
last = text.rfind('Iter(val)')
tail = text[last:] if last >= 0 else text
print(f'\n=== {sys.argv[2]} ===')
for item in sys.argv[3:]:
    key, label = item.split('=', 1)
    found = re.findall(rf'coco/{re.escape(key)}[:=]\s*([-0-9.]+)', tail)
    print(f'{label:26s} {float(found[-1]):.3f}' if found else f'{label:26s} (not found in the log)')
PYEOF
    echo "train time:      ${train_s}s; total: $(( $(date +%s) - START ))s"
    echo "config:          $WORK_DIR/$(basename "$config")"
    echo "best checkpoint: $best"
}

# recipe_cv CONFIG CROSS_VALIDATE_ARGS...: grouped K-fold cross-validation of CONFIG on DATA (log: WORK_DIR/cv.log)
recipe_cv() {
    local config=$1
    shift
    mkdir -p "$WORK_DIR"
    recipe_stamp "cross-validating $config (work dir $WORK_DIR)"
    "$PY" tools/analysis_tools/cross_validate.py "$config" "$DATA" "$WORK_DIR" "$@" 2>&1 | tee -a "$WORK_DIR/cv.log"
}
