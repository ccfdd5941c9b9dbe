"""``simreal export`` and ``simreal deploy``: a trained policy as one artifact that runs outside simreal, and that
artifact driving an env, recorded for sysid and fine-tuning."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from simreal.cli.common import (
    TRUST_FLAG,
    console,
    flag,
    one_line_errors,
    require_training,
    say_trusted,
    trust_pickles_flag,
)
from simreal.errors import DataError
from simreal.fileio import check_writable

FORMATS = ("onnx", "torchscript")


@one_line_errors(flags=TRUST_FLAG)
def export(
    source: Path = typer.Argument(..., help="A run directory, or a model file inside one."),
    format: str = typer.Option("onnx", "--format", help="onnx (run with onnxruntime) or torchscript (torch only)."),
    out: Path = typer.Option(..., "--out", help="The folder to write the policy and its manifest.json into."),
    trust_pickles: bool = trust_pickles_flag(),
) -> None:
    """Export a policy with its normalization, history, estimator and action scaling inside, and a manifest."""
    require_training("simreal export")
    if format not in FORMATS:
        raise DataError(f"--format: {format!r} is not one of {', '.join(FORMATS)}")
    from simreal.deploy.export import export_policy
    from simreal.deploy.manifest import load_manifest

    check_writable(out, folder=True)
    say_trusted(trust_pickles)
    path = export_policy(source, format, out, trust_pickles=trust_pickles)  # type: ignore[arg-type]
    manifest = load_manifest(path.parent)
    layout = manifest.layout
    console.print(
        f"wrote {out / manifest.file} and {path.name}: {manifest.robot}, {layout.observation} observations -> "
        f"{layout.action} actions every {manifest.control_period_s * 1000:g} ms, state of {manifest.state_size}",
        soft_wrap=True,
    )


@one_line_errors
def deploy(
    export: Path = typer.Argument(..., help="A folder simreal export wrote."),
    env: str = typer.Option(
        ..., "--env", help="A target name or YAML of the export's robot, 'nominal', or a registered gymnasium id."
    ),
    episodes: int = typer.Option(1, "--episodes", min=1, help="Episodes to run."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the first episode."),
    record: Path = typer.Option(None, "--record", help="Write the episodes here (.npz or .csv) for sysid/finetune."),
    overwrite: bool = flag(False, "--overwrite", "Replace the --record file if it exists (refused otherwise)."),
) -> None:
    """Drive an env with an exported policy, as a robot's adapter would, and record what it did."""
    if record is not None and record.suffix not in (".npz", ".csv"):
        raise DataError(f"--record {record}: unknown data format (use .npz or .csv)")
    from simreal.deploy.deploy import deploy as run_deploy

    if record is not None:
        if not overwrite and os.path.lexists(record):  # a real robot's recording can be hours of work
            raise DataError(f"{record}: already exists: give --overwrite to replace it")
        check_writable(record)  # before the episodes are spent

    made = run_deploy(export, env, episodes, seed, record, overwrite=overwrite)
    console.print(f"returns: {', '.join(f'{r:.1f}' for r in made.returns)}")
    if made.path is not None:
        console.print(
            f"recorded {len(made.returns)} episodes, {len(made.recording)} steps: {made.path}", soft_wrap=True
        )
