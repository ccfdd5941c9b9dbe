"""The ``simreal`` command line: parses arguments, calls the library, prints. Nothing else lives here."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from simreal.errors import ConfigError, DataError, SimrealError

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


@app.command()
@_one_line_errors
def train(
    config: str = typer.Argument(..., help="A config YAML, or the name of a shipped one (e.g. hopper_ppo_dr)."),
    overrides: list[str] = typer.Option(None, "--set", help="Override a field by dotted path: key=value (repeatable)."),
    run_dir: Path = typer.Option(None, "--run-dir", help="Run directory [default: runs/<robot>_<algo>_<seed>_<time>]."),
    seed: int = typer.Option(None, "--seed", help="Seed (overrides the config's)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --run-dir from its last checkpoint."),
) -> None:
    """Train PPO or SAC on randomized dynamics, evaluate on the targets, log everything to TensorBoard."""
    from simreal.config import load_config
    from simreal.progress import RichProgress
    from simreal.rundir import default_run_name
    from simreal.training import train as run_training

    settings = list(overrides or []) + ([f"seed={seed}"] if seed is not None else [])
    parsed = load_config(config, settings)
    if resume and run_dir is None:
        raise ConfigError("--resume: name the run to continue with --run-dir")
    folder = run_dir or Path("runs") / default_run_name(parsed)
    result = run_training(
        parsed,
        folder,
        device=device,
        resume=resume,
        callbacks=[RichProgress(parsed.total_timesteps, err_console)],
        command=sys.argv,
    )
    console.print(f"trained {result.num_timesteps} timesteps: {result.run_dir}")
    console.print(_evaluation_table(result.final_eval, f"{parsed.robot}: final evaluation"))
    console.print(f"TensorBoard: tensorboard --logdir {result.run_dir / 'tb'}")


@app.command()
@_one_line_errors
def evaluate(
    source: Path = typer.Argument(..., help="A run directory, or a model file inside one."),
    target: list[str] = typer.Option(None, "--target", "-t", help="Target name or YAML (repeatable) [default: all]."),
    episodes: int = typer.Option(10, "--episodes", min=1, help="Episodes per env."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the envs and the bootstrap."),
    json_out: Path = typer.Option(None, "--json", help="Write the results to this JSON file."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu or cuda."),
) -> None:
    """Evaluate a policy in its source simulator and on targets: returns, reality gap and 95% bootstrap CIs."""
    from simreal.evaluation import evaluate as run_evaluation
    from simreal.fileio import atomic_write_json
    from simreal.training import resolve_device

    report = run_evaluation(source, list(target or []) or None, episodes, seed, resolve_device(device))
    console.print(_evaluation_table(report, f"{report['robot']}: {report['model']}"))
    if json_out is not None:
        atomic_write_json(json_out, report)
        console.print(f"wrote {json_out}")


@app.command()
@_one_line_errors
def collect(
    policy: str = typer.Argument(..., help="A run directory, a model file inside one, or 'random'."),
    robot: str = typer.Option(..., "--robot", help="The robot to run on."),
    target: str = typer.Option(None, "--target", help="Target name or YAML [default: nominal dynamics]."),
    episodes: int = typer.Option(10, "--episodes", min=1, help="Episodes to record."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the first episode."),
    out: Path = typer.Option(..., "--out", help="Where to write: .npz or .csv."),
) -> None:
    """Record trajectories (observations, actions, rewards, MuJoCo states) for system identification."""
    from simreal.collect import collect as run_collect
    from simreal.trajectories import save_trajectories

    if out.suffix not in (".npz", ".csv"):
        raise DataError(f"{out}: unknown data format (use .npz or .csv)")
    data = run_collect(policy, robot, target, episodes, seed)
    save_trajectories(data, out)
    console.print(f"recorded {len(data.episodes)} episodes, {len(data)} steps: {out}")


@app.command()
@_one_line_errors
def sysid(
    data: Path = typer.Argument(..., help="Recorded trajectories: .npz or .csv (see simreal collect)."),
    robot: str = typer.Option(..., "--robot", help="The robot the data comes from."),
    params: str = typer.Option(None, "--params", help="Comma-separated parameters to identify [default: all]."),
    horizon: int = typer.Option(10, "--horizon", min=1, help="K: open-loop prediction horizon (control steps)."),
    budget: int = typer.Option(1500, "--budget", min=10, help="CMA-ES objective evaluations in all."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of CMA-ES and of the window sampling."),
    delay: bool = typer.Option(False, "--delay", help="Also identify an action delay of 0..3 control steps."),
    holdout: int = typer.Option(None, "--holdout", min=0, help="Episodes held out [default: a fifth, if >= 5]."),
    windows: int = typer.Option(100, "--windows", min=1, help="At most this many windows in the objective."),
    k: float = typer.Option(2.0, "--k", min=0.0, help="Training ranges: estimate times/divided by spread**k."),
    use_observations: bool = typer.Option(
        False, "--use-observations", help="Rebuild states from observations even when qpos/qvel were recorded."
    ),
    smooth: bool = typer.Option(
        None, "--smooth/--no-smooth", help="Denoise rebuilt positions [default: when states come from observations]."
    ),
    out: Path = typer.Option(None, "--out", help="Write the identified target and ranges to this YAML."),
    json_out: Path = typer.Option(None, "--json", help="Write the full result to this JSON file."),
) -> None:
    """Identify simulator parameters from recorded trajectories (CMA-ES on K-step prediction error)."""
    import yaml
    from rich.progress import Progress

    from simreal.fileio import atomic_write_json, atomic_write_text
    from simreal.sysid import identify
    from simreal.trajectories import load_trajectories

    recording = load_trajectories(data, robot)
    episodes = recording.episodes
    held = holdout if holdout is not None else (len(episodes) // 5 if len(episodes) >= 5 else 0)
    if held >= len(episodes):
        raise DataError(f"{data}: --holdout {held} leaves no episode to fit ({len(episodes)} recorded)")
    fitted = recording.select(episodes[: len(episodes) - held])
    held_out = recording.select(episodes[len(episodes) - held :]) if held else None
    names = [name.strip() for name in params.split(",") if name.strip()] if params else None
    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task("sysid", total=budget)

        def progress(stage: str, evaluations: int, stage_budget: int, best: float) -> None:
            bar.update(task, total=stage_budget, completed=evaluations, description=f"sysid {stage}, loss {best:.3g}")

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
            k=k,
            use_observations=use_observations,
            smooth=smooth,
            progress=progress,
        )
    console.print(_sysid_table(result))
    if out is not None:
        body = yaml.safe_dump(result.target_yaml(str(data)), sort_keys=False)
        atomic_write_text(out, "# simreal sysid: a target (parameters, effects) and training ranges (ranges)\n" + body)
        console.print(f"wrote {out}: use it as --target, or as randomization.ranges of a training config")
    if json_out is not None:
        atomic_write_json(json_out, result.as_dict())
        console.print(f"wrote {json_out}")


def _sysid_table(result: Any) -> Table:
    report = result.as_dict()
    table = Table(
        title=f"{result.robot}: identified in {result.seconds:.0f} s, {result.evaluations} evaluations",
        title_justify="left",
    )
    for column in ("parameter", "estimate", "spread (x/÷)", "range", "identifiable", "truth", "error"):
        table.add_column(column, justify="left" if column == "parameter" else "right")
    for name, row in report["parameters"].items():
        table.add_row(
            name,
            f"{row['estimate']:.4f}",
            f"{row['spread']:.4f}",
            f"{row['range'][0]:.3f}–{row['range'][1]:.3f}",
            "yes" if row["identifiable"] else "[bold red]no[/]",
            f"{row['truth']:.4f}" if "truth" in row else "",
            f"{row['relative_error']:.2%}" if "relative_error" in row else "",
        )
    if report["action_delay_steps"] is not None:
        table.caption = f"action delay: {report['action_delay_steps']} steps"
    for part, gap in report["dynamics_gap"].items():
        table.add_row(
            f"K-step error ({part})",
            f"nominal {gap['nominal']:.3g}",
            f"identified {gap['identified']:.3g}",
            f"{gap['ratio']:.3g}x lower",
            "",
            "",
            "",
        )
    return table


def _evaluation_table(report: dict[str, Any], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("env", "mean return", "std", "gap [95% CI]", "relative gap [95% CI]"):
        table.add_column(column, justify="left" if column == "env" else "right")
    for name, source in report["source"].items():
        table.add_row(f"source: {name}", f"{source['mean_return']:.1f}", f"{source['std_return']:.1f}", "", "")
    for name, row in report["targets"].items():
        low, high = row["gap_ci95"]
        rel_low, rel_high = row["relative_gap_ci95"]
        table.add_row(
            f"target: {name}",
            f"{row['mean_return']:.1f}",
            f"{row['std_return']:.1f}",
            f"{row['gap']:.1f} [{low:.1f}, {high:.1f}]",
            f"{row['relative_gap']:.1%} [{rel_low:.1%}, {rel_high:.1%}]",
        )
    return table


def main() -> None:
    """Entry point of the ``simreal`` console script."""
    app()


if __name__ == "__main__":
    main()
