"""The one way mmcell writes files: atomically (temp file in the destination folder, then ``os.replace``).

Every writer in mmcell (label images, tables, GeoJSON, submissions, converted data sets, plots, benchmark
results) goes through :func:`atomic_write` or :func:`atomic_dir`, so that

- a reader never sees a half-written file: an interrupted run leaves the previous file (or none) in place;
- outputs get ordinary permissions: the temp file is created private (``mkstemp``) and its mode is set to
  ``0o666 & ~umask`` (``0o644`` under the usual umask 022) before the rename, as ``open(path, 'w')`` would;
- a folder that cannot be written fails before any work, with one line (:func:`check_output_path`).

Errors are :class:`OutputPathError` (a ``ValueError`` whose message is one line naming the path).
"""
from __future__ import annotations

import contextlib
import json
import os
import os.path as osp
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

from .errors import InputError

PathLike = Union[str, os.PathLike]

_UMASK_LOCK = threading.Lock()


class OutputPathError(InputError):
    """An output path that cannot be written; the message is one line naming the path and the problem."""


def current_umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _first_existing(folder: str) -> str:
    """The nearest existing path at or above ``folder`` (a file there means the folder cannot be made)."""
    while folder and not osp.exists(folder):
        parent = osp.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return folder or '.'


def check_output_path(path: PathLike, suffixes: Optional[tuple] = None, is_dir: bool = False,
                      overwrite: bool = True) -> Path:
    """Check, before any long work, that ``path`` can be created or replaced.

    Args:
        path: the output file (or folder with ``is_dir=True``).
        suffixes: allowed endings (e.g. ``('.zip', '.json')``); None allows any.
        is_dir: the output is a folder.
        overwrite: an existing output may be replaced; if False an existing one is refused.

    Raises:
        OutputPathError: one line naming ``path`` and what is wrong.
    """
    path = Path(path)
    name = os.fspath(path)
    if suffixes is not None and not name.endswith(tuple(suffixes)):
        raise OutputPathError(f'{name}: the output must end with {" or ".join(suffixes)}')
    if path.exists():
        if not overwrite:
            raise OutputPathError(f'{name}: exists (pass --overwrite to replace it)')
        if is_dir and not path.is_dir():
            raise OutputPathError(f'{name}: exists and is not a folder')
        if not is_dir and path.is_dir():
            raise OutputPathError(f'{name}: is a folder')
    parent = osp.dirname(osp.abspath(name))
    existing = _first_existing(parent)
    if not osp.isdir(existing):
        raise OutputPathError(f'{name}: {existing} is not a folder')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f'{name}: cannot write here (no write permission on {existing})')
    if is_dir and path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f'{name}: cannot write here (no write permission on {name})')
    return path


def _public_mode(path: str, is_dir: bool = False) -> None:
    os.chmod(path, (0o777 if is_dir else 0o666) & ~current_umask())


def atomic_write(path: PathLike, write: Callable[[str], Any]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temp file beside it, which then replaces ``path``.

    The temp file keeps ``path``'s suffix (writers that pick a format by extension still work) and is removed
    if ``write`` raises. The result has mode ``0o666 & ~umask``.

    Args:
        path: destination file; its folder is created if missing.
        write: called with the temp file's path; writes the content there.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    folder = osp.dirname(osp.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{path.name}.', suffix=f'.tmp{path.suffix}')
    except OSError as err:
        raise OutputPathError(f'{path}: cannot write here ({err.strerror or err})') from None
    os.close(fd)
    try:
        write(tmp)
        _public_mode(tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed and fsynced before the rename)."""
    def write(tmp: str) -> None:
        with open(tmp, 'wb') as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode('utf-8'))


def write_json(path: PathLike, obj: Any, indent: Optional[int] = None) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent))


def append_text(path: PathLike, text: str, header: str = '') -> Path:
    """Append ``text`` to ``path`` atomically (the old content plus ``text`` replace the file in one rename).

    ``header`` starts a file that does not exist yet (e.g. ``'# Benchmarks\n'`` for ``benchmarks/RESULTS.md``).
    """
    old = Path(path).read_text(encoding='utf-8') if osp.isfile(path) else header
    joined = (old.rstrip('\n') + '\n\n' if old.strip() else '') + text
    return atomic_write_text(path, joined if joined.endswith('\n') else joined + '\n')


def write_results_section(path: PathLike, section: str, header: str = '# Benchmarks\n') -> Path:
    """Make ``section`` (markdown starting ``## Heading``) the current figures of its benchmark in a results file
    (``benchmarks/RESULTS.md``).

    One section per benchmark, never a second copy: the section with the same heading keeps its place (a date in
    parentheses at the end of a heading, ``## Heading (2026-12-03)``, is not part of the name and moves into the
    body as ``- date:``); its previous figures move, collapsed under their first line, to the top of the section's
    **History**, which keeps every earlier run. A new heading is appended at the end. Written atomically.
    """
    first, _, body = section.strip('\n').partition('\n')
    if not first.startswith('## '):
        raise ValueError(f'a results section starts with "## Heading", not {first[:40]!r}')
    heading = first[3:].strip()
    dated = re.match(r'^(.*\S)\s+\((\d{4}-\d{2}-\d{2})([^)]*)\)$', heading)
    if dated:
        heading = dated.group(1)
        body = f'- date: {dated.group(2)}{dated.group(3)}\n{body}'
    body = body.strip('\n')
    old = Path(path).read_text(encoding='utf-8') if osp.isfile(path) else header
    lines = old.rstrip('\n').split('\n')
    starts = [i for i, ln in enumerate(lines) if ln.startswith('## ')]

    def same(ln: str) -> bool:
        title = ln[3:].strip()
        return title == heading or (title.startswith(heading + ' (') and title.endswith(')'))

    found = next((i for i in starts if same(lines[i])), None)
    if found is None:
        return atomic_write_text(path, '\n'.join(lines).rstrip('\n') + f'\n\n## {heading}\n{body}\n')
    end = next((i for i in starts if i > found), len(lines))
    part = lines[found + 1:end]
    hist = next((i for i, ln in enumerate(part) if ln.startswith('**History**')), None)
    current = '\n'.join(part[:hist] if hist is not None else part).strip('\n')
    history = part[hist + 1:] if hist is not None else []
    summary = next((ln.lstrip('- ').strip() for ln in current.split('\n') if ln.strip()), 'earlier run')
    entry = [f'<details><summary>{summary}</summary>', '', current, '', '</details>', ''] if current else []
    new = [f'## {heading}', body, '', '**History** (earlier runs)', '', *entry, *[ln for ln in history if ln or entry]]
    while new and not new[-1].strip():
        new.pop()
    text = '\n'.join(lines[:found] + new + ([''] if end < len(lines) else []) + lines[end:])
    return atomic_write_text(path, text.rstrip('\n') + '\n')


def save_figure(fig: Any, path: PathLike, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` through :func:`atomic_write` (the temp file keeps the suffix: matplotlib picks the format)."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, **savefig_kwargs))


@contextlib.contextmanager
def atomic_dir(out_dir: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Build a folder in a temp folder beside ``out_dir`` and move it into place only if the block succeeds.

    ``with atomic_dir('OUT') as tmp: ...`` writes under ``tmp``; on success ``OUT`` is replaced (an existing
    ``OUT`` only with ``overwrite=True``, else :class:`OutputPathError` before any work); on an exception the temp
    folder is removed and ``OUT`` is untouched.
    """
    out_dir = check_output_path(out_dir, is_dir=True, overwrite=overwrite)
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f'.{out_dir.name}.', suffix='.tmp')
    _public_mode(tmp, is_dir=True)
    try:
        yield Path(tmp)
        if out_dir.exists():
            old = tempfile.mkdtemp(dir=parent, prefix=f'.{out_dir.name}.', suffix='.old')
            os.rmdir(old)
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


class AppendLog:
    """Append-only records that survive ``kill -9``: a data file plus a JSON-lines manifest beside it.

    :meth:`append` writes the record's bytes at the end of the data file and fsyncs it, then appends one manifest
    line ``{"offset", "length", **meta}`` and fsyncs that. A record exists only once its manifest line is complete,
    so a process killed at any point leaves every listed record whole; bytes written after the last complete line
    are ignored (and a restarted writer appends after them). Used for resumable whole-slide runs: one log per
    worker, never two writers on one log.

    Args:
        data_path: the data file (created if missing).
        manifest_path: its manifest (``.jsonl``).
    """

    def __init__(self, data_path: PathLike, manifest_path: PathLike) -> None:
        self.data_path, self.manifest_path = Path(data_path), Path(manifest_path)
        try:
            os.makedirs(self.data_path.parent, exist_ok=True)
            self._data = open(self.data_path, 'ab')
            self._manifest = open(self.manifest_path, 'ab')
        except OSError as err:
            raise OutputPathError(f'{self.data_path}: cannot write here ({err.strerror or err})') from None
        # a manifest cut in the middle of a line by a kill: end it so the next line starts clean
        if self._manifest.tell() and not _ends_with_newline(self.manifest_path):
            self._manifest.write(b'\n')

    def append(self, data: bytes, meta: dict) -> None:
        """Append one record (bytes + its JSON-serialisable ``meta``)."""
        offset = self._data.seek(0, os.SEEK_END)
        self._data.write(data)
        self._data.flush()
        os.fsync(self._data.fileno())
        line = json.dumps(dict(meta, offset=offset, length=len(data))) + '\n'
        self._manifest.write(line.encode('utf-8'))
        self._manifest.flush()
        os.fsync(self._manifest.fileno())

    def close(self) -> None:
        self._data.close()
        self._manifest.close()

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def read_manifest(manifest_path: PathLike, data_path: PathLike) -> list:
        """The complete records of a log: ``meta`` dicts (with ``offset`` / ``length``) whose bytes are all there."""
        size = osp.getsize(data_path) if osp.exists(data_path) else 0
        records = []
        with open(manifest_path, 'rb') as fh:
            for raw in fh:
                if not raw.endswith(b'\n'):
                    break  # cut by a kill
                try:
                    meta = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(meta, dict) and meta.get('offset', size) + meta.get('length', 0) <= size:
                    records.append(meta)
        return records

    @staticmethod
    def read_record(data_path: PathLike, meta: dict) -> bytes:
        with open(data_path, 'rb') as fh:
            fh.seek(int(meta['offset']))
            return fh.read(int(meta['length']))


def _ends_with_newline(path: Path) -> bool:
    with open(path, 'rb') as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b'\n'
