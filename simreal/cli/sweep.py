"""``simreal sweep``: many seeds and grid points of a config as Ray tasks, aggregated over seeds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from simreal.cli.common import console, err_console, one_line_errors, require_training


@one_line_errors(
    flags={
        "grid": "--grid",
        "seeds": "--seeds",
        "eval_seed": "--eval-seed",
        "address": "--address",
        "cpus_per_job": "--cpus-per-job",
    }
)
def sweep(
    config: str = typer.Argument(..., help="A training or transfer config YAML, or a shipped config's name."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds per grid point: first-seed .. first-seed + N - 1."),
    first_seed: int = typer.Option(0, "--first-seed", min=0, help="The first seed."),
    grid: list[str] = typer.Option(
        None, "--grid", help="key=v1,v2 (repeatable): every combination is a grid point; lists go in brackets."
    ),
    overrides: list[str] = typer.Option(None, "--set", help="Override a field of every job: key=value (repeatable)."),
    address: str = typer.Option(None, "--address", help="An existing Ray cluster (e.g. auto); default: local Ray."),
    cpus_per_job: float = typer.Option(1.0, "--cpus-per-job", min=0.01, help="Ray CPUs each job reserves."),
    episodes: int = typer.Option(10, "--episodes", min=1, help="Evaluation episodes per env of each trained policy."),
    eval_seed: int = typer.Option(1000, "--eval-seed", min=0, help="Seed of those evaluations."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (for every job)."),
    out: Path = typer.Option(None, "--out", help="The sweep's folder (default: runs/sweep_<config>); rerun to resume."),
) -> None:
    """Run train + evaluate (or transfer) jobs over seeds and a grid on Ray; mean and 95% CI over seeds.

    A failed job is reported and the others go on; a re-run skips finished jobs. The mean and 95% CI over seeds for
    every env are printed and written to the sweep's folder.
    """
    require_training("simreal sweep")
    from simreal.tools.sweep import (
        JobOutcome,
        check_sweep_options,
        parse_grid,
        plan_sweep,
        require_ray,
        run_sweep,
        write_aggregate,
    )

    require_ray()
    check_sweep_options(device, address, cpus_per_job)  # before Ray starts or anything is planned

    folder = out or Path("runs") / f"sweep_{Path(config).stem}"
    chosen = range(first_seed, first_seed + seeds)  # a range: a huge --seeds is refused, not allocated
    grid_points = parse_grid(grid or [])
    jobs = plan_sweep(
        config, folder, chosen, grid_points, overrides=list(overrides or []), episodes=episodes, eval_seed=eval_seed
    )
    err_console.print(f"{len(jobs)} jobs into {folder}")

    def event(outcome: JobOutcome) -> None:
        detail = f": {escape(outcome.error)}" if outcome.error else ""
        took = f" ({outcome.seconds:.0f} s)" if outcome.seconds else ""
        err_console.print(f"{outcome.status:>7}  {escape(outcome.job.name)}{took}{detail}", highlight=False)

    result = run_sweep(jobs, address=address, cpus_per_job=cpus_per_job, device=device, on_event=event)
    write_aggregate(result.rows, folder)
    keys = [key for key in (result.rows[0] if result.rows else {}) if key not in _FIXED]
    table = Table(title=f"sweep: {config}, mean return over seeds", title_justify="left")
    for column in [*keys, "env", "seeds", "mean [95% CI]", "per seed"]:
        table.add_column(column, justify="left" if column in (*keys, "env") else "right")
    for row in result.rows:
        mean = f"{row['mean_return']:.1f} [{row['ci_low']:.0f}, {row['ci_high']:.0f}]"
        table.add_row(*(str(row[k]) for k in keys), row["env"], str(row["seeds"]), mean, row["per_seed"])
    console.print(table)
    done = sum(o.status != "failed" for o in result.outcomes)
    console.print(f"{done} of {len(jobs)} jobs finished; summary: {folder / 'summary.csv'}, {folder / 'summary.png'}")
    if result.failed:
        for outcome in result.failed:
            err_console.print(
                f"failed: {escape(outcome.job.name)}: see {outcome.job.folder}/error.txt", highlight=False
            )
        raise typer.Exit(code=1)


_FIXED = ("env", "seeds", "mean_return", "ci_low", "ci_high", "per_seed")
