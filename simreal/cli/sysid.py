"""``simreal collect`` and ``simreal sysid``: record trajectories, and identify simulator parameters from them."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from simreal.cli.common import (
    TRUST_FLAG,
    console,
    err_console,
    flag,
    one_line_errors,
    require_training,
    say_trusted,
    trust_pickles_flag,
)
from simreal.errors import DataError
from simreal.fileio import atomic_write_json, atomic_write_text, check_writable
from simreal.runs.config import check_seed
from simreal.sysid.collect import collect as run_collect
from simreal.sysid.identify import identify, split_names
from simreal.sysid.progress import SysidProgress
from simreal.sysid.result import SysidResult
from simreal.sysid.trajectories import load_trajectories, split_holdout


@one_line_errors(flags={"seed": "--seed", **TRUST_FLAG})
def collect(
    policy: str = typer.Argument(..., help="A run directory, a model file inside one, or 'random'."),
    robot: str = typer.Option(..., "--robot", help="The robot to run on."),
    target: str = typer.Option(None, "--target", help="Target name or YAML; default: nominal dynamics."),
    episodes: int = typer.Option(10, "--episodes", min=1, help="Episodes to record."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the first episode."),
    out: Path = typer.Option(..., "--out", help="Where to write: .npz or .csv."),
    overwrite: bool = flag(False, "--overwrite", "Replace the --out file if it exists (refused otherwise)."),
    trust_pickles: bool = trust_pickles_flag(),
) -> None:
    """Record trajectories (observations, actions, rewards, MuJoCo states) for system identification."""
    if policy != "random":
        require_training("simreal collect with a trained policy")
    if not overwrite and os.path.lexists(out):  # a real robot's recording can be hours of work
        raise DataError(f"{out}: already exists: give --overwrite to replace it")
    # the library checks the output too (format, not replaced unless asked, writable) before the episodes are spent
    say_trusted(trust_pickles)
    data = run_collect(policy, robot, target, episodes, seed, out=out, overwrite=overwrite, trust_pickles=trust_pickles)
    console.print(f"recorded {len(data.episodes)} episodes, {len(data)} steps: {out}")


@one_line_errors(flags={"params": "--params", "holdout": "--holdout", "seed": "--seed"})
def sysid(
    data: Path = typer.Argument(..., help="Recorded trajectories: .npz or .csv (see simreal collect)."),
    robot: str = typer.Option(..., "--robot", help="The robot the data comes from."),
    params: str = typer.Option(
        None, "--params", help="Comma-separated parameters to identify; default: all of the robot's."
    ),
    horizon: int = typer.Option(10, "--horizon", min=1, help="K: open-loop prediction horizon (control steps)."),
    budget: int = typer.Option(
        None, "--budget", min=10, help="CMA-ES objective evaluations in all; default: 600 per parameter."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of CMA-ES and of the window sampling."),
    delay: bool = flag(False, "--delay", "Also identify an action delay of 0..3 control steps."),
    holdout: int = typer.Option(
        None, "--holdout", min=0, help="Episodes held out; default: a fifth of them, when there are at least 5."
    ),
    windows: int = typer.Option(100, "--windows", min=1, help="At most this many windows in each fit."),
    min_width: float = typer.Option(
        0.1, "--min-width", min=0.0, max=1.9, help="Training ranges span at least this fraction of the estimate."
    ),
    use_observations: bool = flag(
        False, "--use-observations", "Rebuild states from observations even when qpos/qvel were recorded."
    ),
    smooth: bool = flag(
        None, "--smooth/--no-smooth", "Denoise rebuilt positions; default: when states come from observations."
    ),
    out: Path = typer.Option(None, "--out", help="Write the identified target and ranges to this YAML."),
    json_out: Path = typer.Option(None, "--json", help="Write the full result to this JSON file."),
) -> None:
    """Identify simulator parameters from recorded trajectories, with 90% intervals and a misfit check."""
    names = split_names(params) if params is not None else None
    check_seed(seed)
    for path in (out, json_out):
        if path is not None:
            check_writable(path)  # before the fit is spent
    recording = load_trajectories(data, robot)
    try:
        fitted, held_out = split_holdout(recording, holdout)
    except DataError as exc:
        raise DataError(f"{data}: {exc}") from None
    with SysidProgressBar(err_console) as progress:
        result = identify(
            fitted,
            robot,
            names,
            horizon=horizon,
            budget=budget,
            seed=seed,
            delays=range(4) if delay else None,
            holdout=held_out,
            max_windows=windows,
            min_width=min_width,
            use_observations=use_observations,
            smooth=smooth,
            progress=progress,
        )
    # the results reach their files before anything is printed: a failing terminal never loses a fit
    if out is not None:
        text = yaml.safe_dump(result.target_yaml(str(data)), sort_keys=False)
        atomic_write_text(out, "# simreal sysid: a target (parameters, effects) and training ranges (ranges)\n" + text)
    if json_out is not None:
        atomic_write_json(json_out, result.as_dict())
    console.print(sysid_table(result))
    warning = misfit_warning(result)
    if warning is not None:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if out is not None:
        console.print(f"wrote {out}: use it as --target, or as randomization.ranges of a training config")
    if json_out is not None:
        console.print(f"wrote {json_out}")


class SysidProgressBar:
    """One bar over a whole identification, on stderr like training's: the stage, evaluations done of the budget,
    the best loss, elapsed time and ETA. The bar measures the work (window rollouts, see
    :class:`~simreal.sysid.progress.SysidProgress`), so the checks after the fits move it too and the ETA holds
    across stages. Where stderr is not a terminal (a log file, a pipe), where rich draws no live bar, a line is
    written at stage changes instead, at most every ``line_every`` seconds.

    Args:
        console: where to draw.
        line_every: seconds between the plain lines written when ``console`` is not a terminal.
    """

    def __init__(self, console: Console, line_every: float = 15.0) -> None:
        self.console = console
        self.line_every = line_every
        self.bar = Progress(
            TextColumn("[bold]sysid"),
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[evaluations]} evaluations"),
            TextColumn("loss {task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not console.is_interactive,
        )
        self._task: TaskID | None = None
        self._stage: str | None = None
        self._start = time.perf_counter()
        self._last_line = self._start

    def __enter__(self) -> SysidProgressBar:
        self._start = self._last_line = time.perf_counter()
        self.bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.bar.stop()

    def __call__(self, update: SysidProgress) -> None:
        evaluations = f"{update.evaluations}/{update.budget}"
        best = "-" if update.best is None else f"{update.best:.3g}"
        if self._task is None:
            self._task = self.bar.add_task(update.stage, total=update.total, evaluations=evaluations, best=best)
        self.bar.update(self._task, completed=update.done, description=update.stage, evaluations=evaluations, best=best)
        now = time.perf_counter()
        if not self.console.is_interactive and update.stage != self._stage and now - self._last_line >= self.line_every:
            self._last_line = now
            self.console.print(progress_line(update, now - self._start), highlight=False, soft_wrap=True)
        self._stage = update.stage


def progress_line(update: SysidProgress, elapsed: float) -> str:
    """The plain-text form of the progress, for a stderr that is not a terminal."""
    share = update.done / update.total if update.total else 1.0
    eta = f", ETA {_clock(elapsed / share * (1 - share))}" if share > 0 else ""
    best = "" if update.best is None else f", best loss {update.best:.3g}"
    return (
        f"sysid {update.stage}: {update.evaluations}/{update.budget} evaluations{best}, {share:.0%} done, "
        f"{_clock(elapsed)} elapsed{eta}"
    )


def ratio_words(nominal: float, identified: float) -> str:
    """How the identified simulator's error compares with the nominal one's, as a factor that reads right:
    ``"1.21x lower"`` when it is smaller, ``"1.18x higher"`` when it is larger."""
    if identified <= nominal:
        return f"{nominal / max(identified, 1e-15):.3g}x lower"
    return f"{identified / max(nominal, 1e-15):.3g}x higher"


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def sysid_table(result: SysidResult) -> Table:
    """An identification result as a table."""
    report = result.as_dict()
    table = Table(
        title=f"{result.robot}: identified in {result.seconds:.0f} s, {result.evaluations} evaluations, "
        f"{result.episodes} episodes",
        title_justify="left",
    )
    columns = ("parameter", "estimate", "90% interval", "identifiable", "truth", "error", "in interval")
    for column in columns:
        table.add_column(column, justify="left" if column == "parameter" else "right")
    for name, row in report["parameters"].items():
        low, high = row["interval"]
        table.add_row(
            name,
            f"{row['estimate']:.4f}",
            f"{low:.4f}–{high:.4f}",
            "yes" if row["identifiable"] else "[bold red]no[/]",
            f"{row['truth']:.4f}" if "truth" in row else "",
            _error(row),
            ("yes" if row["covered"] else "[bold red]no[/]") if "covered" in row else "",
        )
    notes = []
    if report["action_delay_steps"] is not None:
        notes.append(f"action delay: {report['action_delay_steps']} steps")
    if report["observation_noise"] is not None:
        notes.append(f"observation noise: {report['observation_noise']:.4f}")
    if report["misfit"] is not None:
        notes.append(f"fitted error / noise-only error: {report['misfit']['ratio']:.2f}")
    table.caption = "; ".join(notes) or None
    for part, gap in report["dynamics_gap"].items():
        table.add_row(
            f"K-step error ({part})",
            f"nominal {gap['nominal']:.3g}",
            f"identified {gap['identified']:.3g}",
            ratio_words(gap["nominal"], gap["identified"]),
            "",
            "",
            "",
        )
    return table


def misfit_warning(result: SysidResult) -> str | None:
    """One line when the model cannot explain the data, naming the likely cause."""
    misfit = result.misfit
    if misfit is None or not misfit.flagged:
        return None
    return (
        f"the model does not explain the data (its error is {misfit.ratio:.1f}x what the noise explains); "
        f"likely cause: {misfit.cause}. No parameter is reported as identifiable."
    )


def _error(row: dict[str, Any]) -> str:
    if "truth" not in row:
        return ""
    if row["relative_error"] is None:  # a true value of 0: only the absolute error means something
        return f"{row['absolute_error']:.4f} (abs.)"
    return f"{row['relative_error']:.2%}"
