"""``simreal robustness``: a policy's return over a grid of dynamics, as a CSV, a plot and a TensorBoard image."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from simreal.cli.common import console, one_line_errors, require_training


@one_line_errors
def robustness(
    source: Path = typer.Argument(..., help="A run directory, or a model file inside one."),
    params: str = typer.Option(..., "--params", help="One or two axes, comma-separated: parameters or effects."),
    grid: int = typer.Option(9, "--grid", help="Grid points per axis."),
    span: list[str] = typer.Option(
        None,
        "--range",
        help="LOW:HIGH, once for every axis or once per axis; default: around the training range "
        "and the shipped targets.",
    ),  # fmt: skip
    episodes: int = typer.Option(10, "--episodes", min=1, help="Episodes per cell."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the episodes (the same in every cell) and bootstrap."),
    against: Path = typer.Option(None, "--against", help="A second policy: both on the same grid, and the difference."),
    workers: int = typer.Option(None, "--workers", min=1, help="Processes; default: one per core."),
    true_dynamics: bool = typer.Option(
        False,
        "--true-dynamics",
        help="Adaptive policies: act on the true dynamics, not the estimate.",
        metavar="",
    ),
    out: Path = typer.Option(None, "--out", help="Output folder; default: RUN/robustness/<axes>."),
) -> None:
    """Evaluate a policy over a 1-D or 2-D grid of parameter multipliers or effects (others nominal)."""
    require_training("simreal robustness")
    from simreal.runs.rundir import find_run_dir
    from simreal.tools.robustness import parse_span, robustness_map, write_map

    names = [name.strip() for name in params.split(",") if name.strip()]
    result = robustness_map(
        source, names, grid, [parse_span(s) for s in span or []], episodes, seed, workers, against, true_dynamics
    )
    if out is None:
        run_dir = source if source.is_dir() else find_run_dir(source) or source.parent
        out = run_dir / "robustness" / "_".join(names)
    write_map(result, out)
    rows = result.rows(seed)
    table = Table(title=f"{result.meta['robot']}: {result.meta['policy']}", title_justify="left")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("mean return [95% CI]", justify="right")
    if result.against is not None:
        table.add_column("against", justify="right")
        table.add_column("difference [95% CI]", justify="right")
    for row in rows:
        cells = [f"{row[name]:g}" for name in names]
        cells.append(f"{row['mean_return']:.1f} [{row['ci_low']:.0f}, {row['ci_high']:.0f}]")
        if result.against is not None:
            cells.append(f"{row['against_mean_return']:.1f}")
            low, high = row["difference_ci_low"], row["difference_ci_high"]
            cells.append(f"{row['difference']:+.1f} [{low:+.0f}, {high:+.0f}]")
        table.add_row(*cells)
    console.print(table)
    console.print(f"wrote {out}/robustness.csv, robustness.json, robustness.png, tb/")
