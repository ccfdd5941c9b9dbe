"""Dynamics inputs: the policy's observation extended with the episode's dynamics multipliers (a universal policy,
UP-OSI's "UP"), either the true ones or an estimator's, computed from the last observations and actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from simreal.envs.history import History


class DynamicsEstimator(Protocol):
    """Maps the last ``history`` observations and actions (:class:`~simreal.envs.history.History`'s layout) to
    estimated log-multipliers of the parameters it was trained for."""

    history: int

    def __call__(self, inputs: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class DynamicsInputSpec:
    """What a policy's dynamics input holds: the log-multipliers of ``names``, true (``estimator`` None) or
    estimated, and (``history`` > 0, RMA's layout) the last ``history`` raw observations and actions after them."""

    names: tuple[str, ...]
    estimator: DynamicsEstimator | None = None
    history: int = 0


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
    """

    def __init__(
        self,
        env: gym.Env,
        names: tuple[str, ...] | list[str],
        estimator: DynamicsEstimator | None = None,
        history: int = 0,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, names=list(names), history=history)
        gym.Wrapper.__init__(self, env)
        self.names, self.estimator = tuple(names), estimator
        obs_space, act_space = env.observation_space, env.action_space
        obs_dim, act_dim = int(np.prod(obs_space.shape)), int(np.prod(act_space.shape))
        extra = len(self.names) + history * (obs_dim + act_dim)
        bound = np.full(extra, np.inf)
        self.observation_space = gym.spaces.Box(
            np.concatenate([obs_space.low.ravel(), -bound]), np.concatenate([obs_space.high.ravel(), bound]),
            dtype=np.float64,
        )  # fmt: skip
        self._history = History(estimator.history, obs_dim, act_dim) if estimator is not None else None
        self._raw = History(history, obs_dim, act_dim) if history > 0 else None
        self._stacked = np.zeros(0)
        self._z = self._truth = np.zeros(len(self.names))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        dynamics = info.get("dynamics")
        if dynamics is None:
            raise ValueError("DynamicsInput needs a simreal env (no dynamics in the reset info)")
        info["log_multipliers"] = self._truth = np.log([dynamics[name] for name in self.names])
        if self._history is None:
            self._z = info["log_multipliers"]
        else:
            self._z = self.estimator(self._history.start(obs))
        if self._raw is not None:
            self._stacked = self._raw.start(obs)
        return self._observation(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._history is not None:
            self._z = self.estimator(self._history.add(action, obs))
            # what the estimator thinks against the truth, for evaluation (log-multipliers)
            info["dynamics_estimate"] = self._z.copy()
            info["log_multipliers"] = self._truth
        if self._raw is not None:
            self._stacked = self._raw.add(action, obs)
        return self._observation(obs), reward, terminated, truncated, info

    @property
    def estimate(self) -> np.ndarray:
        """The log-multipliers the policy was last given."""
        return self._z.copy()

    def _observation(self, obs: Any) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float64).ravel(), self._z, self._stacked])
