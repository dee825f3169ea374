"""The HW3 Codabench submission file: the one writer, loader and validator.

A submission is a JSON list named ``test-results.json`` (bare, or inside a zip), one dict per predicted instance::

    {"image_id": 17, "bbox": [x, y, w, h], "score": 0.93, "category_id": 2,
     "segmentation": {"size": [H, W], "counts": "<RLE string>"}}

``image_id`` comes from ``test_image_name_to_ids.json`` by file name, ``category_id`` is the model label + 1, the
box is COCO xywh in original image pixels and the mask is a pycocotools RLE at the original image size
(see ``../shared/HW3_FORMAT.md``). Every tool that writes a submission (``tools/test.py`` through
:class:`~mmcell.evaluation.metrics.CellSubmissionMetric`, ``tools/predict.py``) goes through
:func:`mmcell.evaluation.submission.encode.encode_instances` and :func:`write_submission`;
``tools/misc/check_submission.py`` runs :func:`validate_submission`.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from mmcell.datasets.metainfo import CONTEST_MAX_DETS, NUM_CLASSES, SUBMISSION_JSON  # noqa: F401
from mmcell.evaluation.submission.options import Results, Source, SubmissionError
from mmcell.structures.rle import rle_counts
from mmcell.utils.fileio import OutputPathError, atomic_write, check_output_path


@dataclass
class SubmissionReport:
    """Outcome of :func:`validate_submission`.

    Attributes:
        source: the file checked (or ``'<results>'`` for an in-memory list).
        num_detections: entries in the list.
        num_images: images the submission was checked against (0 when no image list was given).
        per_category: detections per category id.
        images_without_detections: file names (or ids) of known images with no detection; not an error.
        beyond_contest_cap: detections ranked below the best 100 of their image and category, which the contest
            (pycocotools maxDets=100) ignores; not an error.
        errors: format problems; a submission with errors is not written.
    """

    source: str
    num_detections: int = 0
    num_images: int = 0
    per_category: dict = field(default_factory=dict)
    images_without_detections: list = field(default_factory=list)
    beyond_contest_cap: int = 0
    errors: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """A few lines for people: counts, uncovered images, the first errors."""
        cats = ', '.join(f'{k}: {v}' for k, v in sorted(self.per_category.items())) or 'none'
        lines = [f'{self.source}: {self.num_detections} detections on {self.num_images or "?"} images '
                 f'(per category {cats})']
        if self.images_without_detections:
            names = ', '.join(map(str, self.images_without_detections[:10]))
            more = ' ...' if len(self.images_without_detections) > 10 else ''
            lines.append(f'  {len(self.images_without_detections)} image(s) without detections: {names}{more}')
        if self.beyond_contest_cap:
            lines.append(f'  {self.beyond_contest_cap} detection(s) beyond the best {CONTEST_MAX_DETS} per image '
                         'and category (ignored by the contest metric)')
        if self.errors:
            lines.append(f'  {len(self.errors)} error(s):')
            lines += [f'    {e}' for e in self.errors[:20]]
            if len(self.errors) > 20:
                lines.append(f'    ... and {len(self.errors) - 20} more')
        else:
            lines.append('  valid')
        return '\n'.join(lines)

    def raise_for_errors(self) -> None:
        if self.errors:
            more = f' (and {len(self.errors) - 1} more)' if len(self.errors) > 1 else ''
            raise SubmissionError(f'{self.source}: {self.errors[0]}{more}')


def _serialize(results: Results) -> bytes:
    return json.dumps(results, separators=(',', ':')).encode('utf-8')


def _write_bytes(fh: Any, data: bytes, chunk: int = 1 << 20) -> None:
    """Write in chunks (a crash in between leaves a partial temp file, never a partial submission)."""
    for start in range(0, len(data), chunk):
        fh.write(data[start:start + chunk])


def check_submission_path(out_file: str | os.PathLike) -> str:
    """Fail before any inference when ``out_file`` is no submission name or cannot be written (one line)."""

    out_file = os.fspath(out_file)
    if not out_file.endswith(('.json', '.zip')):
        raise SubmissionError(f'{out_file}: a submission must end with .zip (Codabench) or .json')
    try:
        check_output_path(out_file)
    except OutputPathError as err:
        raise SubmissionError(str(err)) from None
    return out_file


def write_submission(results: Results, out_file: str | os.PathLike, images: Sequence[Mapping] | None = None,
                     validate: bool = True, num_classes: int = NUM_CLASSES) -> SubmissionReport:
    """Write ``results`` atomically as ``test-results.json`` (``.json``) or a zip holding it (``.zip``).

    The data go to a temp file in the destination folder (:func:`mmcell.utils.fileio.atomic_write`), are re-read
    and validated there, and only a valid file replaces ``out_file``: an existing submission is never truncated
    or overwritten by a broken one.

    Args:
        results: submission entries (see :func:`encode_instances`).
        out_file: destination, ending in ``.json`` or ``.zip``.
        images: the test images (dicts with ``file_name``, ``id``, ``height``, ``width``) to validate against.
        validate: re-read and validate before the rename.
        num_classes: number of categories.

    Returns:
        the :class:`SubmissionReport` of the written file.
    """

    out_file = check_submission_path(out_file)
    data = _serialize(results)
    report = SubmissionReport(source=out_file, num_detections=len(results))

    def write(tmp: str) -> None:
        nonlocal report
        with open(tmp, 'wb') as fh:
            if out_file.endswith('.zip'):
                with zipfile.ZipFile(fh, 'w', compression=zipfile.ZIP_DEFLATED) as zf, \
                        zf.open(SUBMISSION_JSON, 'w') as member:
                    _write_bytes(member, data)
            else:
                _write_bytes(fh, data)
            fh.flush()
            os.fsync(fh.fileno())
        if validate:
            report = validate_submission(tmp, images, num_classes=num_classes)
            report.source = out_file
            report.raise_for_errors()

    try:
        atomic_write(out_file, write)
    except OutputPathError as err:
        raise SubmissionError(str(err)) from None
    except OSError as err:
        raise SubmissionError(f'{out_file}: cannot write ({err.strerror or err})') from None
    return report


# ----------------------------------------------------------------------------------------------- reading
def load_submission(path: str | os.PathLike) -> Results:
    """Read the result list of a ``.json`` or of ``test-results.json`` inside a ``.zip``."""
    path = os.fspath(path)
    if not osp.isfile(path):
        raise SubmissionError(f'{path}: file not found')
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if SUBMISSION_JSON not in zf.namelist():
                    raise SubmissionError(f'{path}: the zip must hold {SUBMISSION_JSON} at its top level '
                                          f'(found {zf.namelist()[:5]})')
                data = zf.read(SUBMISSION_JSON)
        else:
            with open(path, 'rb') as fh:
                data = fh.read()
        results = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile) as err:
        raise SubmissionError(f'{path}: not valid JSON/zip ({err})') from None
    if not isinstance(results, list):
        raise SubmissionError(f'{path}: the JSON must be a list of detections, got {type(results).__name__}')
    return results


def rle_counts_total(counts: str) -> int:
    """Sum of the run lengths of a pycocotools compressed RLE string (-1 if the string is malformed)."""

    try:
        return int(rle_counts(counts, strict=True).sum())
    except ValueError:  # includes UnicodeEncodeError for non-ASCII characters
        return -1


def _validate_entry(det: Any, images_by_id: Mapping[int, Mapping] | None, num_classes: int) -> str | None:
    if not isinstance(det, dict):
        return f'not a dict but {type(det).__name__}'
    missing = {'image_id', 'bbox', 'score', 'category_id', 'segmentation'} - det.keys()
    if missing:
        return f'missing key(s) {sorted(missing)}'
    image_id, cat, score, bbox, seg = (det[k] for k in ('image_id', 'category_id', 'score', 'bbox', 'segmentation'))
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        return f'image_id {image_id!r} is not an int'
    if images_by_id is not None and image_id not in images_by_id:
        return f'image_id {image_id} is not in the ids json'
    if not isinstance(cat, int) or not 1 <= cat <= num_classes:
        return f'category_id {cat!r} outside 1..{num_classes}'
    if not isinstance(score, (int, float)) or isinstance(score, bool) or not 0.0 <= score <= 1.0:
        return f'score {score!r} is not a number in [0, 1]'
    if (not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox)
            or not np.isfinite(bbox).all() or bbox[2] < 0 or bbox[3] < 0):
        return f'bbox {bbox!r} is not [x, y, w, h] with w, h >= 0'
    if not isinstance(seg, dict) or not isinstance(seg.get('counts'), str) or not isinstance(seg.get('size'), list):
        return 'segmentation must be {"size": [H, W], "counts": str}'
    size = seg['size']
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        return f'segmentation size {size!r} is not [H, W]'
    if images_by_id is not None:
        img = images_by_id[image_id]
        if size != [int(img['height']), int(img['width'])]:
            return (f'segmentation size {size} but {img.get("file_name", image_id)} is '
                    f'[{img["height"]}, {img["width"]}]')
    total = rle_counts_total(seg['counts'])
    if total != size[0] * size[1]:
        return f'RLE does not decode to {size[0]}x{size[1]} (runs sum to {total})'
    return None


def validate_submission(source: Source, images: Sequence[Mapping] | None = None,
                        num_classes: int = NUM_CLASSES) -> SubmissionReport:
    """Check a submission (file or list) against the contest format and, if given, the test images.

    Every entry must have the five keys with the right types, a known ``image_id``, ``category_id`` in
    1..num_classes, a score in [0, 1], and an RLE that decodes to exactly the image's size. Images with no
    detection are listed in the report (not an error).

    Args:
        source: path of a ``.json``/``.zip`` submission, or the list itself.
        images: test images (``file_name``, ``id``, ``height``, ``width``), e.g. from
            :func:`mmcell.datasets.hw3_format.read_test_ids`; None checks the format only.
        num_classes: number of categories.
    """
    if isinstance(source, (str, os.PathLike)):
        report = SubmissionReport(source=os.fspath(source))
        results = load_submission(source)
    else:
        report = SubmissionReport(source='<results>')
        results = list(source)
    images_by_id = None
    if images is not None:
        images_by_id = {int(img['id']): img for img in images}
        report.num_images = len(images_by_id)
    report.num_detections = len(results)
    per_cat: Counter = Counter()
    per_img: Counter = Counter()
    scores_by_key: dict = {}
    for idx, det in enumerate(results):
        problem = _validate_entry(det, images_by_id, num_classes)
        if problem is not None:
            img = det.get('image_id', '?') if isinstance(det, dict) else '?'
            report.errors.append(f'entry {idx} (image_id {img}): {problem}')
            continue
        per_cat[det['category_id']] += 1
        per_img[det['image_id']] += 1
        scores_by_key.setdefault((det['image_id'], det['category_id']), []).append(det['score'])
    report.per_category = dict(per_cat)
    report.beyond_contest_cap = sum(max(0, len(v) - CONTEST_MAX_DETS) for v in scores_by_key.values())
    if images_by_id is not None:
        report.images_without_detections = [img.get('file_name', i) for i, img in images_by_id.items()
                                            if per_img[i] == 0]
    return report


