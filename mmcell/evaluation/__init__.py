"""Scoring: pure functions (``functional``: AJI, PQ, overlaps, COCO helpers), the registered metrics, the
contest submission file, and post-processing rules shared by hooks and writers."""
from .metrics import *  # noqa: F401,F403  (registration side effects)
from .submission import SubmissionError, SubmissionOptions, SubmissionReport, validate_submission, write_submission

__all__ = ['SubmissionError', 'SubmissionOptions', 'SubmissionReport', 'validate_submission', 'write_submission']
