"""The CLI: catalogue output and one-line errors with exit status 2."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simreal.cli import app
from simreal.envs.robots import load_robot, robot_names
from tests.conftest import ROBOTS

runner = CliRunner()


def test_envs_json_lists_every_robot_parameter_and_target():
    result = runner.invoke(app, ["envs", "--json"])
    assert result.exit_code == 0
    robots = {entry["robot"]: entry for entry in json.loads(result.stdout)["robots"]}
    assert sorted(robots) == robot_names() == sorted(ROBOTS)
    for name, entry in robots.items():
        spec = load_robot(name)
        assert [p["name"] for p in entry["parameters"]] == list(spec.parameters)
        assert {t["name"] for t in entry["targets"]} >= {"mild", "moderate", "severe"}
    torso = next(p for p in robots["hopper"]["parameters"] if p["name"] == "torso_mass")
    assert torso["nominal"] > 3.0 and torso["unit"] == "kg" and torso["range"] == [0.75, 1.25]


def test_envs_table_shows_parameters_and_targets():
    result = runner.invoke(app, ["envs", "--robot", "hopper"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("torso_mass", "foot_joint_gain", "gravity", "truncnormal", "severe", "3.665 kg"):
        assert text in result.stdout


def test_envs_validates_a_target_file(write_yaml):
    good = write_yaml("base: hopper\nparameters: {torso_mass: 1.3}\neffects: {action_delay_steps: 1}\n", "lab.yaml")
    result = runner.invoke(app, ["envs", "--target", str(good), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["parameters"] == {"torso_mass": 1.3}


def test_bad_input_gives_one_line_and_exit_2(write_yaml):
    bad = write_yaml("base: hopper\nparameters: {torso_mass: -2}\n")
    process = subprocess.run(
        [sys.executable, "-m", "simreal.cli", "envs", "--target", str(bad)], capture_output=True, text=True
    )
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip() and "settotalmass" not in line]
    assert lines == [f"error: {bad}: parameters.torso_mass: a mass multiplier must be > 0, got -2.0"]
    result = runner.invoke(app, ["envs", "--robot", "spider"])
    assert result.exit_code == 2
    assert "unknown robot 'spider'" in result.stderr


@pytest.mark.parametrize(
    ("command", "texts"),
    [
        ("train", ["runs/<robot>_<algo>_<seed>_<time>", "--set total_timesteps=N"]),
        ("sysid", ["a fifth of them, when there are at least 5", "all of the robot's"]),
        ("collect", ["nominal dynamics"]),
        ("evaluate", ["every shipped target"]),
    ],
)
def test_help_texts_are_whole(command, texts):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    flat = " ".join(result.stdout.split())
    for text in texts:
        assert text in flat, text


def test_every_command_summary_is_one_whole_line_and_flags_show_no_type():
    from simreal import __version__

    for info in app.registered_commands:
        first = info.callback.__doc__.split("\n\n")[0]
        assert "\n" not in first.strip(), f"{info.callback.__name__}: {first!r} breaks in the command list"
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    summaries = {" ".join(line.strip("│ ").split()[:1]) for line in result.stdout.splitlines()}
    assert {"transfer", "sweep", "finetune"} <= summaries
    for command in ("sysid", "finetune", "record", "evaluate", "robustness", "envs"):
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout
        flag_lines = [line for line in shown.splitlines() if "--help" not in line and "<bool>" in line]
        assert flag_lines == [], flag_lines
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.stdout.strip() == f"simreal {__version__}"


def test_no_library_message_names_a_command_line_flag():
    # the library names its arguments; each command maps those it fills from a flag (simreal.cli.common.as_flags)
    package = Path(__file__).resolve().parents[1] / "simreal"
    found = []
    for path in package.rglob("*.py"):
        if path.parts[-2] == "cli":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and id(node) not in docstrings else None
            if isinstance(text, str) and re.search(r"(^|[\s(])--[a-z]", text):
                found.append(f"{path.relative_to(package)}:{node.lineno}: {text}")
    assert not found, found
