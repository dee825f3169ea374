"""Validate a submission (.zip holding test-results.json, or the bare .json) against a release folder.

    python tools/misc/check_submission.py results.zip --data-root RELEASE_DIR

Exit status 0 when valid (images without detections are listed, not an error), 1 with the problems otherwise.
"""
from __future__ import annotations

import os.path as osp
import sys

from mmcell.datasets.hw3_format import read_test_ids
from mmcell.evaluation.submission import validate_submission
from mmcell.utils import ToolArgumentParser, one_line


def main(argv: list | None = None) -> int:
    parser = ToolArgumentParser(description='Validate a contest submission')
    parser.add_argument('file', help='submission .zip or .json')
    parser.add_argument('--data-root', help='folder with test_release/ and test_image_name_to_ids.json')
    parser.add_argument('--ids', help='ids json (default DATA_ROOT/test_image_name_to_ids.json)')
    parser.add_argument('--img-dir', help='test images (default DATA_ROOT/test_release)')
    args = parser.parse_args(argv)
    images = None
    try:
        if args.data_root or args.ids:
            root = args.data_root or osp.dirname(args.ids)
            images = read_test_ids(args.ids or osp.join(root, 'test_image_name_to_ids.json'),
                                   args.img_dir or osp.join(root, 'test_release'))
        report = validate_submission(args.file, images)
    except (ValueError, OSError) as err:  # HW3FormatError, SubmissionError
        raise SystemExit(one_line(err)) from None
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == '__main__':
    sys.exit(main())
