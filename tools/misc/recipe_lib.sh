# The common part of the real-data CPU recipes, sourced by tools/misc/{monuseg,consep}_{cpu,cv}.sh (one home):
# argument check, interpreter, threads, conversion (to_hw3.py --format FORMAT), synthetic extra training data,
# training with the best checkpoint and a summary of the last validation, and the cross-validation call.
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

# recipe_synthetic N: N synthetic training images in WORK_DIR/synthetic-N (sets SYNTHETIC to that folder), drawn by
# tools/dataset_converters/make_synthetic_hw3.py with the arguments the CV protocol screened (256 px, every nucleus
# annotated, seed 0). Drawn once and kept: a set is used only when complete (its arguments file, written last, and N
# samples with an image); a partial or damaged one is drawn again whole (into a .partial folder, moved in at the end).
recipe_synthetic() {
    local n=$1 out="$WORK_DIR/synthetic-$1" train="$WORK_DIR/synthetic-$1/train"
    local args=(--num-train "$n" --num-test 1 --seed 0 --min-size 256 --max-size 256 --keep-border)
    SYNTHETIC=$out
    if [ "$(cat "$out/synthetic_args.txt" 2>/dev/null)" = "${args[*]}" ] \
        && [ "$(find "$train" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | wc -l)" -eq "$n" ] \
        && [ "$(find "$train" -mindepth 2 -maxdepth 2 -name image.tif -size +0 2>/dev/null | wc -l)" -eq "$n" ]; then
        recipe_stamp "using the $n synthetic training images in $out"
        return
    fi
    if [ -e "$out" ]; then
        recipe_stamp "$out is not a complete set of $n synthetic images: drawing it again"
    fi
    rm -rf "$out" "$out.partial"
    recipe_stamp "drawing $n synthetic training images (256 px) into $out"
    "$PY" tools/dataset_converters/make_synthetic_hw3.py "$out.partial" "${args[@]}"
    echo "${args[*]}" > "$out.partial/synthetic_args.txt"
    mv "$out.partial" "$out"
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
