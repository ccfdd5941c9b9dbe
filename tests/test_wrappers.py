"""Unmodeled effects: action delay, observation noise, action noise."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import simreal
from simreal.envs.effects import ActionDelay, ActionNoise, ObservationNoise


class RecordActions(gym.Wrapper):
    """Records the actions that reach the env below it."""

    def __init__(self, env):
        super().__init__(env)
        self.applied = []

    def step(self, action):
        self.applied.append(np.array(action))
        return self.env.step(action)


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_action_delay_applies_each_action_late(steps):
    recorder = RecordActions(simreal.make("hopper", nominal=True))
    env = ActionDelay(recorder, steps)
    env.reset(seed=0)
    sent = [np.full(3, 0.1 * (i + 1), dtype=np.float32) for i in range(6)]
    for action in sent:
        env.step(action)
    for i, applied in enumerate(recorder.applied):
        expected = np.zeros(3) if i < steps else sent[i - steps]
        assert np.allclose(applied, expected)
    env.reset()
    env.step(sent[0])
    assert np.allclose(recorder.applied[-1], np.zeros(3) if steps else sent[0])


def test_observation_noise_has_its_std_and_is_seeded():
    clean = simreal.make("hopper", nominal=True)
    noisy = ObservationNoise(simreal.make("hopper", nominal=True), 0.05)
    differences = []
    for seed in range(30):
        differences.append(noisy.reset(seed=seed)[0] - clean.reset(seed=seed)[0])
    differences = np.concatenate(differences)
    assert np.std(differences) == pytest.approx(0.05, rel=0.15)
    assert np.array_equal(noisy.reset(seed=4)[0], noisy.reset(seed=4)[0])
    with pytest.raises(ValueError):
        ObservationNoise(clean, -0.1)


def test_action_noise_perturbs_and_clips():
    recorder = RecordActions(simreal.make("hopper", nominal=True))
    env = ActionNoise(recorder, 0.5)
    env.reset(seed=0)
    for _ in range(50):
        env.step(np.full(3, 0.9, dtype=np.float32))
    applied = np.array(recorder.applied)
    assert applied.max() <= 1.0 and applied.min() >= -1.0
    assert np.any(applied == 1.0)  # clipped at the bound
    assert np.std(applied) > 0.1


def test_make_applies_effects_in_order():
    env = simreal.make("hopper", effects={"action_delay_steps": 2, "obs_noise_std": 0.01, "action_noise_std": 0.1})
    layers = []
    while isinstance(env, gym.Wrapper):
        layers.append(type(env).__name__)
        env = env.env
    assert layers[:5] == ["OrderEnforced", "ObservationNoise", "ActionDelay", "ActionNoise", "RandomizedDynamics"]
    plain = simreal.make("hopper", target="mild", effects={})
    assert not any(isinstance(layer, (ObservationNoise, ActionDelay, ActionNoise)) for layer in _layers(plain))


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"target": "severe"}, {"effects": {"action_delay_steps": 1, "obs_bias_std": 0.1}}, {"nominal": True}],
    ids=["randomized", "target", "effects", "nominal"],
)
def test_a_step_before_reset_is_gymnasiums_reset_needed(kwargs):
    from gymnasium.error import ResetNeeded

    for env in (gym.make("simreal/Hopper-v0", **kwargs), simreal.make("hopper", **kwargs)):
        with pytest.raises(ResetNeeded):
            env.step(env.action_space.sample())
        rebuilt = gym.make(env.spec)  # the spec rebuilds one order check, not two
        assert sum(type(layer).__name__ == "OrderEnforced" for layer in _layers(rebuilt)) == 1
        rebuilt.reset(seed=0)
        rebuilt.step(rebuilt.action_space.sample())


def _layers(env):
    while True:
        yield env
        if not hasattr(env, "env"):
            return
        env = env.env
