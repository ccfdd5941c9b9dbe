"""The package's error types, and the one way to say that a name is unknown.

Every error simreal raises on bad input derives from :class:`SimrealError`, and its message names the file and the
field at fault. The CLI catches this base class only: it prints the message on one line and exits with status 2.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class SimrealError(Exception):
    """Base class of every error simreal raises on bad input."""


class SpecError(SimrealError):
    """A robot spec or a target is invalid: unknown robot or parameter, bad range or multiplier, bad YAML."""


class ConfigError(SimrealError):
    """An experiment config is invalid."""


class DataError(SimrealError):
    """A data or model file is missing, corrupt or does not fit the robot."""


class SetupError(SimrealError):
    """The machine lacks something a command needs: a rendering library, an optional dependency."""


def unknown_name(kind: str, name: object, known: Iterable[str], owner: str | None = None) -> str:
    """The message for a name that is not among ``known``: ``unknown parameter 'x' for hopper (known: a, b)``.

    Args:
        kind: what the name should be (``parameter``, ``robot``, ``target``...).
        name: the name given.
        known: the names that would have been accepted, in the order to list them.
        owner: what the names belong to (a robot), when it helps.
    """
    listed = ", ".join(known) or "none"
    of = f" for {owner}" if owner else ""
    return f"unknown {kind} {name!r}{of} (known: {listed})"
