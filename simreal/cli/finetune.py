"""``simreal finetune``: continue training a sim-trained policy on a target under a budget of target steps."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer
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
from simreal.errors import ConfigError


@one_line_errors(flags={"baseline": "--baseline", **TRUST_FLAG})
def finetune(
    run: Path = typer.Argument(..., help="The sim-trained run directory (or a model file inside one)."),
    target: str = typer.Option(..., "--target", "-t", help="Target name or YAML to fine-tune on."),
    steps: int = typer.Option(..., "--steps", help="Budget of target env steps (curve evaluations included)."),
    strategy: str = typer.Option("full", "--strategy", help="full, head, partial or progressive."),
    lr_scale: float = typer.Option(
        None, "--lr-scale", help="Learning rate = the source config's x this; default: 0.1 for full, else 1.0."
    ),
    l2sp: float = typer.Option(0.0, "--l2sp", help="L2-SP alpha: penalty alpha/2 ||w - w0||^2 (0: off)."),
    trainable_layers: int = typer.Option(2, "--trainable-layers", help="partial: layers from the top that train."),
    layer_decay: float = typer.Option(
        1.0, "--layer-decay", help="Each layer below the top learns this many times slower (ULMFiT: 2.6)."
    ),
    update_normalization: bool = flag(
        False, "--update-normalization", "Keep updating the source's normalization statistics on the target."
    ),
    count_eval: bool = flag(
        True, "--count-eval/--no-count-eval", "Curve evaluations count against --steps (else reported apart)."
    ),
    eval_every: int = typer.Option(
        None, "--eval-every", help="Target steps between curve evaluations (default: steps/5)."
    ),
    eval_episodes: int = typer.Option(5, "--eval-episodes", help="Episodes per curve evaluation."),
    final_episodes: int = typer.Option(20, "--final-episodes", help="Episodes of the final evaluation."),
    from_scratch: bool = flag(
        False, "--from-scratch", "The baseline: a fresh policy (the run's config) trained on the target."
    ),
    baseline: Path = typer.Option(
        None, "--baseline", help="A --from-scratch run with the same budget: report negative transfer against it."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the target envs, the policy's sampling and evaluations."),
    run_dir: Path = typer.Option(
        None, "--run-dir", help="Where to write (default: runs/<run>_ft_<target>_<strategy>_<time>)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    trust_pickles: bool = trust_pickles_flag(),
) -> None:
    """Fine-tune a policy on a target with a strategy from transfer-learning practice, under a target-step budget."""
    require_training("simreal finetune")
    from simreal.cli.progress import RichProgress
    from simreal.transfer.config import finetune_settings
    from simreal.transfer.finetune import finetune as run_finetune

    if from_scratch and strategy != "full":
        raise ConfigError(f"--from-scratch: a fresh policy has no layers to freeze (drop --strategy {strategy})")
    settings = finetune_settings(
        "simreal finetune",
        steps=steps,
        strategy="scratch" if from_scratch else strategy,
        lr_scale=lr_scale,
        l2sp=l2sp,
        trainable_layers=trainable_layers,
        layer_decay=layer_decay,
        update_normalization=update_normalization,
        count_eval=count_eval,
        eval_every=eval_every,
        eval_episodes=eval_episodes,
        final_episodes=final_episodes,
        seed=seed,
    )
    if settings.strategy == "scratch" and baseline is not None:
        raise ConfigError("--baseline: the from-scratch run is the baseline itself")
    folder = run_dir or _default_run_dir(run, target, settings.strategy)
    say_trusted(trust_pickles)
    result = run_finetune(
        run,
        target,
        settings,
        folder,
        device=device,
        baseline=baseline,
        callbacks=[RichProgress(settings.steps, err_console, description=settings.strategy)],
        command=sys.argv,
        trust_pickles=trust_pickles,
    )
    _print_result(result.report, folder)


def _default_run_dir(run: Path, target: str, strategy: str) -> Path:
    """``runs/<run>_ft_<target>_<strategy>_<time>``: ``run`` a run directory or a model file inside one."""
    name = Path(run).resolve().name if Path(run).is_dir() else Path(run).resolve().parent.name
    target_name = Path(target).stem
    return Path("runs") / f"{name}_ft_{target_name}_{strategy}_{time.strftime('%Y%m%d-%H%M%S')}"


def _print_result(report: dict[str, Any], folder: Path) -> None:
    """The report's table, and where TensorBoard finds the run's curves."""
    console.print(finetune_table(report, f"{report['robot']} on {report['target']}: {folder}"))
    console.print(f"TensorBoard: tensorboard --logdir {folder / 'tb'}")


def finetune_table(report: dict[str, Any], title: str) -> Table:
    """A fine-tuning report (``finetune.json``) as a table: the curve, then the final figures."""

    def mean(row: dict[str, Any]) -> str:
        low, high = row["mean_return_ci95"]
        return f"{row['mean_return']:.1f} [{low:.0f}, {high:.0f}]"

    budget = report["budget"]
    table = Table(title=title, title_justify="left")
    for column in ("stage", "target steps", "return [95% CI]"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for point in report["curve"]:
        table.add_row("curve", str(point["target_steps"]), mean(point))
    table.add_row(f"final ({report['settings']['strategy']})", str(budget["used"]), mean(report["final"]))
    forgetting = report.get("forgetting")
    if forgetting is not None:
        low, high = forgetting["drop_ci95"]
        table.add_row("source before", "", mean(forgetting["source_before"]))
        table.add_row("source after", "", mean(forgetting["source_after"]))
        table.add_row("forgetting (drop)", "", f"{forgetting['drop']:.1f} [{low:.0f}, {high:.0f}]")
    against = report.get("against_scratch")
    if against is not None:
        low, high = against["difference_ci95"]
        table.add_row(
            f"vs from scratch: {against['transfer']}", "", f"{against['difference']:+.1f} [{low:.0f}, {high:.0f}]"
        )
    counted = "counted" if budget["eval_counted"] else "not counted"
    table.caption = (
        f"{budget['train_steps']} training + {budget['eval_steps']} curve-evaluation steps ({counted}) of "
        f"{budget['steps']}; final evaluation: {budget['final_eval_steps']} more steps"
    )
    return table
