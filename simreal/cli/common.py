"""What every command shares: the consoles, one-line errors with exit status 2, and the optional dependencies
check."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from simreal.errors import Interrupted, SetupError, SimrealError

console = Console()
err_console = Console(stderr=True)

#: What the ``train`` extra brings, for the commands that train, evaluate or run a trained policy.
TRAIN_EXTRA = ("stable_baselines3", "torch", "tensorboard", "matplotlib")


def one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the package's errors into one line on stderr and exit status 2."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SimrealError as exc:
            error_line(str(exc))
            raise typer.Exit(code=2) from None
        except Interrupted as exc:
            err_console.print(
                f"{escape(str(exc))}: the same command continues from it", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=exc.exit_code) from None
        except OSError as exc:
            # what the file system refused outside the library's own writes (a library's save, a folder in the way)
            if exc.errno is None or exc.filename is None:
                raise
            error_line(f"{exc.filename}: {exc.strerror}")
            raise typer.Exit(code=2) from None

    return run


def error_line(message: str) -> None:
    """Print ``error: message`` on one line of stderr."""
    # escaped: messages hold brackets ("range [0.5, 1.5]", "simreal[train]") that are not markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def require_training(what: str) -> None:
    """Raise :class:`SetupError` naming the extra to install when the training dependencies are missing."""
    missing = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise SetupError(f"{what} needs {', '.join(missing)}: pip install 'simreal[train]'")
