"""``simreal envs``: the catalogue of robots, parameters and targets, and validating a target file."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.table import Table

from simreal.cli.common import console, flag, one_line_errors
from simreal.envs.catalogue import catalogue, target_entry
from simreal.envs.generate import starter_file

_EFFECT_LABELS = {
    "action_delay_steps": "delay",
    "obs_noise_std": "obs σ",
    "action_noise_std": "action σ",
    "obs_bias_std": "obs bias σ",
    "obs_delay_steps": "obs delay",
    "actuator_lag_s": "lag τ (s)",
}


@one_line_errors
def envs(
    robot: list[str] = typer.Option(
        None, "--robot", "-r", help="Show only this robot, shipped or a robot YAML file (repeatable)."
    ),
    target_file: str = typer.Option(None, "--target", help="Validate a target YAML file and show it."),
    generate: str = typer.Option(
        None,
        "--generate",
        metavar="ENV_ID",
        help="Print a starter robot file for a gymnasium MuJoCo env id: its catalogue generated from the model.",
    ),
    as_json: bool = flag(False, "--json", "Print JSON instead of tables."),
) -> None:
    """List the robots, their randomizable parameters and their shipped targets."""
    if generate is not None:
        sys.stdout.write(starter_file(generate))
        return
    if target_file is not None:
        entry = target_entry(target_file)
        if as_json:
            sys.stdout.write(json.dumps(entry, indent=2) + "\n")
        else:
            console.print(targets_table(f"target file {target_file} (base: {entry['base']})", [entry]))
        return
    entries = catalogue(robot or None)
    if as_json:
        sys.stdout.write(json.dumps({"robots": entries}, indent=2) + "\n")
        return
    for entry in entries:
        console.print(_parameters_table(entry))
        console.print(targets_table(f"{entry['robot']} targets", entry["targets"]))
        console.print()


def _parameters_table(entry: dict[str, Any]) -> Table:
    table = Table(title=f"{entry['robot']}  ({entry['id']}, built on {entry['gym_id']})", title_justify="left")
    table.add_column("parameter", no_wrap=True)
    table.add_column("element")
    table.add_column("nominal", justify="right", no_wrap=True)
    table.add_column("range", no_wrap=True)
    table.add_column("distribution")
    table.add_column("limits", no_wrap=True)
    table.add_column("default")
    for p in entry["parameters"]:
        spread = f" μ={p['mean']:g} σ={p['std']:g}" if "std" in p else ""
        table.add_row(
            p["name"],
            p["element"] or "all",
            f"{p['nominal']:.4g} {p['unit']}".strip(),
            f"{p['range'][0]:g}–{p['range'][1]:g}",
            p["distribution"] + spread,
            f"{p['limits'][0]:g}–{p['limits'][1]:g}",
            "yes" if p["default"] else "optional",
        )
    return table


def targets_table(title: str, targets: list[dict[str, Any]]) -> Table:
    """Targets as a table: multipliers, effects, description."""
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
