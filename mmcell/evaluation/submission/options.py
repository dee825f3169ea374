"""What a submission keeps (score threshold, per-image cap, border filter) and the flags that set it; the label
threshold of the outputs people read."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

from mmcell.datasets.metainfo import CONTEST_MAX_DETS, NUM_CLASSES, SUBMISSION_JSON  # noqa: F401
from mmcell.utils.errors import InputError, probability


class SubmissionError(InputError):
    """A submission (or the predictions it is made from) breaks the contest format: ``"<path>: <problem>"``."""


#: Score threshold of label images and cell tables (``mmcell segment``, ``predict.py --save-labels``): people read
#: those, so only confident cells go in. A submission keeps nearly everything (``SubmissionOptions.score_thr`` 0):
#: AP ranks detections by score, and a low-scoring true positive still adds recall.
LABEL_SCORE_THR = 0.5


@dataclass
class SubmissionOptions:
    """What goes into a submission.

    The one home of what a submission keeps; the model's own limits (``test_cfg.rcnn.score_thr``,
    ``max_per_img``, ``mask_thr_binary``) live in its config and apply first. ``tools/predict.py``,
    ``tools/ensemble.py`` and ``CellSubmissionMetric`` (``tools/test.py``) take their defaults from here.

    Args:
        score_thr: drop detections scoring below this (default 0: the contest ranks by score, so keep everything
            the model returns; the model's ``test_cfg.rcnn.score_thr`` already dropped the noise).
        mask_thr: threshold for soft (float) masks; boolean masks are used as they are.
        max_per_img: keep at most this many detections per image, best first (None: all the model returns, i.e.
            ``test_cfg.rcnn.max_per_img``).
        border_margin: if not None, drop detections whose box lies within this many pixels of the image border
            (see :func:`mmcell.evaluation.postprocess.boxes_touching_border`).
        keep_empty: keep detections whose mask is empty after thresholding (they can only be false positives).
    """

    score_thr: float = 0.0
    mask_thr: float = 0.5
    max_per_img: int | None = None
    border_margin: float | None = None
    keep_empty: bool = False


def add_submission_args(parser: Any, border: bool = True) -> Any:
    """``--score-thr``, ``--mask-thr``, ``--max-per-img`` (and ``--border-margin``) with the defaults of
    :class:`SubmissionOptions`; read back with :func:`submission_options_of`."""
    defaults = SubmissionOptions()
    parser.add_argument('--score-thr', type=probability, default=defaults.score_thr,
                        help=f'drop detections below this score (default {defaults.score_thr:g}: AP ranks by score, '
                             'keep everything the model returns)')
    parser.add_argument('--mask-thr', type=probability, default=defaults.mask_thr, help='threshold of soft masks')
    parser.add_argument('--max-per-img', type=int, default=defaults.max_per_img,
                        help="keep at most this many detections per image (default: the model's "
                             'test_cfg.rcnn.max_per_img)')
    if border:
        parser.add_argument('--border-margin', type=float, default=defaults.border_margin,
                            help='drop detections whose box is within this many px of the image border')
    return parser


def submission_options_of(args: Any) -> SubmissionOptions:
    """:class:`SubmissionOptions` from :func:`add_submission_args` flags."""
    return SubmissionOptions(score_thr=args.score_thr, mask_thr=args.mask_thr, max_per_img=args.max_per_img,
                             border_margin=getattr(args, 'border_margin', None))


Results = list  # list[dict] in the submission format


Source = Union[str, 'os.PathLike[str]', Sequence[Mapping[str, Any]]]
