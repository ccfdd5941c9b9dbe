"""The episode in progress, kept so that a resumed training stands exactly where the interrupted one stood.

A checkpoint falls between two rollouts, usually in the middle of every env's episode. Rather than snapshot every
piece of state (MuJoCo's, each effect's queue, the histories, the time limit), :class:`EpisodeReplay` keeps how the
episode began (the random streams before its reset, the reset's seed, what it drew and the streams after it) and
every action since: replayed into a fresh env of the same stack, they lead to the same state, bit for bit, because
MuJoCo and every simreal wrapper are deterministic given their streams. The draw is kept because a schedule may
have moved the ranges since the episode began.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from simreal.envs.streams import PartOfTheEnv

#: An episode longer than this (a robot without a time limit) is not kept: a resume starts it afresh instead.
MAX_KEPT_STEPS = 100_000


class EpisodeReplay(PartOfTheEnv, gym.Wrapper):
    """Keeps the episode in progress as its start (streams, seed) and its actions, and replays such a record.

    Args:
        env: a simreal env (its streams are read and set through ``get_stream_state``/``set_stream_state``).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._start: dict[str, Any] | None = None
        self._actions: list[np.ndarray] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        streams = self.env.get_wrapper_attr("get_stream_state")
        before = streams()
        obs, info = self.env.reset(seed=seed, options=options)
        self._start = {
            "streams": before,
            "seed": seed,
            "options": options,
            # what the reset drew, and the streams after it: the replay uses both, so that it needs neither the
            # ranges in force when the episode began (a curriculum has moved them since) nor the draws they made
            "draw": self.env.get_wrapper_attr("episode_draw")(),
            "streams_after_reset": streams(),
        }
        self._actions = []
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        if self._start is not None:
            self._actions.append(np.array(action, copy=True))
            if len(self._actions) > MAX_KEPT_STEPS:
                self._start, self._actions = None, []
        return self.env.step(action)

    def episode_log(self) -> dict[str, Any] | None:
        """The episode in progress, JSON-ready: ``streams`` and ``seed`` of its reset, and its ``actions`` (with
        their ``dtype``); ``None`` when there is none to keep."""
        if self._start is None:
            return None
        dtype = self._actions[0].dtype.str if self._actions else np.dtype(np.float32).str
        return {**self._start, "dtype": dtype, "actions": [a.tolist() for a in self._actions]}

    def replay_episode(self, log: dict[str, Any]) -> tuple[Any, list[float]]:
        """Begin the episode ``log`` records and take its actions again.

        Returns:
            The last observation and the rewards of the replayed steps (the env now stands where the recorded one
            did, its streams included).
        """
        restore = self.env.get_wrapper_attr("set_stream_state")
        restore(log["streams"])
        self.env.get_wrapper_attr("force_next_draw")(log["draw"])
        obs, _ = self.reset(seed=log["seed"], options=log["options"])
        restore(log["streams_after_reset"])
        rewards = []
        for action in log["actions"]:
            obs, reward, _, _, _ = self.step(np.asarray(action, dtype=np.dtype(log["dtype"])))
            rewards.append(float(reward))
        return obs, rewards
