"""``CellSubmissionMetric``: writes the contest submission from ``tools/test.py`` (format only, no GT needed)."""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmcell.datasets.metainfo import SUBMISSION_JSON, num_classes_of
from mmcell.evaluation.submission import SubmissionOptions, encode_data_sample, images_from_samples, write_submission
from mmcell.utils.fileio import check_output_path


@METRICS.register_module()
class CellSubmissionMetric(BaseMetric):
    """Write ``test-results.json`` and a zip holding it (the Codabench upload) from the test loop's predictions.

    Use it as ``test_evaluator`` on the test split (``CellTestDataset``, whose ``img_id`` is the contest id).
    Predictions go through :func:`mmcell.evaluation.submission.encode_data_sample` and
    :func:`~mmcell.evaluation.submission.write_submission` (atomic write, then validation: every image the test
    loop saw must be known, every RLE must decode to its image size).

    Args:
        out_dir: folder for the two files; None uses the run's log folder (``work_dir/<timestamp>/``).
        zip_name: name of the zip.
        collect_device, prefix: as in mmengine's ``BaseMetric``.
        **options: ``score_thr``, ``mask_thr``, ``max_per_img``, ``border_margin``: fields (and defaults) of
            :class:`mmcell.evaluation.submission.SubmissionOptions`.

    Returns (as metrics): ``submission/num_detections`` and ``submission/images_without_detections``.
    """

    default_prefix: Optional[str] = 'submission'
    format_only = True

    def __init__(self, out_dir: Optional[str] = None, zip_name: str = 'submission.zip', collect_device: str = 'cpu',
                 prefix: Optional[str] = None, **options) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not zip_name.endswith('.zip'):
            raise ValueError(f'CellSubmissionMetric: zip_name must end with .zip, got {zip_name}')
        if out_dir is not None:
            check_output_path(out_dir, is_dir=True)  # the Runner builds metrics before the test loop runs
        self.out_dir = out_dir
        self.zip_name = zip_name
        try:
            self.options = SubmissionOptions(**options)
        except TypeError as err:
            raise ValueError(f'CellSubmissionMetric: {err}') from None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_classes = num_classes_of(self.dataset_meta)
        for sample in data_samples:
            # Encode now (RLE is small) rather than keeping full-size masks of every image until the end.
            entries = encode_data_sample(sample, options=self.options, num_classes=num_classes)
            image = images_from_samples([sample])[0]
            self.results.append((image, entries))

    def compute_metrics(self, results: list) -> dict:
        logger = MMLogger.get_current_instance()
        out_dir = self.out_dir
        if out_dir is None:
            log_file = getattr(logger, 'log_file', None)
            out_dir = osp.dirname(log_file) if log_file else osp.join('work_dirs', 'submission')
        images = [image for image, _ in results]
        entries = [e for _, image_entries in results for e in image_entries]
        num_classes = num_classes_of(self.dataset_meta)
        json_path = osp.join(out_dir, SUBMISSION_JSON)
        report = write_submission(entries, json_path, images, num_classes=num_classes)
        zip_path = osp.join(out_dir, self.zip_name)
        write_submission(entries, zip_path, images, validate=False, num_classes=num_classes)
        logger.info(report.summary())
        logger.info(f'submission written: {zip_path} (holding {SUBMISSION_JSON}) and {json_path}')
        return dict(num_detections=report.num_detections,
                    images_without_detections=len(report.images_without_detections))
