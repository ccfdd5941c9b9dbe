"""The episode in progress, kept so that a resumed training stands exactly where the interrupted one stood.

A checkpoint falls between two rollouts, usually in the middle of every env's episode. Rather than snapshot every
piece of state (MuJoCo's, each effect's queue, the histories, the time limit), :class:`EpisodeReplay` keeps how the
episode began (the random streams before its reset, the reset's seed and what it drew) and every action since:
replayed into a fresh env of the same stack, they lead to the same state, bit for bit, because MuJoCo and every
simreal wrapper are deterministic given their streams. The draw is kept because a schedule may have moved the ranges
since the episode began.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from simreal.envs.mujoco_base import box_space
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
        self._stream_state = env.get_wrapper_attr("get_stream_state")
        self._episode_draw = env.get_wrapper_attr("episode_draw")
        self._start: dict[str, Any] | None = None
        # the actions so far, in a buffer that doubles when full (cheaper per step than a list of copies)
        space = box_space(env.action_space)
        self._actions = np.empty((64, *space.shape), dtype=space.dtype)
        self._count = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        before = self._stream_state()
        obs, info = self.env.reset(seed=seed, options=options)
        # what the reset drew: the replay uses it, so that it does not depend on the ranges in force when the
        # episode began (a curriculum has moved them since)
        self._start = {"streams": before, "seed": seed, "options": options, "draw": self._episode_draw()}
        self._count = 0
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._start is not None:
            if self._count == len(self._actions):
                if self._count >= MAX_KEPT_STEPS:
                    self._start = None
                else:
                    self._actions = np.concatenate([self._actions, np.empty_like(self._actions)])
            if self._start is not None:
                if getattr(action, "dtype", None) != self._actions.dtype:  # kept exactly, whatever its type
                    wider = np.result_type(self._actions.dtype, np.asarray(action).dtype)
                    if wider != self._actions.dtype:
                        self._actions = self._actions.astype(wider)
                self._actions[self._count] = action
                self._count += 1
        return self.env.step(action)

    def episode_log(self) -> dict[str, Any] | None:
        """The episode in progress, JSON-ready: ``streams``, ``seed`` and ``draw`` of its reset, and its ``actions``
        (with their ``dtype``, the action space's); ``None`` when there is none to keep."""
        if self._start is None:
            return None
        actions = self._actions[: self._count]
        return {**self._start, "dtype": actions.dtype.str, "actions": actions.tolist()}

    def replay_episode(self, log: dict[str, Any]) -> tuple[Any, list[float]]:
        """Begin the episode ``log`` records and take its actions again.

        Returns:
            The last observation and the rewards of the replayed steps (the env now stands where the recorded one
            did, its streams included).
        """
        self.env.get_wrapper_attr("set_stream_state")(log["streams"])
        self.env.get_wrapper_attr("force_next_draw")(log["draw"])
        obs, _ = self.reset(seed=log["seed"], options=log["options"])
        rewards = []
        for action in log["actions"]:
            obs, reward, _, _, _ = self.step(np.asarray(action, dtype=np.dtype(log["dtype"])))
            rewards.append(float(reward))
        return obs, rewards
