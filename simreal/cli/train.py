"""``simreal train``: train a new run from a config, or continue one with ``--resume RUN_DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from simreal.cli.common import (
    TRUST_FLAG,
    as_flags,
    console,
    err_console,
    one_line_errors,
    require_training,
    say_trusted,
    trust_pickles_flag,
)
from simreal.cli.evaluate import evaluation_table
from simreal.errors import ConfigError, Interrupted


@one_line_errors(flags=TRUST_FLAG)
def train(
    config: str = typer.Argument(
        None, help="A config YAML, or the name of a shipped one (e.g. hopper_ppo_dr); optional with --resume."
    ),
    overrides: list[str] = typer.Option(None, "--set", help="Override a field by dotted path: key=value (repeatable)."),
    run_dir: Path = typer.Option(
        None, "--run-dir", help="Run directory of a new run (default: runs/<robot>_<algo>_<seed>_<time>)."
    ),
    seed: int = typer.Option(None, "--seed", help="Seed (overrides the config's)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    resume: Path = typer.Option(
        None,
        "--resume",
        help="Continue this run directory from its last checkpoint, with its own config "
        "(extend its budget with --set total_timesteps=N).",
    ),
    trust_pickles: bool = trust_pickles_flag(),
) -> None:
    """Train PPO or SAC on randomized dynamics, evaluate on the targets, log everything to TensorBoard."""
    require_training("simreal train")
    from simreal.cli.progress import RichProgress
    from simreal.runs.rundir import default_run_name
    from simreal.runs.setup import load_setup, resume_setup
    from simreal.train.trainer import train as run_training

    settings = list(overrides or []) + ([f"seed={seed}"] if seed is not None else [])
    labels = {"seed": "--seed"} if seed is not None else {}
    if resume is not None:
        if run_dir is not None and Path(run_dir) != Path(resume):
            raise ConfigError("--run-dir: --resume names the run directory already")
        setup = resume_setup(resume, config, settings, labels)
        folder = resume
    elif config is None:
        raise ConfigError("CONFIG: missing (a config YAML or a shipped config name), or --resume RUN_DIR")
    else:
        setup = load_setup(config, settings, labels)
        folder = run_dir or Path("runs") / default_run_name(setup.config)
    say_trusted(trust_pickles)
    try:
        result = run_training(
            setup,
            folder,
            device=device,
            resume=resume is not None,
            callbacks=[RichProgress(setup.config.total_timesteps, err_console)],
            command=sys.argv,
            on_resume=_say_passed_over,
            trust_pickles=trust_pickles,
        )
    except Interrupted as stopped:
        err_console.print(
            f"{escape(str(stopped))}: continue with simreal train --resume {escape(str(folder))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=stopped.exit_code) from None
    total = setup.config.total_timesteps
    if resume is not None and result.trained == 0:
        console.print(
            f"the run is complete: {result.num_timesteps} of {total} timesteps in {result.run_dir} (trained 0 more; to "
            f"train on: simreal train --resume {result.run_dir} --set total_timesteps=N, N > {result.num_timesteps})",
            soft_wrap=True,
        )
    elif resume is not None:
        console.print(
            f"resumed at {result.start_timesteps} timesteps, trained {result.trained} more: "
            f"{result.num_timesteps} of {total} in {result.run_dir}"
        )
    else:
        console.print(f"trained {result.num_timesteps} of {total} timesteps: {result.run_dir}")
    console.print(evaluation_table(result.final_eval, f"{setup.spec.robot}: final evaluation"))
    console.print(f"TensorBoard: tensorboard --logdir {result.run_dir / 'tb'}")


def _say_passed_over(checkpoint: Path | None, passed_over: list[str]) -> None:
    """Damaged checkpoints a resume passed over, said before it starts from an older one."""
    for line in passed_over:
        err_console.print(
            f"[yellow]passed over:[/] {escape(as_flags(line, TRUST_FLAG))}", highlight=False, soft_wrap=True
        )
    if checkpoint is not None and passed_over:
        err_console.print(f"resuming from {escape(str(checkpoint))}", highlight=False, soft_wrap=True)
