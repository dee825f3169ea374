#!/usr/bin/env bash
# Usage: tools/dist_segment_slide.sh NUM_PROCS SLIDE... --config CFG --checkpoint CKPT --out DIR [segment-slide args]
# torchrun ranks share the tiles of each slide (rank r takes every NUM_PROCS-th tile); rank 0 writes the final files.
# gloo on machines without CUDA, nccl with CUDA (one GPU per rank: pass --device cuda). Multi-node: set NNODES,
# NODE_RANK, MASTER_ADDR and PORT as for tools/dist_train.sh; --out must be on a shared file system.
set -euo pipefail
NPROC=$1; shift
NNODES=${NNODES:-1}; NODE_RANK=${NODE_RANK:-0}; PORT=${PORT:-29510}; MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3 )}
THREADS=$(( $(nproc) / NPROC )); [ "$THREADS" -ge 1 ] || THREADS=1
PYTHONPATH="$ROOT:${PYTHONPATH:-}" OMP_NUM_THREADS=${OMP_NUM_THREADS:-$THREADS} exec "$PY" -m torch.distributed.run \
  --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" --master_port="$PORT" \
  --nproc_per_node="$NPROC" -m mmcell.cli segment-slide "$@"
