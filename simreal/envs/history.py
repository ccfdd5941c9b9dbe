"""History inputs: the policy sees its last observations and actions, so that it can infer the dynamics it is in
and make up for latency (the input of adaptive policies)."""

from __future__ import annotations

from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np


class History:
    """The last ``k`` observations and the ``k`` actions sent before the latest one, flattened:
    ``[o(t-k+1), ..., o(t), a(t-k), ..., a(t-1)]``, zeros where the episode had not begun.

    Kept apart from the wrapper so that code stepping an env itself (data collection) feeds a policy the same input.
    """

    def __init__(self, k: int, obs_dim: int, act_dim: int) -> None:
        if k < 1:
            raise ValueError(f"history length must be >= 1, got {k}")
        self.k, self.obs_dim, self.act_dim = int(k), int(obs_dim), int(act_dim)
        self._observations: deque[np.ndarray] = deque(maxlen=k)
        self._actions: deque[np.ndarray] = deque(maxlen=k)

    def start(self, obs: Any) -> np.ndarray:
        """A new episode whose first observation is ``obs``; returns the input."""
        self._observations.extend([np.zeros(self.obs_dim)] * self.k)
        self._actions.extend([np.zeros(self.act_dim)] * self.k)
        self._observations.append(np.asarray(obs, dtype=np.float64).ravel())
        return self.stacked()

    def add(self, action: Any, obs: Any) -> np.ndarray:
        """``action`` was sent and ``obs`` came back; returns the input."""
        self._actions.append(np.asarray(action, dtype=np.float64).ravel())
        self._observations.append(np.asarray(obs, dtype=np.float64).ravel())
        return self.stacked()

    def stacked(self) -> np.ndarray:
        """The input now."""
        return np.concatenate([*self._observations, *self._actions])


class HistoryObservation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Observations become ``[o(t-k+1), ..., o(t), a(t-k), ..., a(t-1)]``: the last ``k`` observations and the ``k``
    actions sent before the current observation, flattened, zeros where the episode had not begun.

    Example::

        >>> import simreal
        >>> env = HistoryObservation(simreal.make("hopper"), 3)
        >>> env.observation_space.shape  # 3 x 11 observations + 3 x 3 actions
        (42,)

    Args:
        env: an env with flat ``Box`` observation and action spaces.
        k: how many steps of history (>= 1; 1 is the current observation and the last action).
    """

    def __init__(self, env: gym.Env, k: int) -> None:
        # recorded, so that env.spec holds this wrapper and gym.make(env.spec) rebuilds it
        gym.utils.RecordConstructorArgs.__init__(self, k=k)
        gym.Wrapper.__init__(self, env)
        obs_space, act_space = env.observation_space, env.action_space
        if not (isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Box)):
            raise ValueError("history inputs need Box observation and action spaces")
        self.k = int(k)
        self._history = History(k, int(np.prod(obs_space.shape)), int(np.prod(act_space.shape)))
        # the zeros padding an episode's start must lie inside the space
        low = np.concatenate([np.tile(obs_space.low.ravel(), k), np.tile(np.minimum(act_space.low, 0).ravel(), k)])
        high = np.concatenate([np.tile(obs_space.high.ravel(), k), np.tile(np.maximum(act_space.high, 0).ravel(), k)])
        self.observation_space = gym.spaces.Box(low, high, dtype=np.float64)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._history.start(obs), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._history.add(action, obs), reward, terminated, truncated, info
