"""One process per folder: a run directory, a transfer pipeline's folder or a sweep's folder is held by the process
that writes it, so two commands started into the same folder never mix their files.

The hold is an OS-level lock (``flock`` through :mod:`filelock`) on ``.simreal.lock`` inside the folder: the kernel
drops it when the process ends, however it ends, so a run killed with ``kill -9`` never leaves a lock that blocks its
resume. The lock file itself stays (unlinking a lock file breaks the lock for processes waiting on it); it holds
nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from simreal.errors import BusyError
from simreal.fileio import check_writable, storage_errors

LOCK = ".simreal.lock"


@contextmanager
def hold(folder: str | os.PathLike[str], what: str = "folder") -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for the block, or refuse at once if another process holds it.

    Holding a folder again inside the block, from the same process and thread, is allowed (a pipeline's stage
    writing into the pipeline's folder).

    Args:
        folder: the folder to hold.
        what: how to name the folder in the error (``run directory``, ``pipeline folder``...).

    Raises:
        BusyError: another process holds the folder.
        StorageError: the folder cannot be created or written.
    """
    folder = check_writable(folder, folder=True)
    with storage_errors(folder):
        folder.mkdir(parents=True, exist_ok=True)
        lock = _lock_of(folder)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise BusyError(
                f"{folder}: this {what} is in use by another simreal process (it holds {LOCK}); "
                "wait for it to finish, or choose another folder"
            ) from None
    try:
        yield folder
    finally:
        lock.release()


_LOCKS: dict[str, FileLock] = {}


def _lock_of(folder: Path) -> FileLock:
    """One lock object per folder in this process: acquiring it again is re-entrant, not a conflict."""
    key = str(folder.resolve() / LOCK)
    if key not in _LOCKS:
        _LOCKS[key] = FileLock(key, timeout=0)
    return _LOCKS[key]
