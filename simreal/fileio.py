"""Reading YAML and JSON with clear errors; writing files and folders atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from simreal.errors import DataError, SimrealError


def read_yaml(path: str | os.PathLike[str], error: type[SimrealError]) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Args:
        path: the file to read.
        error: the error type to raise (e.g. :class:`~simreal.errors.SpecError` for robot specs).

    Returns:
        The parsed mapping.

    Raises:
        error: the file is missing, unreadable, not valid YAML, or not a mapping at its top level.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise error(f"{path}: malformed YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write a file through a temporary name in the same folder, then rename it into place.

    A crash or a kill mid-write leaves either the old file or the new one, never a truncated file.

    Args:
        path: the final path.
        write: a function that writes the whole content to the temporary path it is given.

    Returns:
        The final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; give them the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike[str], default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it does not exist.

    Raises:
        DataError: the file exists but is not readable JSON.
    """
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None


def staging_dir(final: str | os.PathLike[str]) -> Path:
    """A fresh, empty temporary folder beside ``final`` to write a folder's content into before
    :func:`replace_dir` renames it into place."""
    final = Path(final)
    staged = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    return staged


def replace_dir(staged: str | os.PathLike[str], final: str | os.PathLike[str]) -> Path:
    """Rename the complete folder ``staged`` into place as ``final``, replacing what was there.

    Every file in ``staged`` is flushed to disk first. A folder cannot be renamed over a non-empty one, so the old
    ``final`` is first renamed aside (``.<name>.old-<pid>``) and removed last: a kill at any moment leaves either
    the old folder or the new one, complete, under one of the two names, and :func:`recover_dir` puts the old one
    back if the kill came between the two renames.
    """
    staged, final = Path(staged), Path(final)
    for path in staged.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    aside = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(final, aside)
    os.replace(staged, final)
    shutil.rmtree(aside, ignore_errors=True)
    return final


def recover_dir(final: str | os.PathLike[str]) -> None:
    """Undo what a kill inside :func:`replace_dir` left: put an old folder set aside back when ``final`` is missing,
    and remove leftover temporary and set-aside folders."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    leftovers = sorted(final.parent.glob(f".{final.name}.old-*"))
    if leftovers and not final.exists():
        os.replace(leftovers.pop(), final)
    for path in [*leftovers, *final.parent.glob(f".{final.name}.tmp-*")]:
        shutil.rmtree(path, ignore_errors=True)
