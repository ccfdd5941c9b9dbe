"""Reading YAML and JSON with clear errors; writing files and folders atomically, with clear errors too.

Every file simreal reads is checked for what it claims to be before it is parsed: a regular file (not a named pipe
that would block forever, not a device such as ``/dev/zero`` that never ends) under a size limit
(:data:`MAX_TEXT_BYTES`), UTF-8 text, YAML without duplicate keys or alias expansion bombs, YAML and JSON nested at
most :data:`MAX_DEPTH` levels (deeper is refused before a parser's recursion reaches it), JSON objects where an
object is expected, ``.npz`` archives read without pickles and with their arrays' declared sizes checked before numpy
allocates them. Every write goes through a temporary file renamed into
place, and a file system that says no (read-only, full, a folder where a file should be) is a
:class:`~simreal.errors.StorageError` naming the path and the reason.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml

from simreal.errors import DataError, SimrealError, StorageError, shown

#: The most nodes a YAML document may hold once its aliases are expanded: configs, robots and targets hold a few
#: hundred; a "billion laughs" of nested aliases holds billions and is refused before anything expands it.
MAX_YAML_NODES = 100_000
#: The largest YAML or JSON file simreal reads (configs, robots, targets, manifests, checkpoint and pipeline states):
#: the largest of them hold a few hundred kilobytes, so 16 MiB leaves room for any real one, and a bigger file (or a
#: device that never ends) is refused before it is read.
MAX_TEXT_BYTES = 16 * 2**20
#: The deepest a YAML or JSON document may nest lists and mappings: simreal's own files nest fewer than 10 levels; a
#: deeper document is refused before a parser recurses into it (Python's recursion limit is about 1000 frames, and
#: the parsers spend several per level).
MAX_DEPTH = 100


def size_text(size: int) -> str:
    """A byte count as a short figure: ``16 MiB``, ``512 KiB``, ``12 bytes``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder, not a file"),
    (stat.S_ISFIFO, "a named pipe (FIFO), not a regular file"),
    (stat.S_ISCHR, "a character device, not a regular file"),
    (stat.S_ISBLK, "a block device, not a regular file"),
    (stat.S_ISSOCK, "a socket, not a regular file"),
)


@contextmanager
def open_regular(
    path: str | os.PathLike[str], error: type[SimrealError], limit: int = MAX_TEXT_BYTES
) -> Iterator[IO[bytes]]:
    """Open ``path`` for reading in binary, once it is known to be a regular file of at most ``limit`` bytes.

    The file is opened without blocking and checked through its open descriptor: a named pipe with no writer does
    not hang the open, and what is checked is what is read.

    Raises:
        error: a missing or unreadable file, a folder, a named pipe, a device or a socket, or a file over
            ``limit`` (naming the limit).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read file ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        problem = next((kind for is_kind, kind in _FILE_KINDS if is_kind(info.st_mode)), None)
        if problem is None and not stat.S_ISREG(info.st_mode):
            problem = "not a regular file"
        if problem is None and info.st_size > limit:
            problem = f"{size_text(info.st_size)}, over the {size_text(limit)} limit of a file simreal reads"
    except BaseException:
        os.close(fd)
        raise
    if problem is not None:
        os.close(fd)
        raise error(f"{path}: {problem}")
    with open(fd, "rb") as handle:
        yield handle


def contained_file(folder: str | os.PathLike[str], name: str, where: str | None = None) -> Path:
    """``folder / name`` (as given, for messages) once it is known to be a regular file inside ``folder`` after
    symlinks are resolved: a run, a checkpoint or an export that was downloaded cannot make simreal read a file
    elsewhere on the machine.

    Args:
        folder: the folder the file belongs to.
        name: the file's path relative to it.
        where: what errors name before the path (a manifest and its field, for a file a manifest names).

    Raises:
        DataError: the file is missing, not a regular file, or lies outside ``folder`` (naming where it leads).
    """
    folder = Path(folder)
    path = folder / name
    named = f"{where}: {path}" if where else str(path)
    resolved = path.resolve()
    if not resolved.is_relative_to(folder.resolve()):
        target = "" if resolved == path else f" (it leads to {resolved})"
        raise DataError(f"{named}: outside {folder}{target}: only files inside the folder are read")
    if not resolved.exists():
        raise DataError(f"{named}: not found")
    if not resolved.is_file():
        raise DataError(f"{named}: not a regular file")
    return path


def read_bytes(path: str | os.PathLike[str], error: type[SimrealError], limit: int = MAX_TEXT_BYTES) -> bytes:
    """The content of ``path``, a regular file of at most ``limit`` bytes (see :func:`open_regular`)."""
    with open_regular(path, error, limit) as handle:
        try:
            raw = handle.read(limit + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read file ({exc.strerror})") from None
    if len(raw) > limit:  # it grew while it was read
        raise error(f"{path}: over the {size_text(limit)} limit of a file simreal reads")
    return raw


def read_npz(path: str | os.PathLike[str], error: type[SimrealError], limit: int) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive, read without pickles, from a regular file of at most ``limit`` bytes whose
    arrays hold at most ``limit`` bytes once uncompressed (each array's declared size is read from its header
    before anything is allocated: numpy allocates what a header declares before it reads the data).

    Raises:
        error: not a regular file, over ``limit`` (the file or its arrays), not an ``.npz`` archive (a single
            ``.npy`` array included), or damaged; naming the file (and the array over the limit).
    """
    path = Path(path)
    with open_regular(path, error, limit) as handle:
        try:
            _check_npz_sizes(path, handle, error, limit)
            loaded = np.load(handle, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise error(f"{path}: not an .npz archive of named arrays (a single .npy array)")
            with loaded as archive:
                return {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as exc:
            # a 0-byte file is "no data" to numpy; a truncated one fails inside zipfile
            problem = "empty file" if path.stat().st_size == 0 else f"{type(exc).__name__}: {exc}"
            raise error(f"{path}: not a readable .npz file ({problem})") from None


def _check_npz_sizes(path: Path, handle: IO[bytes], error: type[SimrealError], limit: int) -> None:
    """The arrays of the ``.npz`` open in ``handle`` hold at most ``limit`` bytes in all, by their headers."""
    magic = np.lib.format.MAGIC_PREFIX
    if not zipfile.is_zipfile(handle):
        handle.seek(0)
        if handle.read(len(magic)) == magic:
            raise error(f"{path}: not an .npz archive of named arrays (a single .npy array)")
        handle.seek(0)
        return  # np.load tells what it is
    total = 0
    with zipfile.ZipFile(handle) as archive:
        for info in archive.infolist():
            with archive.open(info) as member:
                if member.read(len(magic)) != magic:
                    total += info.file_size  # not an array: numpy reads it as bytes, as long as the zip says
                else:
                    member.seek(0)
                    version = np.lib.format.read_magic(member)
                    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else None
                    shape, _, dtype = (read_header or np.lib.format.read_array_header_2_0)(member)
                    total += math.prod(shape) * dtype.itemsize
            if total > limit:
                raise error(
                    f"{path}: {info.filename.removesuffix('.npy')}: the arrays hold more than {size_text(limit)} "
                    "uncompressed, over the limit of this file"
                )
    handle.seek(0)


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses duplicate keys (YAML leaves them undefined; PyYAML keeps the last),
    documents nested deeper than :data:`MAX_DEPTH` levels (counted as they are composed, before the composer's
    recursion goes deeper) and documents whose aliases expand past :data:`MAX_YAML_NODES` nodes or
    :data:`MAX_DEPTH` levels."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_sequence_node(self, anchor: Any) -> Any:
        with self._nested():
            return super().compose_sequence_node(anchor)

    def compose_mapping_node(self, anchor: Any) -> Any:
        with self._nested():
            return super().compose_mapping_node(anchor)

    @contextmanager
    def _nested(self) -> Iterator[None]:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            yield
        finally:
            self._depth -= 1

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
        if node is not None:
            problem = _expansion_problem(node)
            if problem is not None:
                raise yaml.YAMLError(problem)
        return node


def _expansion_problem(root: yaml.Node) -> str | None:
    """What is wrong with ``root`` once its aliases are expanded: more than :data:`MAX_YAML_NODES` nodes, more than
    :data:`MAX_DEPTH` levels, or an alias inside the node it names (a loop); ``None`` when nothing is. Each distinct
    node is measured once (aliases share a node object), so a bomb is measured without being expanded."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # post-order without recursion: a deep document is no stack overflow
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            own = 1 if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) else 0
            depth[key] = own + max((depth[id(child)] for child in children), default=0)
            if size[key] > MAX_YAML_NODES:
                return f"more than {MAX_YAML_NODES} values once its aliases are expanded"
            if depth[key] > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels once its aliases are expanded"
            continue
        if key in size:
            continue
        if key in entered:  # entered and not finished: the node holds an alias to itself
            return "an alias inside the node it names (a loop)"
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def parse_yaml(text: str) -> Any:
    """Parse YAML text with :class:`StrictLoader` (``yaml.YAMLError`` on a problem)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_text(path: str | os.PathLike[str], error: type[SimrealError], limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path``, a regular file of at most ``limit`` bytes.

    Raises:
        error: the file is missing or unreadable, not a regular file (a folder, a named pipe, a device), over
            ``limit``, or not UTF-8 text (naming the byte offset).
    """
    raw = read_bytes(path, error, limit)
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
        error: the file is missing, not a regular file, over :data:`MAX_TEXT_BYTES`, not UTF-8, not valid YAML (a
            duplicate key, nesting deeper than :data:`MAX_DEPTH` and an alias bomb included), or not a mapping at
            its top level.
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
        DataError: the file exists but is not a regular file of at most :data:`MAX_TEXT_BYTES`, is not UTF-8 JSON,
            nests deeper than :data:`MAX_DEPTH` levels, or its top level is not an ``expect``.
    """
    path = Path(path)
    if not path.exists():
        return default
    data = parse_json(read_text(path, DataError), str(path))
    if not isinstance(data, expect):
        wanted = "an object" if expect is dict else expect.__name__
        raise DataError(f"{path}: expected {wanted} at the top level, got {type(data).__name__}")
    return data


#: What the nesting scan of a JSON text looks at: an escape (two characters, so an escaped quote is no quote), a
#: quote, a bracket.
_JSON_TOKENS = re.compile(r'\\.|["\[\]{}]', re.DOTALL)


def json_too_deep(text: str, limit: int = MAX_DEPTH) -> int | None:
    """Where a JSON text first nests deeper than ``limit`` lists and objects (a character offset), ``None`` when it
    does not: a scan without recursion, to run before ``json.loads`` (whose parser recurses once per level).

    Brackets inside strings do not count. A backslash outside a string is invalid JSON, which ``json.loads`` refuses
    at that point: the scan and the parser agree on everything before it."""
    if text.count("[") + text.count("{") <= limit:
        return None  # too few brackets to nest that deep: no scan needed
    depth, in_string = 0, False
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string or token[0] == "\\":
            continue
        elif token in "[{":
            depth += 1
            if depth > limit:
                return match.start()
        else:
            depth -= 1
    return None


def parse_json(text: str, where: str, error: type[SimrealError] = DataError) -> Any:
    """Parse a JSON text read from ``where`` (a file, or a file and its field), its nesting checked first.

    Raises:
        error: not valid JSON, or nested deeper than :data:`MAX_DEPTH` levels; naming ``where``.
    """
    deep_at = json_too_deep(text)
    if deep_at is not None:
        raise error(f"{where}: JSON nested deeper than {MAX_DEPTH} levels (at character {deep_at})")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise error(f"{where}: not readable JSON ({exc})") from None
    except RecursionError:  # a deep document in a deep call stack: the scan's limit leaves room, this is a guard
        raise error(f"{where}: JSON nested too deeply to read") from None


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
