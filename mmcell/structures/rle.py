"""The one home of COCO run-length encoding in mmcell: decoding, encoding, and the dict forms the tools pass around.

Decoding: ``pycocotools.mask.decode`` writes every pixel of every (H, W) mask and returns an (H, W, N) Fortran array
that must be transposed and copied to build mmdet's (N, H, W) ``BitmapMasks``. For hundreds of small nuclei that is
mostly zeros being written twice. Here the counts string is decoded with numpy (:func:`rle_counts`, :func:`rle_runs`)
and only the foreground pixels are set (:func:`rles_to_bitmaps`), so the cost follows the number of nucleus pixels.

Encoding: :func:`runs_to_rle` builds an RLE from the column-major linear indices of a mask's pixels, so a nucleus is
encoded from its own pixels (:func:`crop_rle`: a crop placed in a big image; :func:`crops_run_lengths`: a stack of
crops at once, the models' mask paste) without a full-size bitmap; :func:`rect_rles` fills boxes in closed form;
:func:`counts_to_rles` compresses run lengths; :func:`encode_mask` / :func:`masks_to_rles` encode dense masks one at
a time. Nothing else in mmcell calls pycocotools' encoders.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Sequence, Tuple, Union

import numpy as np
import pycocotools.mask as mask_utils


def rle_counts(counts: Union[str, bytes, Sequence[int]], strict: bool = False) -> np.ndarray:
    """Run lengths (zeros, ones, zeros, ...) of a COCO RLE ``counts`` (compressed string or plain list).

    Vectorised port of pycocotools' ``rleFrString``: 5-bit groups with a continuation bit, sign-extended,
    and from the fourth count on each value is stored as a difference to the count two places before.

    Args:
        counts: the ``counts`` of an RLE.
        strict: raise ``ValueError`` for a string pycocotools could not have written (characters outside
            '0'..'o', an unterminated last value, a value longer than 64 bits, negative runs) instead of decoding
            what is there; used to validate submissions.
    """
    if not isinstance(counts, (str, bytes)):
        return np.asarray(counts, dtype=np.int64)
    raw = counts.encode('ascii') if isinstance(counts, str) else counts  # non-ASCII: UnicodeEncodeError
    if not raw:
        return np.zeros(0, np.int64)
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if strict and (c.min() < 0 or c.max() > 63 or c[-1] & 0x20):
        raise ValueError('malformed RLE counts string')
    last = (c & 0x20) == 0  # last character of a value
    ends = np.flatnonzero(last)
    starts = np.r_[0, ends[:-1] + 1]
    if strict and (ends - starts).max() > 12:  # longer than any 64-bit value the encoder writes
        raise ValueError('malformed RLE counts string')
    group = np.repeat(np.arange(starts.size), ends - starts + 1)
    shift = 5 * (np.arange(c.size) - starts[group])
    values = np.add.reduceat((c & 0x1F) << shift, starts)
    negative = (c[ends] & 0x10) != 0
    values[negative] -= np.left_shift(1, shift[ends][negative] + 5)
    # cnts[m] += cnts[m - 2] for m > 2: running sums over odd indices and over even indices from 2
    values[1::2] = np.cumsum(values[1::2])
    values[2::2] = np.cumsum(values[2::2])
    if strict and (values < 0).any():
        raise ValueError('malformed RLE counts string: negative run')
    return values


def rle_runs(rle: dict) -> Tuple[np.ndarray, np.ndarray]:
    """Start (column-major linear index) and length of each foreground run of one RLE."""
    counts = rle_counts(rle['counts'])
    ends = np.cumsum(counts)
    ones = counts[1::2]
    starts = ends[0::2][:ones.size]
    keep = ones > 0
    return starts[keep], ones[keep]


def rle_pixels(rle: dict) -> np.ndarray:
    """Column-major linear indices (``x * height + y``) of the foreground pixels of one RLE, ascending."""
    starts, lengths = rle_runs(rle)
    return runs_to_pixels(starts, lengths)


def runs_to_pixels(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Expand runs (start, length) into the linear indices they cover, without a Python loop over pixels."""
    lengths = np.asarray(lengths, np.int64)
    if not lengths.size:
        return np.zeros(0, np.int64)
    offsets = np.repeat(np.asarray(starts, np.int64) - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return offsets + np.arange(int(lengths.sum()))


def rles_to_bitmaps(rles: List[dict], height: int, width: int) -> np.ndarray:
    """Decode RLEs of one image into an (N, H, W) uint8 array, touching only foreground pixels.

    Args:
        rles: COCO RLE dicts (``counts`` as str, bytes or list) of size [height, width].
        height: image height.
        width: image width.
    """
    masks = np.zeros((len(rles), height, width), dtype=np.uint8)
    if not rles:
        return masks
    all_starts, all_lengths, owners = [], [], []
    for n, rle in enumerate(rles):
        if list(rle['size']) != [height, width]:
            raise ValueError(f'RLE size {rle["size"]} differs from image size {[height, width]}')
        s, ln = rle_runs(rle)
        all_starts.append(s)
        all_lengths.append(ln)
        owners.append(np.full(s.size, n, dtype=np.int64))
    starts = np.concatenate(all_starts)
    lengths = np.concatenate(all_lengths)
    owner = np.concatenate(owners)
    total = int(lengths.sum())
    if total == 0:
        return masks
    # linear index of every foreground pixel: run start + position within the run
    run_of_pixel = np.repeat(np.arange(lengths.size), lengths)
    offsets = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    linear = starts[run_of_pixel] + offsets
    masks[owner[run_of_pixel], linear % height, linear // height] = 1
    return masks


def runs_to_rle(index: np.ndarray, height: int, width: int, text: bool = False) -> dict:
    """COCO compressed RLE of the pixels whose column-major (Fortran) linear indices are ``index`` (sorted, unique).

    Args:
        index: linear indices ``x * height + y`` of the foreground pixels, ascending.
        height, width: image size.
        text: ``counts`` as ``str`` (JSON-able, the submission form) instead of pycocotools' ``bytes``.
    """
    index = np.asarray(index, np.int64)
    if not index.size:
        counts = [height * width]
    else:
        breaks = np.flatnonzero(np.diff(index) != 1) + 1
        starts = index[np.r_[0, breaks]]
        ends = index[np.r_[breaks - 1, index.size - 1]] + 1
        runs = np.empty(2 * starts.size + 1, dtype=np.int64)
        runs[0::2] = np.r_[starts, height * width] - np.r_[0, ends]
        runs[1::2] = ends - starts
        if runs[-1] == 0:  # ends at the last pixel: no trailing background run (as pycocotools writes it)
            runs = runs[:-1]
        counts = runs.tolist()
    rle = counts_to_rles([counts], height, width)[0]
    return {'size': [height, width], 'counts': rle['counts'].decode('ascii') if text else rle['counts']}


def counts_to_rles(counts: Sequence[Sequence[int]], height: int, width: int) -> List[dict]:
    """Compressed COCO RLEs (``counts`` as bytes, pycocotools' form) of uncompressed run lengths, one per mask:
    each a sequence (zeros, ones, zeros, ...) summing to ``height * width``."""
    if not len(counts):
        return []
    return mask_utils.frPyObjects([{'size': [height, width], 'counts': c} for c in counts], height, width)


def crops_run_lengths(binary: np.ndarray, regions: np.ndarray, height: int, width: int) -> List[np.ndarray]:
    """COCO run lengths of a stack of crops ``(m, ch, cw)`` placed at ``regions`` (``x0, y0, ...`` per crop) in a
    ``height x width`` image: :func:`crop_rle` for many crops at once, as :func:`counts_to_rles` takes them.

    Run starts/ends are found on the crops in column-major order (COCO's), shifted to full-image positions;
    a run that reaches the image bottom and continues at the top of the next column is merged as COCO does.
    Crop pixels beyond a crop's region must be False (padding of a common crop shape).
    """
    m, ch, cw = binary.shape
    total = height * width
    col = np.zeros((m, cw, ch + 2), dtype=np.int8)
    col[:, :, 1:-1] = binary.transpose(0, 2, 1)
    det, cols, ks = np.nonzero(np.diff(col, axis=2))
    pos = (regions[det, 0] + cols) * height + regions[det, 1] + ks
    if len(pos) > 2:  # entries alternate start/end within a detection and each has an even number of them
        touching = np.nonzero((pos[1:-1:2] == pos[2::2]) & (det[1:-1:2] == det[2::2]))[0]
        if len(touching):
            keep = np.ones(len(pos), dtype=bool)
            keep[2 * touching + 1] = False
            keep[2 * touching + 2] = False
            pos, det = pos[keep], det[keep]
    first = np.ones(len(pos), dtype=bool)
    first[1:] = det[1:] != det[:-1]
    counts = np.diff(pos, prepend=0)
    counts[first] = pos[first]
    bounds = np.searchsorted(det, np.arange(m + 1))
    out = []
    for i in range(m):
        c = counts[bounds[i]:bounds[i + 1]]
        if len(c) == 0:
            out.append(np.array([total], dtype=np.int64))
            continue
        last = pos[bounds[i + 1] - 1]
        out.append(np.append(c, total - last) if last < total else c)
    return out


def rect_rles(boxes: Sequence[Sequence[int]], height: int, width: int) -> List[dict]:
    """COCO RLEs of filled integer rectangles ``[x1, y1, x2, y2)`` inside the image (run lengths in closed form)."""
    total = height * width
    counts = []
    for x1, y1, x2, y2 in boxes:
        h, w = max(y2 - y1, 0), max(x2 - x1, 0)
        if h == 0 or w == 0:
            counts.append(np.array([total], dtype=np.int64))
            continue
        if h == height:  # full columns join into one run
            c = np.array([x1 * height, w * height, total - x2 * height], dtype=np.int64)
        else:
            body = np.tile(np.array([h, height - h], dtype=np.int64), w)
            body[-1] = total - (x2 - 1) * height - y2
            c = np.concatenate([[x1 * height + y1], body])
        counts.append(c if c[-1] > 0 else c[:-1])
    return counts_to_rles(counts, height, width)


def crop_rle(crop: np.ndarray, x1: int, y1: int, height: int, width: int, text: bool = False) -> dict:
    """COCO RLE of a boolean ``crop`` placed at ``(x1, y1)`` in a ``height`` x ``width`` image, built from the
    crop's pixels only (encoding a full-size mask per nucleus would walk the whole image)."""
    ys, xs = np.nonzero(np.asarray(crop).T)  # transposed: column-major order of the image
    return runs_to_rle((ys + x1).astype(np.int64) * height + (xs + y1), height, width, text)


def rle_bytes(rle: Mapping) -> dict:
    """An RLE dict as pycocotools takes it (``counts`` bytes; ``size`` ints), from either counts form."""
    counts = rle['counts']
    return {'size': [int(v) for v in rle['size']], 'counts': counts.encode() if isinstance(counts, str) else counts}


def rle_text(rle: Mapping) -> dict:
    """An RLE dict as JSON holds it (``counts`` str), from either counts form."""
    counts = rle['counts']
    return {'size': [int(v) for v in rle['size']],
            'counts': counts.decode('ascii') if isinstance(counts, bytes) else counts}


def encode_mask(mask: np.ndarray) -> dict:
    """RLE of one (H, W) mask in the contest encoding (pycocotools, Fortran order, ``counts`` as str)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    rle['counts'] = rle['counts'].decode('utf-8')
    return rle


def masks_to_rles(masks: Any, height: int, width: int) -> List[dict]:
    """Masks of one image as RLEs: ``(N, H, W)`` bool/uint8/float (>= 0.5) array or tensor, or N RLEs (as is).

    Dense masks are encoded one at a time: a Fortran-order copy of the whole (H, W, N) stack costs ~6x the
    encoding itself (3.1 s vs 0.5 s for 500 masks of 1000x1000, ``benchmarks/pathology_metrics.py``).
    """
    if isinstance(masks, (list, tuple)):
        return list(masks)
    arr = masks.detach().cpu().numpy() if hasattr(masks, 'detach') else np.asarray(masks)
    if arr.ndim != 3 or arr.shape[1:] != (height, width):
        raise ValueError(f'masks of shape {arr.shape} do not fit a {height}x{width} image')
    if len(arr) == 0:
        return []
    binary = arr >= 0.5 if arr.dtype.kind == 'f' else arr.astype(bool, copy=False)
    return [mask_utils.encode(np.asfortranarray(m.view(np.uint8)[:, :, None]))[0] for m in binary]


def masks_to_bool(masks: Any, height: int, width: int) -> np.ndarray:
    """Masks of one image (RLE list, mmdet ``BitmapMasks``, tensor or array) as an (N, H, W) bool array."""
    if isinstance(masks, (list, tuple)):
        return rles_to_bitmaps([rle_bytes(m) for m in masks], height, width).astype(bool)
    if hasattr(masks, 'to_ndarray'):
        return masks.to_ndarray().astype(bool)
    if hasattr(masks, 'detach'):
        masks = masks.detach().cpu().numpy()
    return np.asarray(masks).astype(bool)
