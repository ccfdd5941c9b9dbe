"""The package's error types, and the one way to say that a name is unknown.

Every error simreal raises on bad input derives from :class:`SimrealError`, and its message names the file and the
field at fault. The CLI catches this base class only: it prints the message on one line and exits with status 2.
Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable


class SimrealError(Exception):
    """Base class of every error simreal raises on bad input."""


class SpecError(SimrealError):
    """A robot spec or a target is invalid: unknown robot or parameter, bad range or multiplier, bad YAML."""


class ConfigError(SimrealError):
    """An experiment config is invalid."""


class DataError(SimrealError):
    """A data or model file is missing, corrupt or does not fit the robot."""


class StorageError(SimrealError):
    """The file system refused a write: a read-only or full disk, no permission, a folder or a file in the way."""


class BusyError(SimrealError):
    """A folder is held by another process (a run directory, a pipeline's or a sweep's folder)."""


class SetupError(SimrealError):
    """The machine lacks something a command needs: a rendering library, an optional dependency."""


class Interrupted(KeyboardInterrupt):
    """A training stopped by SIGINT or SIGTERM after saving a checkpoint to resume from (a ``KeyboardInterrupt``,
    so code that stops on Ctrl-C still does).

    Attributes:
        run_dir: the run directory to resume.
        num_timesteps: the timesteps the saved checkpoint holds.
        signal_name: ``SIGINT`` or ``SIGTERM``.
        exit_code: the shell's status for that signal (130, 143).
    """

    def __init__(self, run_dir: object, num_timesteps: int, signal_name: str, exit_code: int) -> None:
        super().__init__(f"{run_dir}: stopped by {signal_name} at {num_timesteps} timesteps, checkpoint saved")
        self.run_dir, self.num_timesteps = run_dir, num_timesteps
        self.signal_name, self.exit_code = signal_name, exit_code


#: What trusting pickles allows (``--trust-pickles``, ``trust_pickles=True``), said once wherever it is offered.
TRUST_PICKLES = (
    "unpickle stable-baselines3's model.zip data and vecnormalize.pkl: a pickle can run any code it carries, so only "
    "for files from a source you trust"
)


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
    return f"unknown {kind} {shown(name)}{of} (known: {listed})"


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6
_SHORT.maxlevel = 3


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a value quoted in an error stays one short line, whatever its
    size."""
    short = _SHORT.repr(value)
    return short if len(short) <= limit else short[: limit - 3] + "..."
