from __future__ import annotations

import numpy as np
import pytest

ROBOTS = ["hopper", "halfcheetah", "walker2d", "ant", "inverted_pendulum"]
TARGETS = ["mild", "moderate", "severe"]


def rollout(env, actions, seed: int = 0) -> np.ndarray:
    """Reset with ``seed``, step through ``actions`` (stopping at the episode's end), return the observations."""
    obs, _ = env.reset(seed=seed)
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
