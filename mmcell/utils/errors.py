"""mmcell's errors and how tools report them: one line naming the file or flag, non-zero exit, no traceback.

Every mmcell error about its input subclasses :class:`InputError` (a ``ValueError``), so a tool needs only
``exit_on_bad_input(api_call, ...)`` and the train/test loops can tell bad input from bugs with
``except input_errors()``. Each package defines its own subclass next to the code that raises it
(``CheckpointError``, ``OutputPathError``, ``SubmissionError``, ``SlideError``, ``RunError``); the data-file errors
live here because every floor above reads files.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable, List, Union

PathLike = Union[str, os.PathLike]


class InputError(ValueError):
    """Bad input (a file, a checkpoint, a flag); the message is one line naming it and the problem."""


class HW3FormatError(InputError):
    """A data file or folder cannot be read as documented (an image, an HW3 folder, a converter's source);
    the message is ``"<path>: <problem>"``."""

    def __init__(self, path: PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f'{path}: {problem}')


class HW3FileNotFoundError(HW3FormatError, FileNotFoundError):
    """A file the data format requires is missing."""


def one_line(err: BaseException, limit: int = 0) -> str:
    """An exception as the one line a tool prints: its message with line breaks joined by ``; ``.

    Args:
        err: the exception.
        limit: cut the line to this many characters (0: no limit).
    """
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = ' '.join('; '.join(lines).split()) or type(err).__name__
    return text if not limit or len(text) <= limit else text[:limit - 3] + '...'


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (a decoder's long report reduced to its cause)."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def input_errors() -> tuple:
    """mmcell's bad-input exceptions, for code that must not hide bugs behind a broad ``except ValueError`` (the
    train and test loops)."""
    return (InputError, FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)


def exit_on_bad_input(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; bad input (``ValueError`` and its mmcell subclasses, ``OSError``) exits with one line.

    Every mmcell error about a file, a checkpoint or a flag is an :class:`InputError` or an ``OSError`` naming the
    file, so tools are ``argparse`` plus ``exit_on_bad_input(api_call, ...)``: non-zero exit, one line, no traceback.
    """
    try:
        return fn(*args, **kwargs)
    except (ValueError, OSError) as err:
        raise SystemExit(one_line(err)) from None


def probability(text: str) -> float:
    """``argparse`` type of a score, mask or IoU threshold: a number in [0, 1]. ``--score-thr 1.5`` (or 50 for 50 %)
    is a typo that would silently keep nothing: refused with one line, on every command that takes a threshold."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f'{text} is outside [0, 1] (scores and thresholds are fractions)')
    return value


def probabilities(text: str) -> List[float]:
    """``argparse`` type of comma-separated thresholds, each a :func:`probability` (``0,0.05,0.5``)."""
    return [probability(part.strip()) for part in text.split(',') if part.strip()]


class ToolArgumentParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line (``prog: error: ...``, exit 2) instead of usage + error."""

    def error(self, message: str):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')
