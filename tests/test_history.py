"""History inputs: the last k observations and actions, zeros at an episode's start."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import simreal
from simreal.envs.history import HistoryObservation


def test_history_holds_the_last_observations_and_actions_with_zeros_at_the_start():
    plain = simreal.make("hopper", nominal=True)
    env = HistoryObservation(simreal.make("hopper", nominal=True), 3)
    obs_dim, act_dim = 11, 3
    assert env.observation_space.shape == (3 * (obs_dim + act_dim),)
    first, _ = plain.reset(seed=5)
    stacked, _ = env.reset(seed=5)
    assert np.array_equal(stacked[: 2 * obs_dim], np.zeros(2 * obs_dim))  # before the episode: zeros
    assert np.allclose(stacked[2 * obs_dim : 3 * obs_dim], first)
    assert np.array_equal(stacked[3 * obs_dim :], np.zeros(3 * act_dim))
    rng = np.random.default_rng(0)
    actions, observations = [], [first]
    for _ in range(4):
        action = rng.uniform(-1, 1, act_dim).astype(np.float32)
        observations.append(plain.step(action)[0])
        stacked = env.step(action)[0]
        actions.append(action)
    assert np.allclose(stacked[: 3 * obs_dim], np.concatenate(observations[-3:]))
    assert np.allclose(stacked[3 * obs_dim :], np.concatenate(actions[-3:]))
    again, _ = env.reset(seed=6)  # a new episode forgets the last one
    assert np.array_equal(again[: 2 * obs_dim], np.zeros(2 * obs_dim))
    assert np.array_equal(again[3 * obs_dim :], np.zeros(3 * act_dim))


def test_the_env_spec_rebuilds_the_history_wrapper():
    import gymnasium as gym

    env = HistoryObservation(simreal.make("hopper", target="mild"), 2)
    rebuilt = gym.make(env.spec)
    assert rebuilt.observation_space.shape == env.observation_space.shape == (28,)
    assert simreal.get_dynamics(rebuilt) == simreal.get_dynamics(env)


def test_history_env_passes_the_gymnasium_checker_and_rejects_bad_lengths():
    check_env(HistoryObservation(simreal.make("inverted_pendulum"), 2), skip_render_check=True)
    with pytest.raises(ValueError, match="history length must be >= 1"):
        HistoryObservation(simreal.make("inverted_pendulum"), 0)
