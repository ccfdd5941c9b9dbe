"""Smoothing rebuilt positions with the observed velocities: less noise on noisy data, no change on exact data."""

from __future__ import annotations

import numpy as np
import pytest

from simreal.envs.mujoco_base import make_base_env
from simreal.envs.robots import load_robot
from simreal.sysid.collect import collect
from simreal.sysid.smoothing import position_velocity_pairs
from simreal.sysid.states import fit_states


def _smooth(data, robot):
    spec = load_robot(robot)
    env = make_base_env(spec)
    model, frame_skip = env.unwrapped.model, env.unwrapped.frame_skip
    raw = fit_states(data, spec, model, frame_skip, use_observations=True, smooth=False)
    return raw.qpos, fit_states(data, spec, model, frame_skip, use_observations=True, smooth=True)


def test_noisy_positions_come_out_several_times_closer_to_the_truth():
    effects = {"obs_noise_std": 0.01}
    data = collect("random", "hopper", target={"parameters": {}, "effects": effects}, episodes=6, seed=0)
    raw, smoothed = _smooth(data, "hopper")
    raw_error = np.sqrt(np.mean((raw[:, 1:] - data.qpos[:, 1:]) ** 2))
    smoothed_error = np.sqrt(np.mean((smoothed.qpos[:, 1:] - data.qpos[:, 1:]) ** 2))
    assert raw_error == pytest.approx(0.01, rel=0.1)
    assert smoothed_error < raw_error / 3
    # the noise level is estimated from the data, for every observed joint position
    assert sorted(smoothed.position_noise) == [1, 2, 3, 4, 5]
    assert all(v == pytest.approx(0.01, rel=0.25) for v in smoothed.position_noise.values())


@pytest.mark.parametrize("robot", ["hopper", "halfcheetah", "ant"])
def test_exact_positions_are_left_alone(robot):
    data = collect("random", robot, episodes=2, seed=0)
    raw, smoothed = _smooth(data, robot)
    assert smoothed.position_noise == {}
    assert np.array_equal(smoothed.qpos, raw)


def test_free_joint_translation_pairs_with_its_linear_velocity_and_quaternions_are_skipped():
    model = make_base_env(load_robot("ant")).unwrapped.model
    pairs = dict(position_velocity_pairs(model, skipped=2))
    assert pairs[2] == 2  # z of the free joint with its linear z velocity
    assert not {3, 4, 5, 6} & set(pairs)  # the quaternion
    assert pairs[7] == 6  # the first hinge: qpos and qvel addresses differ by one after the quaternion
