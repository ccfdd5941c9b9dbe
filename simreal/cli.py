"""The ``simreal`` command line: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from simreal.errors import SimrealError

app = typer.Typer(
    name="simreal",
    help="Sim-to-real transfer for reinforcement learning on domain-randomized MuJoCo robots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Sim-to-real transfer for reinforcement learning on domain-randomized MuJoCo robots."""


def _one_line_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the package's errors into one line on stderr and exit status 2."""

    @wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SimrealError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return run


@app.command()
@_one_line_errors
def envs(
    robot: list[str] = typer.Option(None, "--robot", "-r", help="Show only this robot (repeatable)."),
    target_file: str = typer.Option(None, "--target", help="Validate a target YAML file and show it."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """List the robots, their randomizable parameters and their shipped targets."""
    from simreal.catalogue import catalogue, target_entry

    if target_file is not None:
        entry = target_entry(target_file)
        if as_json:
            sys.stdout.write(json.dumps(entry, indent=2) + "\n")
        else:
            console.print(_targets_table(f"target file {target_file} (base: {entry['base']})", [entry]))
        return
    entries = catalogue(robot or None)
    if as_json:
        sys.stdout.write(json.dumps({"robots": entries}, indent=2) + "\n")
        return
    for entry in entries:
        table = Table(title=f"{entry['robot']}  ({entry['id']}, built on {entry['gym_id']})", title_justify="left")
        table.add_column("parameter", no_wrap=True)
        table.add_column("element")
        table.add_column("nominal", justify="right", no_wrap=True)
        table.add_column("range", no_wrap=True)
        table.add_column("distribution")
        table.add_column("limits", no_wrap=True)
        for p in entry["parameters"]:
            spread = f" μ={p['mean']:g} σ={p['std']:g}" if "std" in p else ""
            table.add_row(
                p["name"],
                p["element"] or "all",
                f"{p['nominal']:.4g} {p['unit']}".strip(),
                f"{p['range'][0]:g}–{p['range'][1]:g}",
                p["distribution"] + spread,
                f"{p['limits'][0]:g}–{p['limits'][1]:g}",
            )
        console.print(table)
        console.print(_targets_table(f"{entry['robot']} targets", entry["targets"]))
        console.print()


_EFFECT_LABELS = {"action_delay_steps": "delay", "obs_noise_std": "obs σ", "action_noise_std": "action σ"}


def _targets_table(title: str, targets: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("target", no_wrap=True)
    table.add_column("multipliers")
    table.add_column("effects")
    table.add_column("description")
    for t in targets:
        multipliers = ", ".join(f"{k}={v:g}" for k, v in t["parameters"].items())
        effects = ", ".join(f"{_EFFECT_LABELS[k]}={v:g}" for k, v in t["effects"].items() if v)
        table.add_row(t["name"], multipliers or "nominal", effects or "none", t["description"])
    return table


def main() -> None:
    """Entry point of the ``simreal`` console script."""
    app()


if __name__ == "__main__":
    main()
