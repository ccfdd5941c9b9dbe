"""``simreal evaluate``: a policy's returns on its source simulator and on targets, with the reality gap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from simreal.fileio import atomic_write_json, check_writable


@one_line_errors(flags=TRUST_FLAG)
def evaluate(
    source: Path = typer.Argument(..., help="A run directory, or a model file inside one."),
    target: list[str] = typer.Option(
        None, "--target", "-t", help="Target name or YAML (repeatable); default: every shipped target."
    ),
    episodes: int = typer.Option(10, "--episodes", min=1, help="Episodes per env."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the envs and the bootstrap."),
    json_out: Path = typer.Option(None, "--json", help="Write the results to this JSON file."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda."),
    true_dynamics: bool = flag(
        False, "--true-dynamics", "Adaptive policies: give the policy the true dynamics, not its estimate."
    ),
    trust_pickles: bool = trust_pickles_flag(),
) -> None:
    """Evaluate a policy in its source simulator and on targets: returns, reality gap and 95% bootstrap CIs."""
    require_training("simreal evaluate")
    from simreal.evaluate.evaluator import evaluate_run
    from simreal.runs.algorithms import resolve_device

    if json_out is not None:
        check_writable(json_out)  # before the evaluation is spent
    say_trusted(trust_pickles)
    report = evaluate_run(
        source,
        list(target or []) or None,
        episodes,
        seed,
        resolve_device(device),
        true_dynamics=true_dynamics,
        trust_pickles=trust_pickles,
    )
    if json_out is not None:
        atomic_write_json(json_out, report)
    console.print(evaluation_table(report, f"{report['robot']}: {report['model']}"))
    if json_out is not None:
        console.print(f"wrote {json_out}")


def evaluation_table(report: dict[str, Any], title: str) -> Table:
    """An evaluation report (``simreal evaluate``'s document) as a table."""
    table = Table(title=title, title_justify="left")
    for column in ("env", "mean return [95% CI]", "std", "gap [95% CI]", "relative gap [95% CI]"):
        table.add_column(column, justify="left" if column == "env" else "right")

    def mean(row: dict[str, Any]) -> str:
        interval = row.get("mean_return_ci95")  # reports written before it was added have none
        return f"{row['mean_return']:.1f}" + (f" [{interval[0]:.0f}, {interval[1]:.0f}]" if interval else "")

    for name, source in report["source"].items():
        table.add_row(f"source: {name}", mean(source), f"{source['std_return']:.1f}", "", "")
    for name, row in report["targets"].items():
        low, high = row["gap_ci95"]
        rel_low, rel_high = row["relative_gap_ci95"]
        table.add_row(
            f"target: {name}",
            mean(row),
            f"{row['std_return']:.1f}",
            f"{row['gap']:.1f} [{low:.1f}, {high:.1f}]",
            f"{row['relative_gap']:.1%} [{rel_low:.1%}, {rel_high:.1%}]",
        )
    errors = [
        f"{name}: " + ", ".join(f"{p} {e:.0%}" for p, e in row["estimator_error"].items())
        for name, row in {**report["source"], **report["targets"]}.items()
        if row.get("estimator_error")
    ]
    if errors:
        table.caption = "estimator error: " + "; ".join(errors)
    return table
