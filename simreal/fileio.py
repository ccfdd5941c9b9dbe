"""Reading YAML and JSON with clear errors; writing files and folders atomically, with clear errors too.

Every file simreal reads is checked for what it claims to be: UTF-8 text, YAML without duplicate keys or alias
expansion bombs, JSON objects where an object is expected. Every write goes through a temporary file renamed into
place, and a file system that says no (read-only, full, a folder where a file should be) is a
:class:`~simreal.errors.StorageError` naming the path and the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from simreal.errors import DataError, SimrealError, StorageError, shown

#: The most nodes a YAML document may hold once its aliases are expanded: configs, robots and targets hold a few
#: hundred; a "billion laughs" of nested aliases holds billions and is refused before anything expands it.
MAX_YAML_NODES = 100_000


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys (YAML leaves them undefined; PyYAML keeps the last) and
    documents whose aliases expand past :data:`MAX_YAML_NODES` nodes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys a merge brings may be overridden: that is what a merge is for
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {shown(key)}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None and _expanded_size(node) > MAX_YAML_NODES:
            raise yaml.YAMLError(f"more than {MAX_YAML_NODES} values once its aliases are expanded")
        return node


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes ``root`` holds with every alias expanded, counted once per distinct node (aliases share a
    node object), so a bomb is measured without being expanded."""
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack = [root]
    while stack:  # post-order without recursion: a deep document is no stack overflow
        node = stack.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = -1
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        sizes[id(node)] = 1 + sum(max(sizes[id(child)], 1) for child in _children(node))
        if sizes[id(node)] > MAX_YAML_NODES:
            return sizes[id(node)]
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def parse_yaml(text: str) -> Any:
    """Parse YAML text with :class:`StrictLoader` (``yaml.YAMLError`` on a problem)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_text(path: str | os.PathLike[str], error: type[SimrealError]) -> str:
    """The UTF-8 text of ``path``.

    Raises:
        error: the file is missing or unreadable, or is not UTF-8 text (naming the byte offset).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: a folder, not a file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read file ({exc.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_yaml(path: str | os.PathLike[str], error: type[SimrealError]) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Args:
        path: the file to read.
        error: the error type to raise (e.g. :class:`~simreal.errors.SpecError` for robot specs).

    Returns:
        The parsed mapping.

    Raises:
        error: the file is missing, unreadable, not UTF-8, not valid YAML (a duplicate key and an alias bomb
            included), or not a mapping at its top level.
    """
    text = read_text(path, error)
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc) if type(exc) is yaml.YAMLError else "invalid syntax")
        raise error(f"{path}: malformed YAML{at}: {problem}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file through a temporary name in the same folder, then rename it into place.

    A crash or a kill mid-write leaves either the old file or the new one, never a truncated file.

    Args:
        path: the final path.
        write: a function that writes the whole content to the temporary path it is given.

    Returns:
        The final path.
    """
    path = Path(path)
    with storage_errors(path):
        if path.is_dir():
            raise IsADirectoryError(21, "a folder is in the way", str(path))
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


@contextmanager
def storage_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn what the file system refuses inside the block (read-only, full disk, no permission, a folder or a file
    in the way) into a :class:`StorageError` naming the path it refused and the reason."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None:
            raise
        raise StorageError(f"{exc.filename or path}: cannot write ({exc.strerror or exc})") from None


def check_writable(path: str | os.PathLike[str], folder: bool = False) -> Path:
    """Check, before any work is spent, that ``path`` can be written: a file (``folder=False``) or a folder.

    Nothing is created: a probe file is written and removed in the nearest folder that exists on the way.

    Raises:
        StorageError: a folder where a file should go or the reverse, a read-only or full file system, no
            permission; naming the path and the reason.
    """
    path = Path(path)
    if not folder and path.is_dir():
        raise StorageError(f"{path}: cannot write (a folder is in the way)")
    if folder and path.exists() and not path.is_dir():
        raise StorageError(f"{path}: cannot write (a file is in the way, not a folder)")
    existing = path if folder else path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StorageError(f"{path}: cannot write ({existing} is a file, not a folder)")
    with storage_errors(existing):
        fd, probe = tempfile.mkstemp(prefix=".simreal-probe.", dir=existing)
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            os.unlink(probe)
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


def read_json(path: str | os.PathLike[str], default: Any = None, expect: type = dict) -> Any:
    """Read a JSON file; ``default`` when it does not exist.

    Args:
        path: the file.
        default: what a missing file reads as.
        expect: the type its top level must be (``dict``: a JSON object; ``object``: anything).

    Raises:
        DataError: the file exists but is not UTF-8 JSON, or its top level is not an ``expect``.
    """
    path = Path(path)
    if not path.exists():
        return default
    try:
        data = json.loads(read_text(path, DataError))
    except ValueError as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, expect):
        wanted = "an object" if expect is dict else expect.__name__
        raise DataError(f"{path}: expected {wanted} at the top level, got {type(data).__name__}")
    return data


def staging_dir(final: str | os.PathLike[str]) -> Path:
    """A fresh, empty temporary folder beside ``final`` to write a folder's content into before
    :func:`replace_dir` renames it into place."""
    final = Path(final)
    staged = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(staged, ignore_errors=True)
    with storage_errors(staged):
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
    with storage_errors(final):
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
