"""Unmodeled effects of real robots as gymnasium wrappers, one effect each: action delay, observation noise, action
noise, observation bias, observation delay, actuator lag. :func:`add_effects` stacks the active ones in a fixed
order.

Each wrapper has a value of its own (a target's), which an episode's draw replaces: when the dynamics wrapper inside
draws effects per episode (training ranges that name effects), it reports them in the ``info`` of ``reset`` under
``"effects"`` and each wrapper takes its own from there for that episode."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Collection
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from simreal.envs.mujoco_base import box_space, mujoco_env
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


def _drawn(info: dict[str, Any], name: str, current: float) -> float:
    """The value of effect ``name`` drawn for the episode that ``info`` (of a reset) starts, else ``current``."""
    drawn = info.get("effects")
    return drawn[name] if drawn and name in drawn else current


class _Delay(PartOfTheEnv, gym.Wrapper, ABC):
    """Shared by the delays: a validated whole number of control ``steps`` (an episode's draw replaces it) and the
    queue of what is on its way."""

    _effect: str  # the effect's name in Effects and in an episode's draw

    def __init__(self, env: gym.Env, steps: int) -> None:
        super().__init__(env)
        if steps < 0:
            raise ValueError(f"{self._effect}: must be >= 0 steps, got {steps}")
        self.steps = int(steps)
        self._queue: deque[Any] = deque()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.steps = int(_drawn(info, self._effect, self.steps))
        self._queue = self.first_queue(obs)
        return obs, info

    @abstractmethod
    def first_queue(self, obs: Any) -> deque[Any]:
        """What is on its way when an episode starts with ``obs``, for its delay of ``self.steps``."""


class ActionDelay(_Delay):
    """Actions reach the robot ``steps`` control steps late; zeros are applied until the first one arrives.

    Args:
        env: the env.
        steps: the delay in control steps (0 passes actions through); an episode's draw replaces it.
    """

    _effect = "action_delay_steps"

    def first_queue(self, obs: Any) -> deque[Any]:
        space = box_space(self.action_space)
        return deque([np.zeros(space.shape, dtype=space.dtype)] * self.steps)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        self._queue.append(np.asarray(action, dtype=self.action_space.dtype))
        return self.env.step(self._queue.popleft())


class ObservationDelay(_Delay):
    """Observations reach the policy ``steps`` control steps late; until then it sees the episode's first one.
    Rewards, terminations and ``info`` are the robot's own, not delayed.

    Args:
        env: the env.
        steps: the delay in control steps (0 passes observations through); an episode's draw replaces it.
    """

    _effect = "obs_delay_steps"

    def first_queue(self, obs: Any) -> deque[Any]:
        return deque([obs] * (self.steps + 1), maxlen=self.steps + 1)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._queue.append(obs)
        return self._queue[0], reward, terminated, truncated, info


class ActuatorLag(PartOfTheEnv, gym.ActionWrapper):
    """A first-order lag between the action sent and the action applied, as a motor of limited bandwidth: each
    control step the applied action moves ``1 - exp(-dt / τ)`` of the way to the one sent (the step response of
    the continuous lag over one control period ``dt``), from zeros at every reset.

    Args:
        env: the env (its ``unwrapped.dt`` is the control period, as gymnasium's MuJoCo envs have it).
        seconds: the time constant τ (0 passes actions through); an episode's draw replaces it.
    """

    def __init__(self, env: gym.Env, seconds: float) -> None:
        super().__init__(env)
        if seconds < 0:
            raise ValueError(f"actuator_lag_s: must be >= 0, got {seconds}")
        self.seconds = float(seconds)
        self._dt = float(mujoco_env(env).dt)
        self._applied = np.zeros(box_space(self.action_space).shape, dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.seconds = float(_drawn(info, "actuator_lag_s", self.seconds))
        self._applied = np.zeros(box_space(self.action_space).shape, dtype=np.float64)
        return obs, info

    def action(self, action: np.ndarray) -> np.ndarray:
        share = 1.0 - np.exp(-self._dt / self.seconds) if self.seconds > 0 else 1.0
        self._applied = self._applied + share * (np.asarray(action, dtype=np.float64) - self._applied)
        return self._applied.astype(self.action_space.dtype)


class _GaussianNoise(PartOfTheEnv, StreamOwner, gym.Wrapper):
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

    @property
    def rng(self) -> np.random.Generator:
        """The noise generator (there from the first reset on)."""
        if self._rng is None:
            raise gym.error.ResetNeeded(f"{type(self).__name__}: reset the env before stepping it")
        return self._rng

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
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
        noise = self.rng.normal(0.0, self.std, size=observation.shape)
        return (observation + noise).astype(observation.dtype, copy=False)


class ObservationBias(_GaussianNoise, gym.ObservationWrapper):
    """A sensor offset: at every reset draws one bias per observation entry, normal with standard deviation ``std``,
    and adds it to every observation of the episode."""

    _salt, _stream, _effect = SALT_OBS_BIAS, "observation_bias", "obs_bias_std"

    def start_episode(self, obs: Any) -> None:
        self._bias = self.rng.normal(0.0, self.std, size=np.shape(obs))

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return (observation + self._bias).astype(observation.dtype, copy=False)


class ActionNoise(_GaussianNoise, gym.ActionWrapper):
    """Adds Gaussian noise of standard deviation ``std`` (action units) to every action entry, then clips it to the
    action space."""

    _salt, _stream, _effect = SALT_ACTION_NOISE, "action_noise", "action_noise_std"

    def action(self, action: np.ndarray) -> np.ndarray:
        noisy = np.asarray(action, dtype=np.float64) + self.rng.normal(0.0, self.std, size=np.shape(action))
        space = box_space(self.action_space)
        return np.clip(noisy, space.low, space.high).astype(space.dtype)


def add_effects(env: gym.Env, effects: Effects, drawn: Collection[str] = ()) -> gym.Env:
    """Wrap ``env`` with the active unmodeled effects, inside out: actuator lag, action noise, action delay,
    observation noise, observation bias, observation delay. So an action sent is delayed, then made noisy, then
    lagged by the motor; an observation is made noisy, then biased, then delayed. Active means a value above 0, or
    named in ``drawn`` (effects drawn per episode)."""
    for name, wrapper in (
        ("actuator_lag_s", ActuatorLag),
        ("action_noise_std", ActionNoise),
        ("action_delay_steps", ActionDelay),
        ("obs_noise_std", ObservationNoise),
        ("obs_bias_std", ObservationBias),
        ("obs_delay_steps", ObservationDelay),
    ):
        value = getattr(effects, name)
        if value > 0 or name in drawn:
            env = wrapper(env, value)
    return env
