"""Unmodeled effects of real robots as gymnasium wrappers, one effect each: action delay, observation noise, action
noise, observation bias. :func:`add_effects` stacks the active ones in a fixed order.

Each wrapper has a value of its own (a target's), which an episode's draw replaces: when the dynamics wrapper inside
draws effects per episode (training ranges that name effects), it reports them in the ``info`` of ``reset`` under
``"effects"`` and each wrapper takes its own from there for that episode."""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from typing import Any

import gymnasium as gym
import numpy as np

from simreal.envs.spec import Effects
from simreal.envs.streams import (
    SALT_ACTION_NOISE,
    SALT_OBS_BIAS,
    SALT_OBS_NOISE,
    PartOfTheEnv,
    StreamOwner,
    generator_from,
    generator_state,
    seeded_rng,
)


def _drawn(info: dict, name: str, current: float) -> float:
    """The value of effect ``name`` drawn for the episode that ``info`` (of a reset) starts, else ``current``."""
    drawn = info.get("effects")
    return drawn[name] if drawn and name in drawn else current


class ActionDelay(PartOfTheEnv, gym.Wrapper):
    """Actions reach the robot ``steps`` control steps late; zeros are applied until the first one arrives.

    Args:
        env: the env.
        steps: the delay in control steps (0 passes actions through); an episode's draw replaces it.
    """

    def __init__(self, env: gym.Env, steps: int) -> None:
        super().__init__(env)
        if steps < 0:
            raise ValueError(f"action delay must be >= 0 steps, got {steps}")
        self.steps = int(steps)
        self._queue: deque[np.ndarray] = deque()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.steps = int(_drawn(info, "action_delay_steps", self.steps))
        zero = np.zeros(self.action_space.shape, dtype=self.action_space.dtype)
        self._queue = deque([zero] * self.steps)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self._queue.append(np.asarray(action, dtype=self.action_space.dtype))
        return self.env.step(self._queue.popleft())


class _GaussianNoise(PartOfTheEnv, StreamOwner):
    """Shared by the noise wrappers: a validated ``std`` (an episode's draw replaces it) and a generator reseeded by
    ``reset(seed=...)``."""

    _salt: int
    _stream: str  # the stream's name in checkpoints
    _effect: str  # the effect's name in Effects and in an episode's draw

    def __init__(self, env: gym.Env, std: float) -> None:
        super().__init__(env)
        if std < 0:
            raise ValueError(f"{self._effect}: must be >= 0, got {std}")
        self.std = float(std)
        self._rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._rng = seeded_rng(seed, self._salt, self._rng)
        obs, info = self.env.reset(seed=seed, options=options)
        self.std = float(_drawn(info, self._effect, self.std))
        self.start_episode(obs)
        return self.transform_reset(obs), info

    def start_episode(self, obs: Any) -> None:
        """What a new episode needs beyond its ``std`` (nothing, unless overridden)."""

    def transform_reset(self, obs: Any) -> Any:
        """The first observation of an episode as the policy sees it (an observation wrapper's ``observation``)."""
        return self.observation(obs) if isinstance(self, gym.ObservationWrapper) else obs

    def own_streams(self) -> dict[str, Any]:
        return {self._stream: generator_state(self._rng)}

    def restore_own_streams(self, state: dict[str, Any]) -> None:
        self._rng = generator_from(state.get(self._stream), self._rng)


class ObservationNoise(_GaussianNoise, gym.ObservationWrapper):
    """Adds Gaussian noise of standard deviation ``std`` (observation units) to every observation entry."""

    _salt, _stream, _effect = SALT_OBS_NOISE, "observation_noise", "obs_noise_std"

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self._rng.normal(0.0, self.std, size=observation.shape)
        return (observation + noise).astype(observation.dtype, copy=False)


class ObservationBias(_GaussianNoise, gym.ObservationWrapper):
    """A sensor offset: at every reset draws one bias per observation entry, normal with standard deviation ``std``,
    and adds it to every observation of the episode."""

    _salt, _stream, _effect = SALT_OBS_BIAS, "observation_bias", "obs_bias_std"

    def start_episode(self, obs: Any) -> None:
        self._bias = self._rng.normal(0.0, self.std, size=np.shape(obs))

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return (observation + self._bias).astype(observation.dtype, copy=False)


class ActionNoise(_GaussianNoise, gym.ActionWrapper):
    """Adds Gaussian noise of standard deviation ``std`` (action units) to every action entry, then clips it to the
    action space."""

    _salt, _stream, _effect = SALT_ACTION_NOISE, "action_noise", "action_noise_std"

    def action(self, action: np.ndarray) -> np.ndarray:
        noisy = np.asarray(action, dtype=np.float64) + self._rng.normal(0.0, self.std, size=np.shape(action))
        return np.clip(noisy, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)


def add_effects(env: gym.Env, effects: Effects, drawn: Collection[str] = ()) -> gym.Env:
    """Wrap ``env`` with the active unmodeled effects: actuator noise, then delay, then observation noise, then
    observation bias. Active means a value above 0, or named in ``drawn`` (effects drawn per episode)."""
    for name, wrapper in (
        ("action_noise_std", ActionNoise),
        ("action_delay_steps", ActionDelay),
        ("obs_noise_std", ObservationNoise),
        ("obs_bias_std", ObservationBias),
    ):
        value = getattr(effects, name)
        if value > 0 or name in drawn:
            env = wrapper(env, value)
    return env
