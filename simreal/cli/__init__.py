"""The ``simreal`` command line: one module per command group, each parsing arguments, calling the library and
printing. Nothing else lives here.

- :mod:`~simreal.cli.envs`: ``simreal envs`` (robots, parameters, targets, starter robot files).
- :mod:`~simreal.cli.train`: ``simreal train`` (and ``--resume``); :mod:`~simreal.cli.progress`: its progress bar.
- :mod:`~simreal.cli.evaluate`: ``simreal evaluate`` and the evaluation table other commands print.
- :mod:`~simreal.cli.sysid`: ``simreal collect`` and ``simreal sysid``.
- :mod:`~simreal.cli.finetune`: ``simreal finetune``; :mod:`~simreal.cli.transfer`: ``simreal transfer``.
- :mod:`~simreal.cli.robustness`: ``simreal robustness``; :mod:`~simreal.cli.record`: ``simreal record``.
- :mod:`~simreal.cli.sweep`: ``simreal sweep``; :mod:`~simreal.cli.deploy`: ``simreal export`` and ``simreal deploy``.
- :mod:`~simreal.cli.common`: the consoles, one-line errors with exit status 2, the optional dependencies check.
- :mod:`~simreal.cli.__main__`: ``python -m simreal.cli``.
"""

from __future__ import annotations

import typer

from simreal.cli.deploy import deploy, export
from simreal.cli.envs import envs
from simreal.cli.evaluate import evaluate
from simreal.cli.finetune import finetune
from simreal.cli.record import record
from simreal.cli.robustness import robustness
from simreal.cli.sweep import sweep
from simreal.cli.sysid import collect, sysid
from simreal.cli.train import train
from simreal.cli.transfer import transfer

app = typer.Typer(
    name="simreal",
    help="Sim-to-real transfer for reinforcement learning on domain-randomized MuJoCo robots.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from simreal import __version__

        typer.echo(f"simreal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit.", metavar=""
    ),
) -> None:
    """Sim-to-real transfer for reinforcement learning on domain-randomized MuJoCo robots."""


for command in (envs, train, evaluate, collect, sysid, finetune, transfer, robustness, record, sweep, export, deploy):
    app.command()(command)


def main() -> None:
    """Entry point of the ``simreal`` console script."""
    app()
