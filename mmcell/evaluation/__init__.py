"""mmcell.evaluation."""
from .metrics import *  # noqa: F401,F403
from .submission import SubmissionError, SubmissionOptions, SubmissionReport, validate_submission, write_submission

__all__ = ['SubmissionError', 'SubmissionOptions', 'SubmissionReport', 'validate_submission', 'write_submission']
