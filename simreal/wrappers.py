"""Gymnasium wrappers: the simulated physics (randomized dynamics, guarded against unstable simulation) and the
unmodeled effects of real robots (action delay, observation noise, action noise), one effect each.

Each wrapper with randomness owns a ``numpy.random.Generator`` seeded from ``reset(seed=...)`` with a salt of its own,
so the env's own initial-state noise, the dynamics and each effect draw from independent streams, and the same seed
gives the same numbers.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.error import ResetNeeded

from simreal.dynamics import DynamicsModel, DynamicsSampler
from simreal.errors import SpecError
from simreal.spec import ParameterRange, check_multiplier

# one salt per wrapper so that their streams never coincide for the same seed
_SALT_DYNAMICS = 0x51D
_SALT_OBS_NOISE = 0x0B5
_SALT_ACTION_NOISE = 0xAC7
_SAMPLE_BLOCK = 64


class _PartOfTheEnv:
    """Mixin for simreal's wrappers: they are part of the env's definition, not extra wrappers, so the spec is the
    inner one (the ``simreal/<Robot>-v0`` spec that :func:`simreal.make` records), and ``gym.make(env.spec)``
    rebuilds the same env."""

    @property
    def spec(self) -> EnvSpec | None:
        return self.env.spec


def seeded_rng(seed: int | None, salt: int, current: np.random.Generator | None) -> np.random.Generator:
    """The generator to use after ``reset(seed=seed)``: a fresh one for a new seed, else the current one."""
    if seed is not None:
        return np.random.default_rng([salt, seed])
    return current if current is not None else np.random.default_rng()


class RandomizedDynamics(_PartOfTheEnv, gym.Wrapper):
    """Owns the simulated physics: samples the robot's physical parameters at every reset, writes them into the
    MuJoCo model, and ends episodes whose simulation became unstable.

    With no ranges the dynamics stay fixed at ``fixed`` (a target). The multipliers in force are returned by
    :meth:`get_dynamics`, in the ``info`` of ``reset`` and in the ``info`` of an episode's last step, under
    ``"dynamics"``.

    Unstable means a MuJoCo warning was raised since the last reset (at every step MuJoCo checks positions,
    velocities and accelerations for NaN, inf or values above 1e10, resets its state and warns), or the reward is not
    finite. The step then returns the last good observation, reward 0, ``truncated=True`` and
    ``info["sim_unstable"] = True``: it never crashes and never returns NaN. (The guard lives here rather than in a
    wrapper of its own because a wrapper layer costs about 0.3% of Hopper's step time: see BENCHMARKS.md.)

    Args:
        env: a gymnasium MuJoCo env (any wrappers around it).
        dynamics: the robot's catalogue bound to the env's model.
        ranges: name -> distribution of the parameters to randomize; ``None`` or empty for fixed dynamics.
        fixed: multipliers of the parameters that are not randomized (omitted ones are 1.0).
    """

    def __init__(
        self,
        env: gym.Env,
        dynamics: DynamicsModel,
        ranges: Mapping[str, ParameterRange] | None = None,
        fixed: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(env)
        self._dynamics = dynamics
        self._names = dynamics.names
        self._model, self._data = env.unwrapped.model, env.unwrapped.data
        self._warnings = self._data.warning.number  # a view on MjData's counts, which reset clears
        self._last_obs: Any = None
        # multipliers in catalogue order: what stays when nothing is sampled, and what is in force now
        self._base = np.ones(len(self._names))
        fixed_values = self._checked(fixed or {})
        self._base[dynamics.index_of(tuple(fixed_values))] = list(fixed_values.values())
        self._current = self._base.copy()
        self._boundary: list[str] | None = None
        self._boundary_probability = 0.0
        self.set_ranges(ranges or {})
        self._rng: np.random.Generator | None = None
        self._env_spec: EnvSpec | None = None
        self._apply()

    @property
    def spec(self) -> EnvSpec | None:
        return self._env_spec if self._env_spec is not None else self.env.spec

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        self._env_spec = value

    def _apply(self) -> None:
        self._dynamics.apply_array(self._model, self._data, self._current)

    def _checked(self, values: Mapping[str, float]) -> dict[str, float]:
        checked = {}
        for name, value in values.items():
            if name not in self._dynamics.spec.parameters:
                known = ", ".join(self._names)
                raise SpecError(f"dynamics: {name}: unknown parameter for {self._dynamics.spec.robot} (known: {known})")
            try:
                check_multiplier(self._dynamics.spec.parameters[name].kind, float(value))
            except ValueError as exc:
                raise SpecError(f"dynamics: {name}: {exc}") from None
            checked[name] = float(value)
        return checked

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._rng = seeded_rng(seed, _SALT_DYNAMICS, self._rng)
        if seed is not None:
            self._block = None
        if self._sampler is not None:
            current = self._base.copy()
            current[self._sampled] = self._next_sample()
            self._boundary = self._pin_boundary(current)
            self._current = current
            self._apply()
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = obs
        info["dynamics"] = self.get_dynamics()
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self._last_obs is None:
            raise ResetNeeded("Cannot call env.step() before calling env.reset()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        # MuJoCo already checked the state the observation is computed from (count_nonzero is numpy's cheapest test)
        if np.count_nonzero(self._warnings) or not math.isfinite(reward):
            info["sim_unstable"] = True
            obs, reward, terminated, truncated = self._last_obs, 0.0, False, True
        else:
            self._last_obs = obs
        if terminated or truncated:
            info["dynamics"] = self.get_dynamics()  # the episode's dynamics, beside its return
            if self._boundary is not None:
                info["adr_boundary"] = self._boundary
        return obs, reward, terminated, truncated, info

    def _pin_boundary(self, current: np.ndarray) -> list[str] | None:
        # ADR's boundary episodes: with this probability, one parameter sits on one end of its current range
        if self._boundary_probability <= 0 or self._rng.random() >= self._boundary_probability:
            return None
        position, side = divmod(int(self._rng.integers(2 * len(self._sampled))), 2)
        name = self._sampler.names[position]
        current[self._sampled[position]] = self._ranges[name].high if side else self._ranges[name].low
        return [name, "high" if side else "low"]

    def set_boundary_probability(self, probability: float) -> None:
        """Make each episode, with this probability, pin one randomized parameter (chosen uniformly, as is the end)
        to one end of its range; such episodes report ``info["adr_boundary"] = [name, "low"|"high"]`` at their
        end. Used by Automatic Domain Randomization."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"boundary probability must be in [0, 1], got {probability}")
        self._boundary_probability = float(probability)

    def _next_sample(self) -> np.ndarray:
        # draws come in blocks (numpy's per-call cost dominates at this size); a block holds the very numbers
        # that single draws would give, so the sequence for a seed does not depend on the block size
        if self._block is None or self._block_row == len(self._block):
            self._block = self._sampler.sample_block(self._rng, _SAMPLE_BLOCK)
            self._block_row = 0
        row = self._block[self._block_row]
        self._block_row += 1
        return row

    def get_randomization_state(self) -> dict[str, Any]:
        """What decides the next draws, JSON-ready: the generator state and the draws already made but not used."""
        pending = None if self._block is None else self._block[self._block_row :].tolist()
        return {"rng": None if self._rng is None else self._rng.bit_generator.state, "pending": pending}

    def set_randomization_state(self, state: dict[str, Any]) -> None:
        """Continue the draws from a state :meth:`get_randomization_state` returned (used by ``--resume``)."""
        if state.get("rng") is not None:
            self._rng = np.random.default_rng()
            self._rng.bit_generator.state = state["rng"]
        pending = state.get("pending")
        self._block = None if not pending else np.asarray(pending, dtype=np.float64)
        self._block_row = 0

    def get_dynamics(self) -> dict[str, float]:
        """The multipliers in force, name -> multiplier of nominal."""
        return dict(zip(self._names, self._current.tolist(), strict=True))

    def set_dynamics(self, values: Mapping[str, float]) -> None:
        """Set some multipliers now; the others keep their value.

        A randomized env draws new values at its next reset; a fixed env keeps these.

        Raises:
            SpecError: an unknown name or an invalid multiplier.
        """
        checked = self._checked(values)
        index = self._dynamics.index_of(tuple(checked))
        self._current = self._current.copy()
        self._current[index] = list(checked.values())
        if self._sampler is None:
            self._base[index] = list(checked.values())
        self._apply()

    def get_ranges(self) -> dict[str, ParameterRange]:
        """The distributions sampled at each reset (empty for fixed dynamics)."""
        return dict(self._ranges)

    def set_ranges(self, ranges: Mapping[str, ParameterRange]) -> None:
        """Replace the distributions sampled from the next reset on (schedules call this)."""
        unknown = [name for name in ranges if name not in self._dynamics.spec.parameters]
        if unknown:
            raise SpecError(f"ranges: {unknown[0]}: unknown parameter for {self._dynamics.spec.robot}")
        self._ranges = dict(ranges)
        self._sampler = DynamicsSampler(self._ranges) if self._ranges else None
        self._sampled = self._dynamics.index_of(tuple(self._ranges))
        self._block: np.ndarray | None = None
        self._block_row = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        # MuJoCo envs unpickle by construction (EzPickle): write the dynamics into the new model
        self.__dict__.update(state)
        self._model, self._data = self.env.unwrapped.model, self.env.unwrapped.data
        self._warnings = self._data.warning.number
        self._last_obs = None  # a new simulation: it needs a reset
        self._apply()


class ActionDelay(_PartOfTheEnv, gym.Wrapper):
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


class _GaussianNoise(_PartOfTheEnv):
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


class ObservationNoise(_GaussianNoise, gym.ObservationWrapper):
    """Adds Gaussian noise of standard deviation ``std`` (observation units) to every observation entry."""

    _salt, _what = _SALT_OBS_NOISE, "observation"

    def observation(self, observation: np.ndarray) -> np.ndarray:
        noise = self._rng.normal(0.0, self.std, size=observation.shape)
        return (observation + noise).astype(observation.dtype, copy=False)


class ActionNoise(_GaussianNoise, gym.ActionWrapper):
    """Adds Gaussian noise of standard deviation ``std`` (action units) to every action entry, then clips it to the
    action space."""

    _salt, _what = _SALT_ACTION_NOISE, "action"

    def action(self, action: np.ndarray) -> np.ndarray:
        noisy = np.asarray(action, dtype=np.float64) + self._rng.normal(0.0, self.std, size=np.shape(action))
        return np.clip(noisy, self.action_space.low, self.action_space.high).astype(self.action_space.dtype)
