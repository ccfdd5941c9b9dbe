"""A robot of one's own (tests/custom_env.py, a gymnasium MujocoEnv simreal knows nothing about): wrapped, given as
a robot file or inline in a config, through train, evaluate, collect, sysid, robustness and fine-tuning."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from typer.testing import CliRunner

import simreal
from simreal.cli import app
from tests.custom_env import SwingArmEnv
from tests.test_training import tiny_config

runner = CliRunner()

ROBOT = {
    "entry_point": "tests.custom_env:SwingArmEnv",
    "kwargs": {"goal_height": 1.4},
    "max_episode_steps": 50,
    "observation": {"skipped_positions": 0},  # obs = qpos, qvel: sysid rebuilds states from it
}
LAB = {"parameters": {"shoulder_kp": 0.8, "lower_mass": 1.2}, "effects": {"action_delay_steps": 1}}


@pytest.fixture
def robot_file(tmp_path):
    path = tmp_path / "swing_arm.yaml"
    path.write_text(yaml.safe_dump({**ROBOT, "targets": {"lab": LAB}}))
    return path


def test_wrap_makes_any_mujoco_env_a_simreal_env():
    env = simreal.wrap(SwingArmEnv(), effect_ranges={"action_delay_steps": [0, 1]})
    _, info = env.reset(seed=0)
    optional = {name for name in info["dynamics"] if name.endswith("_frictionloss") or "_com_" in name}
    assert {"shoulder_frictionloss", "upper_com_x", "lower_com_z"} <= optional  # the offsets: not randomized
    assert all(info["dynamics"][name] == 0.0 for name in optional)
    assert set(info["dynamics"]) - optional == {
        "upper_mass",
        "lower_mass",
        "shoulder_damping",
        "elbow_damping",
        "shoulder_armature",
        "elbow_armature",
        "shoulder_kp",
        "elbow_kp",
        "shoulder_kv",
        "elbow_kv",
        "gravity",
    }
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False, skip_render_check=True)
    model = env.unwrapped.model
    simreal.set_dynamics(env, {"shoulder_kp": 2.0})
    assert model.actuator_gainprm[0, 0] == 60.0
    rebuilt = gym.make(env.spec)  # the recorded robot rebuilds it
    assert simreal.get_dynamics(rebuilt).keys() == info["dynamics"].keys()
    hopper = simreal.wrap(gym.make("Hopper-v5"), target="severe")  # a shipped robot's id: its catalogue, targets
    assert simreal.get_dynamics(hopper)["torso_mass"] == 1.5


def test_a_robot_file_through_train_evaluate_collect_sysid_and_robustness(tmp_path, robot_file):
    run_dir = tmp_path / "run"
    config = tiny_config(tmp_path, "ppo", robot=str(robot_file), eval={"frequency": 256, "episodes": 1})
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["robot"]["entry_point"] == ROBOT["entry_point"]  # the run keeps the robot itself, not a path
    assert "target: lab" in result.stdout

    evaluated = runner.invoke(app, ["evaluate", str(run_dir), "--episodes", "2", "--json", str(tmp_path / "e.json")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "lab" in json.loads((tmp_path / "e.json").read_text())["targets"]

    data = tmp_path / "lab.npz"
    args = ["collect", str(run_dir), "--robot", str(robot_file), "--target", "lab", "--episodes", "4", "--out"]
    collected = runner.invoke(app, [*args, str(data)])
    assert collected.exit_code == 0, collected.output
    out = tmp_path / "identified.yaml"
    identified = runner.invoke(
        app,
        ["sysid", str(data), "--robot", str(robot_file), "--params", "shoulder_kp,lower_mass", "--horizon", "3"]
        + ["--budget", "60", "--out", str(out)],
    )
    assert identified.exit_code == 0, identified.output
    written = yaml.safe_load(out.read_text())
    assert written["base"] == str(robot_file) and set(written["ranges"]) == {"shoulder_kp", "lower_mass"}
    # the identified file is a target of the robot, and training ranges for it
    assert simreal.get_dynamics(simreal.make(str(robot_file), target=str(out)))["shoulder_kp"] > 0

    mapped = runner.invoke(
        app,
        ["robustness", str(run_dir), "--params", "shoulder_kp", "--range", "0.8:1.2", "--grid", "2"]
        + ["--episodes", "1", "--workers", "1", "--out", str(tmp_path / "map")],
    )
    assert mapped.exit_code == 0, mapped.output
    assert any((tmp_path / "map").glob("*.json"))


def test_an_inline_robot_in_a_config_trains_and_fine_tunes(tmp_path):
    run_dir = tmp_path / "run"
    config = tiny_config(tmp_path, "ppo", robot={**ROBOT, "targets": {"lab": LAB}}, eval={"frequency": 0})
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert (run_dir / "model.zip").is_file()
    tuned = runner.invoke(
        app,
        ["finetune", str(run_dir), "--target", "lab", "--strategy", "full", "--steps", "256", "--final-episodes"]
        + ["2", "--eval-episodes", "1", "--run-dir", str(tmp_path / "tuned"), "--device", "cpu"],
    )
    assert tuned.exit_code == 0, tuned.output


@pytest.mark.parametrize(
    ("robot", "message"),
    [
        ({"entry_point": "tests.custom_env:NoSuchEnv"}, "tiny_ppo.yaml: robot: entry_point: cannot make"),
        ({"kwargs": {}}, "tiny_ppo.yaml: robot: gym_id: missing"),
        ({**ROBOT, "parameters": {"tail_mass": {"range": [0.9, 1.1]}}}, "parameters.tail_mass: not in the catalogue"),
    ],
)
def test_a_bad_inline_robot_is_one_line_exit_2(tmp_path, robot, message):
    config = tiny_config(tmp_path, "ppo", robot=robot)
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_observation_layout_rebuilds_the_custom_state():
    env = simreal.make(ROBOT)
    obs, _ = env.reset(seed=0)
    assert np.array_equal(obs, np.concatenate([env.unwrapped.data.qpos, env.unwrapped.data.qvel]))


def test_the_transfer_pipeline_runs_on_a_robot_of_ones_own(tmp_path, robot_file):
    run_dir = tmp_path / "run"
    config = tiny_config(tmp_path, "ppo", robot=str(robot_file), eval={"frequency": 0})
    assert runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir), "--device", "cpu"]).exit_code == 0
    pipeline = {
        "target": "lab",
        "episodes": 2,
        "source": {"run": str(run_dir)},
        "stages": {
            "sysid": {"episodes": 3, "params": ["shoulder_kp", "lower_mass"], "budget": 40, "horizon": 3},
            "identified": {"timesteps": 256},
            "finetune": {"steps": 256, "eval_episodes": 1, "count_eval": False, "eval_every": 128},
            "oracle": {"timesteps": 256},
        },
    }
    path = tmp_path / "transfer.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    result = runner.invoke(app, ["transfer", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["complete"] and {row["stage"] for row in report["stages"]} >= {"sysid", "identified", "oracle"}
    identified = yaml.safe_load((tmp_path / "out" / "sysid" / "identified.yaml").read_text())
    assert identified["base"]["entry_point"] == ROBOT["entry_point"]  # the robot itself, loadable anywhere
