"""Files are data, never code: a robot's ``entry_point`` (in a robot file, a target's inline ``base:``, a config's
inline ``robot:``, or reached through an export's manifest) builds a gymnasium env class or nothing, checked before
anything is called; a manifest names its robot by a shipped name or a file inside its export; an export's files are
its own; parameter names are names; a robot that cannot be trained is refused before a run folder is written; a
manifest's sizes are bounded; a recording is never replaced unless asked. Every refusal is one line naming the file
and the field, exit status 2.

The code-execution cases carry a marker file that the payload would write: it must never appear."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import yaml
from typer.testing import CliRunner

from simreal.cli import app
from simreal.deploy.deploy import deploy
from simreal.deploy.export import export_policy
from simreal.deploy.manifest import MAX_SIZE, ROBOT_FILE
from simreal.envs.mujoco_base import base_env_spec
from simreal.envs.robots import load_robot, robot_names
from simreal.envs.spec import PARAMETER_NAME
from simreal.errors import DataError, SpecError
from tests.abuse_helpers import one_error_line
from tests.custom_env import SwingArmEnv

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]

#: The custom robot of tests/test_custom_robot.py, given inline: a robot that is not shipped.
SWING_ARM = {
    "entry_point": "tests.custom_env:SwingArmEnv",
    "kwargs": {"goal_height": 1.4},
    "max_episode_steps": 50,
    "targets": {"lab": {"parameters": {"shoulder_kp": 0.8}, "effects": {"action_delay_steps": 1}}},
}
TINY = {
    "robot": "inverted_pendulum",
    "seed": 3,
    "total_timesteps": 128,
    "algorithm": {
        "name": "ppo",
        "hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
        "network": {"pi": [8], "vf": [8]},
    },
    "env": {"n_envs": 1},
    "eval": {"frequency": 0, "episodes": 1, "targets": []},
}


def tiny(tmp_path: Path, name: str = "tiny.yaml", **changes) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def cli(*arguments: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI in a process of its own (from the repository, so ``tests.custom_env`` imports), ``pythonpath``
    before the rest of its path."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "simreal.cli", *arguments],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=180,
    )


def one_error(result: Any, *expected: str) -> str:
    """:func:`one_error_line` of a finished process or a CliRunner result."""
    code = result.returncode if isinstance(result, subprocess.CompletedProcess) else result.exit_code
    return one_error_line(code, result.stdout, result.stderr, *expected)


# -- payloads ---------------------------------------------------------------------------------------------------------

PAYLOAD_MODULE = '''
from pathlib import Path


def build(marker, **kwargs):
    """A module-level function: what an entry point must never call."""
    Path(marker).write_text("ran")


class NotAnEnv:
    """A class, but no gymnasium env: never instantiated."""

    def __init__(self, marker, **kwargs):
        Path(marker).write_text("ran")
'''


@pytest.fixture
def payloads(tmp_path) -> tuple[Path, Path]:
    """A folder holding ``payload.py`` (to put on PYTHONPATH) and the marker file its code would write."""
    folder = tmp_path / "modules"
    folder.mkdir()
    (folder / "payload.py").write_text(PAYLOAD_MODULE)
    return folder, tmp_path / "marker"


def hostile(kind: str, marker: Path) -> dict:
    """An inline robot whose entry point would write ``marker`` if it were called."""
    if kind == "os:system":
        return {"entry_point": "os:system", "kwargs": {"command": f"touch {marker}"}}
    return {"entry_point": kind, "kwargs": {"marker": str(marker)}}


HOSTILE = ["os:system", "payload:build", "payload:NotAnEnv"]


# -- 1. no code from data files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_robot_file_whose_entry_point_is_not_an_env_class_runs_nothing(payloads, tmp_path, kind):
    modules, marker = payloads
    robot = tmp_path / "r.yaml"
    robot.write_text(yaml.safe_dump(hostile(kind, marker)))
    line = one_error(cli("envs", "--robot", str(robot), pythonpath=modules), "r.yaml", "entry_point", kind)
    assert "not a gymnasium.Env subclass" in line
    assert not marker.exists()


def test_a_target_files_inline_base_runs_nothing(payloads, tmp_path):
    modules, marker = payloads
    target = tmp_path / "t.yaml"
    target.write_text(yaml.safe_dump({"base": hostile("os:system", marker), "parameters": {}}))
    one_error(cli("envs", "--target", str(target), pythonpath=modules), "t.yaml", "base", "entry_point", "os:system")
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["os:system", "payload:build"])
def test_a_configs_inline_robot_runs_nothing_and_writes_no_run_folder(payloads, tmp_path, kind):
    modules, marker = payloads
    config = tiny(tmp_path, "cfg.yaml", robot=hostile(kind, marker))
    run_dir = tmp_path / "run"
    result = cli("train", str(config), "--run-dir", str(run_dir), "--device", "cpu", pythonpath=modules)
    one_error(result, "cfg.yaml", "robot", "entry_point", kind)
    assert not marker.exists()
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_a_registered_id_whose_entry_point_string_is_a_function_is_refused(payloads, monkeypatch):
    modules, marker = payloads
    monkeypatch.syspath_prepend(str(modules))
    gym.register(id="AbuseFunction-v0", entry_point="payload:build", kwargs={"marker": str(marker)})
    # a callable registered in Python is the user's own code: gymnasium calls it as registered
    gym.register(id="AbuseCallable-v0", entry_point=lambda **kwargs: SwingArmEnv(**kwargs), max_episode_steps=20)
    try:
        with pytest.raises(SpecError, match=r"^robot: gym_id: 'AbuseFunction-v0'.*not a gymnasium.Env subclass"):
            load_robot({"gym_id": "AbuseFunction-v0"})
        assert not marker.exists()
        assert "shoulder_kp" in load_robot({"gym_id": "AbuseCallable-v0"}).parameters
    finally:
        del gym.registry["AbuseFunction-v0"], gym.registry["AbuseCallable-v0"]


def test_gymnasium_gets_the_checked_class_never_the_string():
    spec = base_env_spec(None, "tests.custom_env:SwingArmEnv", None, "simreal/SwingArm-v0")
    assert spec.entry_point is SwingArmEnv
    from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

    assert base_env_spec("Hopper-v5", None, None, "x").entry_point is HopperEnv
    with pytest.raises(SpecError, match=r"^r\.yaml: entry_point: 'tests/custom_env:Swing' is not of the form"):
        base_env_spec(None, "tests/custom_env:Swing", None, "x", "r.yaml")


# -- an export, and what its manifest may point to --------------------------------------------------------------------


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """A tiny run of a shipped robot and one of an inline robot of one's own, each exported with TorchScript."""
    folder = tmp_path_factory.mktemp("exports")
    made = {}
    for name, robot in (("shipped", "inverted_pendulum"), ("custom", SWING_ARM)):
        config = tiny(folder, f"{name}.yaml", robot=robot)
        run_dir = folder / f"{name}_run"
        result = runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir), "--device", "cpu"])
        assert result.exit_code == 0, result.output
        export_policy(run_dir, "torchscript", folder / name)
        made[name] = folder / name
    return made


def copied(export: Path, tmp_path: Path, **manifest_changes) -> Path:
    """A copy of ``export`` with its manifest's fields changed."""
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, **manifest_changes}))
    return copy


def test_an_export_of_a_robot_of_ones_own_carries_its_robot_file_and_deploys(exports):
    manifest = json.loads((exports["custom"] / "manifest.json").read_text())
    assert manifest["robot"] == ROBOT_FILE and manifest["env_id"] is None
    carried = yaml.safe_load((exports["custom"] / ROBOT_FILE).read_text())
    assert carried["entry_point"] == SWING_ARM["entry_point"] and carried["robot"] == "swing_arm"
    made = deploy(exports["custom"], "lab", episodes=1, seed=0)
    assert made.recording.meta["robot"] == "swing_arm" and len(made.returns) == 1
    assert json.loads((exports["shipped"] / "manifest.json").read_text())["robot"] == "inverted_pendulum"
    assert not (exports["shipped"] / ROBOT_FILE).exists()


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_a_manifest_robot_outside_the_export_is_refused_and_runs_nothing(exports, payloads, tmp_path, where):
    modules, marker = payloads
    outside = tmp_path / "evil.yaml"
    outside.write_text(yaml.safe_dump(hostile("os:system", marker)))
    robot = str(outside) if where == "absolute" else "../evil.yaml"
    copy = copied(exports["custom"], tmp_path, robot=robot)
    one_error(cli("deploy", str(copy), "--env", "nominal", pythonpath=modules), "manifest.json", "robot", robot)
    assert not marker.exists()


def test_a_manifest_robot_that_is_neither_shipped_nor_a_file_is_refused(exports, tmp_path):
    copy = copied(exports["shipped"], tmp_path, robot="../envs/hopper")
    with pytest.raises(DataError, match=r"manifest\.json: robot: '\.\./envs/hopper' is neither a shipped robot"):
        deploy(copy, "nominal")


def test_a_robot_file_inside_the_export_is_checked_like_any_robot_file(exports, payloads, tmp_path):
    modules, marker = payloads
    copy = copied(exports["custom"], tmp_path)
    (copy / ROBOT_FILE).write_text(yaml.safe_dump(hostile("payload:build", marker)))
    one_error(cli("deploy", str(copy), "--env", "nominal", pythonpath=modules), ROBOT_FILE, "entry_point")
    assert not marker.exists()


# -- 3. an export's files are its own ---------------------------------------------------------------------------------


@pytest.mark.parametrize("file", ["policy.pt", ROBOT_FILE, "manifest.json"])
def test_an_export_file_that_is_a_symlink_outside_the_folder_is_refused(exports, tmp_path, file):
    copy = copied(exports["custom"], tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(copy / file, elsewhere / file)
    (copy / file).symlink_to(elsewhere / file)
    result = runner.invoke(app, ["deploy", str(copy), "--env", "nominal"])
    one_error(result, str(copy / file), "outside", str(elsewhere / file))


def test_a_symlink_that_stays_inside_the_export_is_followed(exports, tmp_path):
    copy = copied(exports["custom"], tmp_path)
    (copy / "weights").mkdir()
    shutil.move(copy / "policy.pt", copy / "weights" / "policy.pt")
    (copy / "policy.pt").symlink_to(Path("weights") / "policy.pt")
    assert len(deploy(copy, "lab").returns) == 1


# -- 6. manifest bounds -----------------------------------------------------------------------------------------------


def test_a_huge_state_size_is_refused_naming_the_bound(exports, tmp_path):
    copy = copied(exports["shipped"], tmp_path, state_size=10**12)
    one_error(runner.invoke(app, ["deploy", str(copy), "--env", "nominal"]), "state_size", f"{MAX_SIZE}")


@pytest.mark.parametrize("kind", ["nested", "fifo", "zero"])
def test_a_manifest_that_nests_too_deep_or_is_not_a_file_is_one_line_at_once(exports, tmp_path, kind):
    copy = copied(exports["shipped"], tmp_path)
    manifest = copy / "manifest.json"
    manifest.unlink()
    if kind == "nested":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
        expected = "nest"
    elif kind == "fifo":
        os.mkfifo(manifest)
        expected = "not a regular file"
    else:
        manifest.symlink_to("/dev/zero")
        expected = "outside"
    one_error(cli("deploy", str(copy), "--env", "nominal"), str(manifest), expected)  # a hang fails the timeout


# -- 7. nothing overwritten -------------------------------------------------------------------------------------------


def test_deploy_refuses_to_replace_a_recording_unless_told(exports, tmp_path):
    recording = tmp_path / "robot.npz"
    recording.write_bytes(b"hours of a real robot")
    result = runner.invoke(app, ["deploy", str(exports["shipped"]), "--env", "nominal", "--record", str(recording)])
    one_error(result, str(recording), "already exists", "--overwrite")
    assert recording.read_bytes() == b"hours of a real robot"
    with pytest.raises(DataError, match=r"already exists: a recording is replaced only with overwrite=True"):
        deploy(exports["shipped"], "nominal", out=recording)
    assert recording.read_bytes() == b"hours of a real robot"
    arguments = ["deploy", str(exports["shipped"]), "--env", "nominal", "--record", str(recording), "--overwrite"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert recording.read_bytes()[:2] == b"PK"  # an npz now


# -- 4. names are names -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generate", "expected"),
    [
        ({"rename": {"cart_mass": "../../../tmp/evil"}}, ["generate.rename.cart_mass", "is not a parameter name"]),
        ({"rename": {"cart_mass": ""}}, ["generate.rename.cart_mass", "''"]),
        ({"rename": {"cart_mass": "body_m", "pole_mass": "body_m"}}, ["cart_mass and pole_mass", "'body_m'"]),
        ({"exclude": ["*"]}, ["generate.exclude", "nothing to randomize"]),
    ],
)
def test_renames_are_names_and_a_catalogue_is_never_emptied_silently(tmp_path, generate, expected):
    robot = tmp_path / "r.yaml"
    robot.write_text(yaml.safe_dump({"gym_id": "InvertedPendulum-v5", "generate": generate}))
    one_error(runner.invoke(app, ["envs", "--robot", str(robot)]), "r.yaml", *expected)


def test_a_hand_written_parameter_name_with_a_path_separator_is_refused(tmp_path):
    robot = tmp_path / "r.yaml"
    parameter = {"kind": "gravity", "range": [0.9, 1.1]}
    robot.write_text(yaml.safe_dump({"gym_id": "InvertedPendulum-v5", "parameters": {"a/b": parameter}}))
    with pytest.raises(SpecError, match=r"r\.yaml: parameters: 'a/b' is not a parameter name"):
        load_robot(robot)


def test_every_shipped_robots_parameter_names_are_names():
    for robot in robot_names():
        assert all(PARAMETER_NAME.fullmatch(name) for name in load_robot(robot).parameters), robot


# -- 5. a robot that cannot be trained --------------------------------------------------------------------------------

NO_ACTUATOR_XML = """<mujoco>
  <worldbody>
    <body name="ball"><joint name="swing" type="hinge"/><geom type="sphere" size="0.1" mass="1"/></body>
  </worldbody>
</mujoco>
"""
NO_ACTUATOR_ENV = '''
from pathlib import Path

import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco import MujocoEnv


class BallEnv(MujocoEnv):
    """A MuJoCo env with nothing to drive."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 250}

    def __init__(self, **kwargs):
        space = spaces.Box(-np.inf, np.inf, (2,), np.float64)
        super().__init__(str(Path(__file__).with_name("ball.xml")), 2, observation_space=space, **kwargs)

    def _get_obs(self):
        return np.concatenate([self.data.qpos, self.data.qvel])

    def step(self, action):
        self.do_simulation(action, self.frame_skip)
        return self._get_obs(), 0.0, False, False, {}

    def reset_model(self):
        return self._get_obs()
'''


@pytest.mark.parametrize("robot", ["no actuator", "nothing to randomize"])
def test_a_robot_that_cannot_be_trained_is_refused_before_a_run_folder_is_written(tmp_path, robot):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "ball.xml").write_text(NO_ACTUATOR_XML)
    (modules / "ball_env.py").write_text(NO_ACTUATOR_ENV)
    if robot == "no actuator":
        inline, expected = {"entry_point": "ball_env:BallEnv", "max_episode_steps": 20}, ["entry_point", "no actuator"]
    else:
        inline, expected = {"gym_id": "InvertedPendulum-v5", "generate": {"exclude": ["*"]}}, ["generate.exclude"]
    config = tiny(tmp_path, "cfg.yaml", robot=inline)
    run_dir = tmp_path / "run"
    result = cli("train", str(config), "--run-dir", str(run_dir), "--device", "cpu", pythonpath=modules)
    one_error(result, "cfg.yaml", "robot", *expected)
    assert not run_dir.exists()
