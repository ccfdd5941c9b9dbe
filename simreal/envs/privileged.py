"""Dynamics inputs: the policy's observation extended with the episode's dynamics multipliers (a universal policy,
UP-OSI's "UP"), either the true ones or an estimator's, computed from the last observations and actions; and the
privileged inputs of an asymmetric critic (:class:`PrivilegedInput`), appended last, which only a simulator knows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, SupportsFloat

import gymnasium as gym
import numpy as np

from simreal.envs.coordinates import to_coordinates
from simreal.envs.history import History
from simreal.envs.mujoco_base import box_space


class DynamicsEstimator(Protocol):
    """Maps the last ``history`` observations and actions (:class:`~simreal.envs.history.History`'s layout) to
    estimated log-multipliers of the parameters it was trained for."""

    history: int

    def __call__(self, inputs: np.ndarray) -> np.ndarray: ...

    def save(self, path: Path) -> None:
        """Write the estimator where a policy keeps it (a fine-tuned policy keeps its source's)."""


@dataclass(frozen=True)
class PrivilegedSpec:
    """The privileged inputs of an asymmetric critic: the episode's true log-multipliers of its randomized physical
    parameters and the values of its drawn effects, in the order of ``names``, each standardized with fixed
    statistics of its training range (``(value - mean) / sqrt(variance)``, whether or not the run normalizes its
    observations).

    Only training in simulation reads them (``truth``); everywhere else (evaluation, targets, fine-tuning on a
    target, a robot) zeros stand in for them (the middle of each range) and nothing is read: the actor never looks
    at them, so its actions do not depend on what stands there.

    Attributes:
        names: parameters (as log-multipliers, an offset divided by its scale) and drawn effects (as values).
        mean, variance: the fixed statistics of each, over its training range.
        truth: read the episode's true values (``True``) or append zeros (``False``).
        offsets: the offsets among ``names``, ``(name, scale)`` pairs (:func:`~simreal.envs.coordinates.offset_scales`).
    """

    names: tuple[str, ...]
    mean: tuple[float, ...]
    variance: tuple[float, ...]
    truth: bool = False
    offsets: tuple[tuple[str, float], ...] = ()

    @property
    def size(self) -> int:
        return len(self.names)

    def read(self) -> PrivilegedSpec:
        """The same layout reading the truth: what the training envs get."""
        return replace(self, truth=True)


@dataclass(frozen=True)
class DynamicsInputSpec:
    """What a policy's input holds beyond the robot's observation: the log-multipliers of ``names``, true
    (``estimator`` None) or estimated, and (``history`` > 0, RMA's layout) the last ``history`` raw observations and
    actions after them; and, last of all, an asymmetric critic's ``privileged`` inputs (``None``: none)."""

    names: tuple[str, ...]
    estimator: DynamicsEstimator | None = None
    history: int = 0
    privileged: PrivilegedSpec | None = None
    offsets: tuple[tuple[str, float], ...] = ()

    @property
    def adaptive(self) -> bool:
        """The policy itself sees dynamics (UP-OSI, RMA), not only its critic."""
        return bool(self.names)


class DynamicsInput(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Observations become ``[o(t), z(t)]`` with ``z`` the log-multipliers of ``names`` in force this episode.

    Without an estimator ``z`` is the truth, read from the dynamics wrapper's reset ``info`` (what a universal policy
    trains on). With one, ``z(t)`` is its estimate from the last ``estimator.history`` observations (those this
    wrapper receives, effects included) and actions, zeros before the episode began: what the policy gets on a robot.

    With ``history`` > 0 the last ``history`` observations and actions follow, in
    :class:`~simreal.envs.history.History`'s layout (RMA's adaptation module reads them inside the policy).

    Args:
        env: a simreal env (its reset ``info`` holds ``dynamics``) with flat ``Box`` spaces.
        names: the parameters whose multipliers the policy sees.
        estimator: ``None`` for the true multipliers.
        history: steps of raw history appended (0: none).
        offsets: the offsets among ``names``, name -> scale (:func:`~simreal.envs.coordinates.offset_scales`).
    """

    def __init__(
        self,
        env: gym.Env,
        names: tuple[str, ...] | list[str],
        estimator: DynamicsEstimator | None = None,
        history: int = 0,
        offsets: Mapping[str, float] | None = None,
    ) -> None:
        # the estimator too: gym.make(env.spec) must rebuild the deployed input, never one fed the true dynamics
        gym.utils.RecordConstructorArgs.__init__(
            self, names=list(names), estimator=estimator, history=history, offsets=dict(offsets or {})
        )
        gym.Wrapper.__init__(self, env)
        self.names, self.estimator = tuple(names), estimator
        self._offsets = dict(offsets or {})
        obs_space, act_space = box_space(env.observation_space), box_space(env.action_space)
        obs_dim, act_dim = int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))
        extra = len(self.names) + history * (obs_dim + act_dim)
        bound = np.full(extra, np.inf)
        self.observation_space = gym.spaces.Box(
            np.concatenate([obs_space.low.ravel(), -bound]), np.concatenate([obs_space.high.ravel(), bound]),
            dtype=np.float64,
        )  # fmt: skip
        # the estimator with the history it reads
        self._estimating = (estimator, History(estimator.history, obs_dim, act_dim)) if estimator is not None else None
        self._raw = History(history, obs_dim, act_dim) if history > 0 else None
        self._stacked = np.zeros(0)
        self._z = self._truth = np.zeros(len(self.names))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        dynamics = info.get("dynamics")
        if dynamics is None:
            raise ValueError("DynamicsInput needs a simreal env (no dynamics in the reset info)")
        values = [dynamics[name] for name in self.names]
        info["log_multipliers"] = self._truth = to_coordinates(self.names, values, self._offsets)
        if self._estimating is None:
            self._z = info["log_multipliers"]
        else:
            estimator, history = self._estimating
            self._z = estimator(history.start(obs))
        if self._raw is not None:
            self._stacked = self._raw.start(obs)
        return self._observation(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._estimating is not None:
            estimator, history = self._estimating
            self._z = estimator(history.add(action, obs))
            # what the estimator thinks against the truth, for evaluation (log-multipliers)
            info["dynamics_estimate"] = self._z.copy()
            info["log_multipliers"] = self._truth
        if self._raw is not None:
            self._stacked = self._raw.add(action, obs)
        return self._observation(obs), reward, terminated, truncated, info

    def _observation(self, obs: Any) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float64).ravel(), self._z, self._stacked])


class PrivilegedInput(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Observations become ``[o(t), p]`` with ``p`` an asymmetric critic's privileged inputs
    (:class:`PrivilegedSpec`), standardized: with ``spec.truth`` the episode's true log-multipliers and drawn
    effects, read from the reset ``info`` of the dynamics wrapper; otherwise zeros, and nothing is read (the env
    need not be a simreal env).

    Args:
        env: an env with a flat ``Box`` observation space.
        spec: the privileged inputs' layout.
    """

    def __init__(self, env: gym.Env, spec: PrivilegedSpec) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, names=list(spec.names), truth=spec.truth)
        gym.ObservationWrapper.__init__(self, env)
        self.privileged = spec
        space = box_space(env.observation_space)
        bound = np.full(spec.size, np.inf)
        self.observation_space = gym.spaces.Box(
            np.concatenate([space.low.ravel(), -bound]), np.concatenate([space.high.ravel(), bound]), dtype=np.float64
        )
        self._mean = np.asarray(spec.mean, dtype=np.float64)
        self._std = np.sqrt(np.asarray(spec.variance, dtype=np.float64))
        self._values = np.zeros(spec.size)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.privileged.truth:
            values = privileged_values(self.privileged.names, info, dict(self.privileged.offsets))
            self._values = (values - self._mean) / self._std
        return self.observation(obs), info

    def observation(self, observation: Any) -> np.ndarray:
        return np.concatenate([np.asarray(observation, dtype=np.float64).ravel(), self._values])


def privileged_values(
    names: tuple[str, ...], info: dict[str, Any], offsets: Mapping[str, float] | None = None
) -> np.ndarray:
    """The privileged inputs of an episode from its reset ``info``: log-multipliers of parameters (``offsets``, name
    -> scale: those divided by their scale instead), values of drawn effects.

    Raises:
        ValueError: the info is not a simreal env's, or lacks one of ``names``.
    """
    dynamics, effects = info.get("dynamics"), info.get("effects") or {}
    if dynamics is None:
        raise ValueError("PrivilegedInput needs a simreal env (no dynamics in the reset info)")
    values = []
    for name in names:
        if name in effects:
            values.append(float(effects[name]))
        elif name in dynamics:
            values.append(float(to_coordinates([name], [dynamics[name]], offsets or {})[0]))
        else:
            raise ValueError(f"PrivilegedInput: {name!r} is neither a parameter nor a drawn effect of this env")
    return np.asarray(values, dtype=np.float64)
