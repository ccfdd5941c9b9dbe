"""The simulated physics as a gymnasium wrapper: dynamics drawn at every reset, guarded against unstable
simulation."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.error import ResetNeeded

from simreal.compat import env_rng, set_env_rng
from simreal.envs.dynamics import DynamicsModel, DynamicsSampler
from simreal.envs.mujoco_base import mujoco_env
from simreal.envs.ranges import check_parameter
from simreal.envs.spec import EFFECT_NAMES, ParameterRange, check_multiplier
from simreal.envs.streams import SALT_DYNAMICS, StreamOwner, generator_from, generator_state, seeded_rng
from simreal.errors import SpecError

#: Draws are made this many episodes at a time (numpy's per-call cost dominates at this size).
SAMPLE_BLOCK = 64


class RandomizedDynamics(StreamOwner, gym.Wrapper):
    """Owns the simulated physics: draws the robot's physical parameters at every reset, writes them into the
    MuJoCo model, and ends episodes whose simulation became unstable.

    With no ranges the dynamics stay fixed at ``fixed`` (a target). The multipliers in force are returned by
    :meth:`get_dynamics`, in the ``info`` of ``reset`` and in the ``info`` of an episode's last step, under
    ``"dynamics"``, beside whatever the sampler reports for the episode (see
    :meth:`~simreal.envs.dynamics.DynamicsSampler.episode`).

    Ranges may also name unmodeled effects (:data:`~simreal.envs.spec.EFFECT_NAMES`): they are drawn from the same
    stream, in the same draw, and handed to the effect wrappers outside this one in the ``info`` of ``reset`` under
    ``"effects"`` (also reported in the episode's last ``info``).

    Unstable means a MuJoCo warning was raised since the last reset (at every step MuJoCo checks positions,
    velocities and accelerations for NaN, inf or values above 1e10, resets its state and warns), or the reward is not
    finite. The step then returns the last good observation, reward 0, ``truncated=True`` and
    ``info["sim_unstable"] = True``: it never crashes and never returns NaN. (The guard lives here rather than in a
    wrapper of its own because a wrapper layer costs about 0.3% of Hopper's step time: see BENCHMARKS.md.)

    Args:
        env: a gymnasium MuJoCo env (any wrappers around it).
        dynamics: the robot's catalogue bound to the env's model.
        ranges: name -> distribution of the parameters to randomize; ``None`` or empty for fixed dynamics.
        fixed: values of the parameters that are not randomized (omitted ones are neutral: 1.0, an offset 0.0).
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
        self._model, self._data = mujoco_env(env).model, mujoco_env(env).data
        self._warnings = self._data.warning.number  # a view on MjData's counts, which reset clears
        self._last_obs: Any = None
        # values in catalogue order: what stays when nothing is sampled, and what is in force now
        self._base = dynamics.neutral.copy()
        fixed_values = self._checked(fixed or {})
        self._base[dynamics.index_of(tuple(fixed_values))] = list(fixed_values.values())
        self._current = self._base.copy()
        self._episode_info: dict[str, Any] = {}
        self._effects: dict[str, float] = {}  # the effects drawn for this episode, by name
        self._rng: np.random.Generator | None = None
        # a block of uniform numbers, the next row to use and the block as multipliers (see _next_draw)
        self._block: np.ndarray | None = None
        self._block_row = 0
        self._values = np.zeros((0, 0))
        self._forced: dict[str, Any] | None = None
        self._env_spec: EnvSpec | None = None
        self.set_sampler(DynamicsSampler(ranges) if ranges else None)
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
            check_parameter(self._dynamics.spec, name, f"dynamics.{name}")
            try:
                check_multiplier(self._dynamics.spec.parameters[name].kind, float(value))
            except ValueError as exc:
                raise SpecError(f"dynamics.{name}: {exc}") from None
            checked[name] = float(value)
        return checked

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._rng = seeded_rng(seed, SALT_DYNAMICS, self._rng)
        if seed is not None:
            self._block = None
        if self._sampler is not None:
            current = self._base.copy()
            row, self._episode_info = self._sampler.episode(self._next_draw(self._sampler, self._rng), self._rng)
            current[self._sampled] = row[self._physics_columns]
            ranges = self._sampler.ranges
            self._effects = {
                name: int(value) if ranges[name].distribution == "integer" else float(value)
                for name, value in zip(self._effect_names, row[self._effect_columns].tolist(), strict=True)
            }
            self._current = current
            self._apply()
        if self._forced is not None:
            forced, self._forced = self._forced, None
            self._current = np.asarray(forced["multipliers"], dtype=np.float64)
            self._effects, self._episode_info = dict(forced["effects"]), dict(forced["info"])
            # a sampler other than the episode's may have drawn more or fewer numbers: continue where it did
            self._rng = generator_from(forced["rng_after"], self._rng)
            self._apply()
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs = obs
        info["dynamics"] = self.get_dynamics()
        if self._effects:
            info["effects"] = dict(self._effects)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
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
            if self._effects:
                info["effects"] = dict(self._effects)
            info.update(self._episode_info)
        return obs, reward, terminated, truncated, info

    def episode_draw(self) -> dict[str, Any]:
        """What this episode's reset drew, JSON-ready: the multipliers in force, the drawn effects, what the episode
        reports beside its return, and where the dynamics stream stood after it (see :meth:`force_next_draw`)."""
        return {
            "multipliers": self._current.tolist(),
            "effects": dict(self._effects),
            "info": dict(self._episode_info),
            "rng_after": generator_state(self._rng),
        }

    def force_next_draw(self, draw: dict[str, Any]) -> None:
        """Make the next reset use ``draw`` (:meth:`episode_draw`'s) instead of what it draws: replaying an episode
        begun under ranges a schedule has changed since (:mod:`simreal.envs.replay`)."""
        self._forced = dict(draw)

    def _next_draw(self, sampler: DynamicsSampler, rng: np.random.Generator) -> np.ndarray:
        # uniform numbers come in blocks (numpy's per-call cost dominates at this size), turned into multipliers a
        # block at a time and again whenever the sampler changes: the sequence for a seed depends neither on the
        # block size nor on when a schedule changes the ranges
        if self._block is None or self._block_row == len(self._block):
            block = rng.random((SAMPLE_BLOCK, len(sampler.names)))
            self._block, self._block_row, self._values = block, 0, sampler.transform(block)
        row = self._values[self._block_row]
        self._block_row += 1
        return row

    def own_streams(self) -> dict[str, Any]:
        # the env's own initial-state noise is part of the physics' streams
        inner = env_rng(self.env)
        return {
            "dynamics": generator_state(self._rng),
            "dynamics_pending": None if self._block is None else self._block[self._block_row :].tolist(),
            "initial_state": generator_state(inner),
        }

    def restore_own_streams(self, state: dict[str, Any]) -> None:
        self._rng = generator_from(state.get("dynamics"), self._rng)
        pending = state.get("dynamics_pending")
        self._block = None if not pending else np.asarray(pending, dtype=np.float64)
        self._block_row = 0
        if self._block is not None and self._sampler is not None:
            self._values = self._sampler.transform(self._block)
        set_env_rng(self.env, generator_from(state.get("initial_state"), env_rng(self.env)))

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

    def set_ranges(self, ranges: Mapping[str, ParameterRange]) -> None:
        """Draw from these distributions from the next reset on (empty: fixed dynamics)."""
        self.set_sampler(DynamicsSampler(ranges) if ranges else None)

    def set_sampler(self, sampler: DynamicsSampler | None) -> None:
        """Draw each episode's dynamics (and effects, where it names some) with ``sampler`` from the next reset on
        (``None``: fixed dynamics). Schedules push theirs through this (through ``env_method`` for a VecEnv)."""
        names = () if sampler is None else sampler.names
        physics = tuple(name for name in names if name not in EFFECT_NAMES)
        for name in physics:
            check_parameter(self._dynamics.spec, name, f"ranges.{name}")
        previous = getattr(self, "_sampler", None)
        self._sampler = sampler
        self._sampled = self._dynamics.index_of(physics)
        self._physics_columns = np.array([i for i, name in enumerate(names) if name not in EFFECT_NAMES], dtype=np.intp)
        self._effect_columns = np.array([i for i, name in enumerate(names) if name in EFFECT_NAMES], dtype=np.intp)
        self._effect_names = tuple(names[i] for i in self._effect_columns)
        if previous is None or sampler is None or previous.names != sampler.names:
            # the pending uniform numbers fit the parameters drawn: a new set of parameters starts a new block
            self._block, self._block_row = None, 0
        elif self._block is not None:
            self._values = sampler.transform(self._block)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # MuJoCo envs unpickle by construction (EzPickle): write the dynamics into the new model
        self.__dict__.update(state)
        self._model, self._data = mujoco_env(self.env).model, mujoco_env(self.env).data
        self._warnings = self._data.warning.number
        self._last_obs = None  # a new simulation: it needs a reset
        self._apply()
