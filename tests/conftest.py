from __future__ import annotations

import numpy as np
import pytest

#: The robots simreal first shipped (hand-written catalogues then, generated now: same parameters).
FIRST_ROBOTS = ["hopper", "halfcheetah", "walker2d", "ant", "inverted_pendulum"]
#: Every gymnasium MuJoCo v5 robot.
ROBOTS = [*FIRST_ROBOTS, "humanoid", "humanoidstandup", "inverted_double_pendulum", "pusher", "reacher", "swimmer"]
TARGETS = ["mild", "moderate", "severe"]


def rollout(env, actions, seed: int = 0, kick: float = 0.0) -> np.ndarray:
    """Reset with ``seed``, step through ``actions`` (stopping at the episode's end), return the observations.

    ``kick`` is added to every joint velocity after the reset, so that a parameter of something the actions never
    touch (the pusher's object) still shows in the trajectory."""
    obs, _ = env.reset(seed=seed)
    if kick:
        robot = env.unwrapped
        robot.set_state(robot.data.qpos.copy(), robot.data.qvel + kick)
    observations = [obs]
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        if terminated or truncated:
            break
    return np.asarray(observations)


@pytest.fixture
def write_yaml(tmp_path):
    """Write text to a YAML file in a temporary folder and return its path."""

    def write(text: str, name: str = "target.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny PPO hopper run (512 steps, 8-unit networks), trained once for every test that needs a policy."""
    from typer.testing import CliRunner

    from simreal.cli import app
    from tests.test_training import tiny_config

    tmp_path = tmp_path_factory.mktemp("trained")
    run_dir = tmp_path / "run"
    config = tiny_config(tmp_path, "ppo", eval={"frequency": 0, "episodes": 1, "targets": ["mild"]})
    result = CliRunner().invoke(app, ["train", str(config), "--run-dir", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return run_dir
