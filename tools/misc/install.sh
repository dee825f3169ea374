#!/usr/bin/env bash
# Set up .venv with torch, mmcv 2.1.0 (built from its sdist with ops, wheel cached), mmdet, mmengine and mmcell.
#
# Environment knobs:
#   PYTHON=python3          interpreter that creates the venv
#   VENV=.venv              venv path;  VENV_ARGS=--system-site-packages  to reuse a system torch (GPU boxes)
#   TORCH_SPEC=torch==2.13.0  torch to install when the venv has none (e.g. 'torch==2.5.1' + TORCH_INDEX_URL)
#   TORCH_INDEX_URL=...     extra index for TORCH_SPEC (e.g. https://download.pytorch.org/whl/cu121)
#   MMCELL_CACHE=~/.cache/mmcell   wheel cache (mmcv wheels keyed by python tag, torch version, cuda/cpu)
#   MMCV_SDIST=path.tar.gz  build from a local sdist (offline machines)
#   MAX_JOBS=$(nproc)       compiler jobs for the mmcv build
#   MMCELL_OPENVINO=1       also the optional OpenVINO engine (requirements/openvino.txt: --engine openvino)
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
CACHE=${MMCELL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmcell}
MMCV_VERSION=2.1.0
export PIP_CONSTRAINT="$PWD/requirements/constraints.txt"  # keeps setuptools<82 through every install
t0=$(date +%s)

log() { printf '[install %3ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }
# pip, minus the noise of this machine's empty local indexes; keeps pip's exit code
pipq() { "$PY" -m pip --disable-pip-version-check "$@" 2>&1 | { grep -v -e '^WARNING: Location .* is ignored' || true; }; return "${PIPESTATUS[0]}"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version 2>&1)"
  "$PYTHON" -m venv ${VENV_ARGS:-} "$VENV"
fi
PY="$VENV/bin/python"

if ! "$PY" -c 'import setuptools, ninja, wheel, pkg_resources' 2>/dev/null \
   || ! "$PY" -c 'import setuptools, sys; sys.exit(not 77 <= int(setuptools.__version__.split(".")[0]) < 82)'; then
  log "installing build tools (setuptools<82, wheel, ninja)"
  pipq install -q -r requirements/build.txt
fi

if "$PY" -c 'import torch' 2>/dev/null; then
  log "keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  log "installing $TORCH_SPEC"
  pipq install -q "$TORCH_SPEC" ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
fi

# Cache key: python tag + torch version + cuda version (or cpu).
read -r PY_TAG TORCH_VER CUDA_TAG < <("$PY" -W ignore - <<'PYEOF'
import shutil, sys, torch
cuda = torch.version.cuda if torch.version.cuda and (torch.cuda.is_available() or shutil.which('nvcc')) else None
print(f'cp{sys.version_info[0]}{sys.version_info[1]}', torch.__version__.split('+')[0],
      'cu' + cuda.replace('.', '') if cuda else 'cpu')
PYEOF
)
KEY="$PY_TAG-torch$TORCH_VER-$CUDA_TAG"
WHEEL_DIR="$CACHE/wheels/$KEY"
OPS_CHECK="import mmcv, sys; from mmcv.ops import nms, RoIAlign; sys.exit(mmcv.__version__ != '$MMCV_VERSION')"

if "$PY" -c "$OPS_CHECK" 2>/dev/null; then
  log "mmcv $MMCV_VERSION with ops already installed ($KEY)"
else
  wheel=$(ls "$WHEEL_DIR"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    mkdir -p "$WHEEL_DIR"
    build_log="$WHEEL_DIR/build.log"
    tmp=$(mktemp -d)
    export MAX_JOBS=${MAX_JOBS:-$(nproc)} MMCV_WITH_OPS=1
    if [ "$CUDA_TAG" != cpu ]; then export FORCE_CUDA=1; fi
    log "building mmcv $MMCV_VERSION with ops for $KEY (MAX_JOBS=$MAX_JOBS${FORCE_CUDA:+, FORCE_CUDA=1}); ~10 min on 2 cores, log: $build_log"
    src=${MMCV_SDIST:-mmcv==$MMCV_VERSION}
    if ! "$PY" -m pip --disable-pip-version-check wheel --no-build-isolation --no-deps --no-binary mmcv \
         "$src" -w "$tmp" >"$build_log" 2>&1; then
      echo "ERROR: mmcv $MMCV_VERSION build failed for $KEY. Last lines of $build_log:" >&2
      grep -v '^WARNING: Location' "$build_log" | tail -n 25 >&2
      echo "Full log: $build_log" >&2
      exit 1
    fi
    built=$(ls "$tmp"/mmcv-*.whl | head -n1)
    mv "$built" "$WHEEL_DIR/"  # same filesystem in the usual case; the wheel appears whole
    wheel="$WHEEL_DIR/$(basename "$built")"
    rm -rf "$tmp"
    log "built and cached $wheel"
  else
    log "using cached $wheel"
  fi
  pipq install -q --no-deps --force-reinstall "$wheel"
fi

log "installing requirements.txt"
pipq install -q -r requirements.txt
pipq install -q --no-deps --no-build-isolation -e .
if [ "${MMCELL_OPENVINO:-0}" = 1 ]; then
  log "installing requirements/openvino.txt (the optional OpenVINO engine)"
  torch_before=$("$PY" -c 'import torch; print(torch.__version__)')
  pipq install -q -r requirements/openvino.txt
  torch_after=$("$PY" -c 'import torch; print(torch.__version__)')
  [ "$torch_before" = "$torch_after" ] || { echo "ERROR: requirements/openvino.txt changed torch $torch_before -> $torch_after" >&2; exit 1; }
fi

if ! "$PY" -c "$OPS_CHECK" ; then
  echo "ERROR: mmcv ops do not import after install (python: $PY)" >&2
  exit 1
fi
"$PY" -c "import mmcell, mmdet, mmcv, torch; print('[install] ok: torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmcell', mmcell.__version__)"
log "done"
