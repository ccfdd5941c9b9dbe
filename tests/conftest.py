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
