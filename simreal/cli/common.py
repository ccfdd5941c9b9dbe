"""What every command shares: the consoles, one-line errors with exit status 2, and the optional dependencies
check."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from simreal.errors import TRUST_PICKLES, Interrupted, SetupError, SimrealError

console = Console()
err_console = Console(stderr=True)

#: What the ``train`` extra brings, for the commands that train, evaluate or run a trained policy.
TRAIN_EXTRA = ("stable_baselines3", "torch", "tensorboard", "matplotlib")


#: The library's arguments that every command takes as these flags.
COMMON_FLAGS = {"override": "--set", "device": "--device"}


def flag(default: bool | None, declaration: str, description: str) -> Any:
    """A boolean option (``--name``, or ``--name/--no-name`` with a ``None`` default: decided later) shown in
    ``--help`` without a metavar."""
    return typer.Option(default, declaration, help=description, metavar="")


#: The library's ``trust_pickles`` argument, for the commands that take it as a flag.
TRUST_FLAG = {"trust_pickles": "--trust-pickles"}


def trust_pickles_flag() -> Any:
    """``--trust-pickles``: let a policy or run holding stable-baselines3's pickles only load."""
    return flag(False, "--trust-pickles", f"Allow a run or model holding pickles only: {TRUST_PICKLES}.")


def say_trusted(trust_pickles: bool) -> None:
    """One line on stderr when pickles are trusted: what the flag just allowed."""
    if trust_pickles:
        err_console.print(f"[yellow]--trust-pickles:[/] will {TRUST_PICKLES}", highlight=False, soft_wrap=True)


def one_line_errors(
    command: Callable[..., Any] | None = None, *, flags: Mapping[str, str] | None = None
) -> Callable[..., Any]:
    """Turn the package's errors into one line on stderr and exit status 2.

    The library names its own arguments in its errors (``points: at least 2 points``); ``flags`` maps those the
    command fills from a flag to the flag (``{"points": "--grid"}``, besides :data:`COMMON_FLAGS`), so the user
    reads the flag they typed. Use as ``@one_line_errors`` or ``@one_line_errors(flags={...})``.
    """
    mapping = {**COMMON_FLAGS, **(flags or {})}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            except SimrealError as exc:
                error_line(as_flags(str(exc), mapping))
                raise typer.Exit(code=2) from None
            except Interrupted as exc:
                err_console.print(
                    f"{escape(str(exc))}: the same command continues from it", highlight=False, soft_wrap=True
                )
                raise typer.Exit(code=exc.exit_code) from None
            except OSError as exc:
                # what the file system refused outside the library's own writes (a library's save, a folder in
                # the way)
                if exc.errno is None or exc.filename is None:
                    raise
                error_line(f"{exc.filename}: {exc.strerror}")
                raise typer.Exit(code=2) from None

        return run

    return decorate(command) if command is not None else decorate


def as_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with the first library argument it names (at its start, or after a file's ``path: ``) written
    as the command's flag."""
    found = [
        (match.start(2), -len(name), match, name)
        for name in flags
        if (match := re.search(rf"(^|: )({re.escape(name)})(?=[: ])", message)) is not None
    ]
    if not found:
        return message
    _, _, match, name = min(found)
    return message[: match.start(2)] + flags[name] + message[match.end(2) :]


def error_line(message: str) -> None:
    """Print ``error: message`` on one line of stderr."""
    # escaped: messages hold brackets ("range [0.5, 1.5]", "simreal[train]") that are not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def require_training(what: str) -> None:
    """Raise :class:`SetupError` naming the extra to install when the training dependencies are missing."""
    missing = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise SetupError(f"{what} needs {', '.join(missing)}: pip install 'simreal[train]'")
