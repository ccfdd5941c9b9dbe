"""Unmodeled effects of real robots as gymnasium wrappers, one effect each: action delay, observation noise, action
noise. :func:`add_effects` stacks the active ones in a fixed order."""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from simreal.envs.spec import Effects
from simreal.envs.streams import (
    SALT_ACTION_NOISE,
    SALT_OBS_NOISE,
    PartOfTheEnv,
    StreamOwner,
    generator_from,
    generator_state,
    seeded_rng,
)


class ActionDelay(PartOfTheEnv, gym.Wrapper):
    """Actions reach the robot ``steps`` control steps late; zeros are applied until the first one arrives.

    Args:
        env: the env.
        steps: the delay in control steps (0 passes actions through).
    """

    def __init__(self, env: gym.Env, steps: int) -> None:
        super().__init__(env)
        if steps < 0:
            raise ValueError(f"action delay must be >= 0 steps, got {steps}")
        self.steps = int(steps)
        self._queue: deque[np.ndarray] = deque()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        zero = np.zeros(self.action_space.shape, dtype=self.action_space.dtype)
        self._queue = deque([zero] * self.steps)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self._queue.append(np.asarray(action, dtype=self.action_space.dtype))
        return self.env.step(self._queue.popleft())


class _GaussianNoise(PartOfTheEnv, StreamOwner):
    """Shared by the noise wrappers: a validated ``std`` and a generator reseeded by ``reset(seed=...)``."""

    _salt: int
    _what: str

    def __init__(self, env: gym.Env, std: float) -> None:
        super().__init__(env)
        if std < 0:
            raise ValueError(f"{self._what} noise std must be >= 0, got {std}")
        self.std = float(std)
        self._rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._rng = seeded_rng(seed, self._salt, self._rng)
        return super().reset(seed=seed, options=options)

    def own_streams(self) -> dict[str, Any]:
        return {f"{self._what}_noise": generator_state(self._rng)}

    def restore_own_streams(self, state: dict[str, Any]) -> None:
        self._rng = generator_from(state.get(f"{self._what}_noise"), self._rng)


class ObservationNoise(_GaussianNoise, gym.ObservationWrapper):
    """Adds Gaussian noise of standard deviation ``std`` (observation units) to every observation entry."""

    _salt, _what = SALT_OBS_NOISE, "observation"

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self._rng.normal(0.0, self.std, size=observation.shape)
        return (observation + noise).astype(observation.dtype, copy=False)


class ActionNoise(_GaussianNoise, gym.ActionWrapper):
    """Adds Gaussian noise of standard deviation ``std`` (action units) to every action entry, then clips it to the
    action space."""

    _salt, _what = SALT_ACTION_NOISE, "action"

    def action(self, action: np.ndarray) -> np.ndarray:
        noisy = np.asarray(action, dtype=np.float64) + self._rng.normal(0.0, self.std, size=np.shape(action))
        return np.clip(noisy, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)


def add_effects(env: gym.Env, effects: Effects) -> gym.Env:
    """Wrap ``env`` with the active unmodeled effects: actuator noise, then delay, then observation noise."""
    if effects.action_noise_std > 0:
        env = ActionNoise(env, effects.action_noise_std)
    if effects.action_delay_steps > 0:
        env = ActionDelay(env, effects.action_delay_steps)
    if effects.obs_noise_std > 0:
        env = ObservationNoise(env, effects.obs_noise_std)
    return env
