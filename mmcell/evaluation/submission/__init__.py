"""The HW3 Codabench submission: options, encoding of predictions, and the file (write, load, validate)."""
from .encode import encode_data_sample, encode_instances, images_from_samples
from .options import (
    LABEL_SCORE_THR,
    SubmissionError,
    SubmissionOptions,
    add_submission_args,
    submission_options_of,
)
from .writer import (
    SubmissionReport,
    check_submission_path,
    load_submission,
    rle_counts_total,
    validate_submission,
    write_submission,
)

__all__ = ['LABEL_SCORE_THR', 'SubmissionError', 'SubmissionOptions', 'add_submission_args', 'submission_options_of',
           'encode_data_sample', 'encode_instances', 'images_from_samples', 'SubmissionReport',
           'check_submission_path', 'load_submission', 'rle_counts_total', 'validate_submission',
           'write_submission']
