"""``simreal robustness``: a policy's return over a grid of dynamics, as a CSV, a plot and a TensorBoard image, and
how much of its training range keeps 70% of its nominal return."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from simreal.cli.common import (
    TRUST_FLAG,
    console,
    flag,
    one_line_errors,
    require_training,
    say_trusted,
    trust_pickles_flag,
)
from simreal.fileio import check_writable

if TYPE_CHECKING:
    from simreal.tools.coverage import AxisCoverage, Coverage


@one_line_errors(
    flags={
        "params": "--params",
        "points": "--grid",
        "spans": "--range",
        "against": "--against",
        "episodes": "--episodes",
        "seed": "--seed",
        **TRUST_FLAG,
    }
)
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
    true_dynamics: bool = flag(
        False, "--true-dynamics", "Adaptive policies: act on the true dynamics, not the estimate."
    ),
    out: Path = typer.Option(None, "--out", help="Output folder; default: RUN/robustness/<axes>."),
    trust_pickles: bool = trust_pickles_flag(),
) -> None:
    """Evaluate a policy over a 1-D or 2-D grid of parameter multipliers or effects (others nominal)."""
    require_training("simreal robustness")
    from simreal.runs.rundir import run_dir_of
    from simreal.sysid.identify import split_names
    from simreal.tools.coverage import map_coverage
    from simreal.tools.grid import parse_span
    from simreal.tools.map_files import write_map
    from simreal.tools.robustness import robustness_map

    names = split_names(params)
    say_trusted(trust_pickles)
    if out is not None:
        check_writable(out, folder=True)  # before the grid is spent
    result = robustness_map(
        source,
        names,
        points=grid,
        spans=[parse_span(s) for s in span or []],
        episodes=episodes,
        seed=seed,
        workers=workers,
        against=against,
        true_dynamics=true_dynamics,
        trust_pickles=trust_pickles,
    )
    if out is None:
        out = run_dir_of(source) / "robustness" / "_".join(names)
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
    for line in coverage_lines(map_coverage(result, seed)):
        console.print(line, markup=False, highlight=False)
    console.print(f"wrote {out}/robustness.csv, robustness.json, robustness.png, tb/")


def coverage_lines(coverages: dict[str, Coverage]) -> list[str]:
    """Each policy's coverage of its training range, as lines: its nominal return, then one line per axis (and a
    2-D map's in-range region)."""
    lines = ["inside the training range (others nominal), relative to the nominal return:"]
    for which, coverage in coverages.items():
        if coverage.nominal_return is None:
            nominal = "no nominal return"
        else:
            where = "its grid cell" if coverage.nominal_from == "grid" else "an extra cell"
            nominal = f"nominal return {coverage.nominal_return:.1f} ({where})"
        lines.append(f"{which} ({coverage.policy}): {nominal}")
        entries = list(coverage.axes.items())
        if coverage.region is not None:
            entries.append(("region", coverage.region))
        lines.extend(f"  {name}: {_coverage_line(figures, coverage.threshold)}" for name, figures in entries)
    return lines


def _coverage_line(figures: AxisCoverage, threshold: float) -> str:
    parts = []
    if any(figures.training.values()):  # else the reason says there is none
        training = ", ".join("none" if r is None else f"{r[0]:g}-{r[1]:g}" for r in figures.training.values())
        parts.append(f"training {training}")
    if figures.worst_cell is not None and figures.worst_return is not None:
        at = ", ".join(f"{value:g}" for value in figures.worst_cell.values())
        worst = f"worst cell ({at}) {figures.worst_return:.1f}"
        if figures.worst_relative is not None:
            worst += f" = {figures.worst_relative:.0%} of nominal"
        if figures.worst_relative_ci is not None:
            low, high = figures.worst_relative_ci
            worst += f" (95% CI {low:.0%}-{high:.0%})"
        parts.append(worst)
    if figures.fraction_at_70 is not None:
        measure = "of its length, interpolated" if figures.measured_by == "length" else "of its cells"
        parts.append(f">= {threshold:.0%} of nominal on {figures.fraction_at_70:.0%} ({measure})")
    if figures.range_on_grid is not None and figures.range_on_grid < 1:
        parts.append(f"the grid spans {figures.range_on_grid:.0%} of the range")
    if figures.reason:
        parts.append(figures.reason)
    return "; ".join(parts)
