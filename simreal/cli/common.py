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

from simreal.errors import SetupError, SimrealError

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
            # escaped: messages hold brackets ("range [0.5, 1.5]", "simreal[train]") that are not markup
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return run


def require_training(what: str) -> None:
    """Raise :class:`SetupError` naming the extra to install when the training dependencies are missing."""
    missing = [name for name in TRAIN_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise SetupError(f"{what} needs {', '.join(missing)}: pip install 'simreal[train]'")
