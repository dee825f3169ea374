"""Fast decoding of COCO compressed RLE into stacked bitmaps.

``pycocotools.mask.decode`` writes every pixel of every (H, W) mask and returns an (H, W, N) Fortran array that
must be transposed and copied to build mmdet's (N, H, W) ``BitmapMasks``. For hundreds of small nuclei that is
mostly zeros being written twice. Here the counts string is decoded with numpy and only the foreground pixels are
set in a freshly zeroed (lazily allocated) array, so the cost follows the number of nucleus pixels.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import numpy as np


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
