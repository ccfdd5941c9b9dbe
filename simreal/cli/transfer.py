"""``simreal transfer``: the whole way from a sim policy to the target, with the gap at every stage."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from simreal.cli.common import (
    TRUST_FLAG,
    console,
    err_console,
    one_line_errors,
    require_training,
    say_trusted,
    trust_pickles_flag,
)

if TYPE_CHECKING:
    from stable_baselines3.common.callbacks import BaseCallback


@one_line_errors(flags=TRUST_FLAG)
def transfer(
    config: str = typer.Argument(..., help="A transfer config YAML, or a shipped one's name (e.g. transfer_hopper)."),
    overrides: list[str] = typer.Option(None, "--set", help="Override a field by dotted path: key=value (repeatable)."),
    out: Path = typer.Option(
        None, "--out", help="Output folder (default: runs/transfer_<target>_<seed>); run again to continue it."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    trust_pickles: bool = trust_pickles_flag(),
) -> None:
    """Run the transfer pipeline: the target return, the gap and the fraction closed at each stage.

    The stages are zero-shot, sysid, identified simulator, fine-tuning and oracle; each reports the target return,
    the gap and the fraction of it closed, with the target steps used.
    """
    require_training("simreal transfer")
    from simreal.cli.progress import RichProgress
    from simreal.runs.algorithms import resolve_device
    from simreal.transfer.config import load_transfer_config_with_source
    from simreal.transfer.pipeline import run_pipeline

    parsed, origin = load_transfer_config_with_source(config, list(overrides or []))
    folder = out or Path("runs") / f"transfer_{Path(parsed.target).stem}_{parsed.seed}"

    def progress(stage: str, total: int) -> list[BaseCallback]:
        return [RichProgress(total, err_console, description=stage)]

    def on_stage(stage: str, event: str) -> None:
        err_console.print(f"{stage}: {event}")

    say_trusted(trust_pickles)
    result = run_pipeline(
        parsed,
        folder,
        device=resolve_device(device),
        progress=progress,
        on_stage=on_stage,
        origin=origin,
        trust_pickles=trust_pickles,
    )
    console.print(transfer_table(result.report))
    console.print(f"report: {result.out / 'report.md'} (with notes), report.json, returns.png, curves.png")
    console.print(f"TensorBoard: tensorboard --logdir {result.out}")


def transfer_table(report: dict[str, Any]) -> Table:
    """The pipeline's report as a table: one row per finished stage."""
    table = Table(
        title=f"transfer to {report['target']}: {report['source']}", title_justify="left", caption_justify="left"
    )
    for column in ("stage", "target return [95% CI]", "relative gap", "gap closed [95% CI]", "target steps", "time"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for row in report["stages"]:
        ret = rel = closed = ""
        if "mean_return" in row:
            low, high = row["mean_return_ci95"]
            ret, rel = f"{row['mean_return']:.1f} [{low:.0f}, {high:.0f}]", f"{row['relative_gap']:.1%}"
        if row.get("fraction_closed_ci95") is not None:
            low, high = row["fraction_closed_ci95"]
            closed = f"{row['fraction_closed']:.2f} [{low:.2f}, {high:.2f}]"
        elif row.get("fraction_closed") is not None:
            closed = f"{row['fraction_closed']:.0f} (reference)"
        elif row.get("fraction_undefined"):
            closed = "undefined"
        seconds = f"{row['seconds']:.0f} s" if row.get("seconds") is not None else ""
        table.add_row(row["stage"], ret, rel, closed, str(row["target_steps_total"]), seconds)
    captions = []
    oracle = next((row for row in report["stages"] if row["stage"] == "oracle" and row.get("winner")), None)
    if oracle is not None and oracle.get("won_by"):
        won_by = oracle["won_by"]
        low, high = won_by["difference_ci95"]
        captions.append(
            f"oracle: {oracle['winner']}, ahead of {won_by['runner_up']} by {won_by['difference']:+.1f} "
            f"[{low:.1f}, {high:.1f}]"
        )
    elif oracle is not None:
        captions.append(f"oracle: {oracle['winner']}")
    if report.get("fractions_meaningful") is False:
        captions.append("gap closed not meaningful: the oracle's interval does not lie above zero-shot's")
    if not report["complete"]:
        captions.append("incomplete: run the same command again to continue")
    if captions:
        table.caption = "\n".join(captions)
    return table
