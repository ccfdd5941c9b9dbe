"""The package's error types.

Every error simreal raises on bad input derives from :class:`SimrealError`, and its message names the file and the
field at fault. The CLI catches this base class only: it prints the message on one line and exits with status 2.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class SimrealError(Exception):
    """Base class of every error simreal raises on bad input."""


class SpecError(SimrealError):
    """A robot spec or a target is invalid: unknown robot or parameter, bad range or multiplier, bad YAML."""


class ConfigError(SimrealError):
    """An experiment config is invalid."""


class DataError(SimrealError):
    """A data or model file is missing, corrupt or does not fit the robot."""


def where(source: object, field: str | None = None) -> str:
    """Format ``source`` (a file path or a label) and an optional dotted field as a message prefix."""
    return f"{source}: {field}" if field else f"{source}"
