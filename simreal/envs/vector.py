"""stable-baselines3 VecEnvs of simreal envs: a picklable env factory, vectorized envs, and normalization kept in
step between training and evaluation. Nothing here reads a config: callers pass resolved pieces."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from simreal.envs.factory import make_env
from simreal.envs.privileged import DynamicsInputSpec
from simreal.envs.replay import EpisodeReplay
from simreal.envs.spec import Effects, ParameterRange, RobotSpec


class EnvFactory:
    """:func:`simreal.envs.factory.make_env` with fixed arguments, as a picklable callable (SubprocVecEnv sends it
    to its workers).

    Args:
        spec: the robot.
        ranges: distributions drawn at every reset (empty or ``None``: fixed dynamics).
        fixed: multipliers of the parameters not drawn (a target's).
        effects: unmodeled effects.
        history: steps of history in the observation (0: none).
        dynamics_input: the episode's log-multipliers in the observation, true or estimated (``None``: not).
    """

    def __init__(
        self,
        spec: RobotSpec,
        ranges: Mapping[str, ParameterRange] | None = None,
        fixed: Mapping[str, float] | None = None,
        effects: Effects | None = None,
        history: int = 0,
        dynamics_input: DynamicsInputSpec | None = None,
    ) -> None:
        self.spec, self.ranges, self.fixed, self.effects = spec, dict(ranges or {}), dict(fixed or {}), effects
        self.history, self.dynamics_input = history, dynamics_input

    def __call__(self) -> gym.Env:
        if multiprocessing.parent_process() is not None and threading.current_thread() is threading.main_thread():
            # a SubprocVecEnv worker: Ctrl-C reaches the whole process group, and the trainer, not each worker,
            # decides what an interrupt does (a worker that died on it could not hand over its streams to save)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        env = make_env(
            self.spec, self.ranges, self.fixed, self.effects, history=self.history, dynamics_input=self.dynamics_input
        )
        return EpisodeReplay(env)  # a checkpoint keeps the episode in progress (see simreal.envs.replay)


def vectorize(factory: Callable[[], gym.Env], n_envs: int, seed: int, subprocesses: bool = False) -> VecEnv:
    """``n_envs`` envs from ``factory``, env ``i`` seeded with ``seed + i`` at its first reset, each in a Monitor
    (which records the raw episode returns), in this process or in subprocesses."""
    vec_env_cls = SubprocVecEnv if subprocesses else DummyVecEnv
    return make_vec_env(factory, n_envs=n_envs, seed=seed, vec_env_cls=vec_env_cls)


class PinnedVecNormalize(VecNormalize):
    """VecNormalize whose statistics of some observation entries are fixed instead of running.

    A policy's dynamics input (the episode's log-multipliers) is constant within an episode and, under a curriculum,
    exactly 0 at first: its running variance would shrink to ~0 and the normalized input blow up (to the clip) as
    the ranges widen, which wrecks the policy mid-training. Those entries are normalized with the mean and variance
    of the full training distribution instead, set once.

    Args:
        venv: the env to wrap.
        pinned: observation index -> (mean, variance).
        **kwargs: VecNormalize's.
    """

    def __init__(self, venv: VecEnv, pinned: Mapping[int, tuple[float, float]], **kwargs: Any) -> None:
        super().__init__(venv, **kwargs)
        self.pinned = {int(index): (float(mean), float(var)) for index, (mean, var) in pinned.items()}
        self._pin(self.obs_rms)

    def _pin(self, obs_rms: Any) -> None:
        for index, (mean, var) in self.pinned.items():
            obs_rms.mean[index], obs_rms.var[index] = mean, var

    def _normalize_obs(self, obs: np.ndarray, obs_rms: Any) -> np.ndarray:
        self._pin(obs_rms)  # after every running update, before every use (and so in every saved copy)
        return super()._normalize_obs(obs, obs_rms)


def normalize(
    venv: VecEnv,
    observations: bool,
    rewards: bool,
    clip_obs: float,
    clip_reward: float,
    gamma: float,
    pinned: Mapping[int, tuple[float, float]] | None = None,
) -> VecEnv:
    """Wrap ``venv`` in VecNormalize when anything is normalized (``gamma`` discounts the reward statistics;
    ``pinned``: observation entries with fixed statistics, see :class:`PinnedVecNormalize`)."""
    if not (observations or rewards):
        return venv
    kwargs: dict[str, Any] = {
        "norm_obs": observations,
        "norm_reward": rewards,
        "clip_obs": clip_obs,
        "clip_reward": clip_reward,
    }
    if pinned and observations:
        return PinnedVecNormalize(venv, pinned, gamma=gamma, **kwargs)
    return VecNormalize(venv, gamma=gamma, **kwargs)


def normalized_like(venv: VecEnv, statistics: VecNormalize | None) -> VecEnv:
    """Wrap an eval env with frozen copies of the training normalization (observations only: returns are raw)."""
    if statistics is None:
        return venv
    frozen = VecNormalize(
        venv, training=False, norm_obs=statistics.norm_obs, norm_reward=False, clip_obs=statistics.clip_obs
    )
    frozen.obs_rms = statistics.obs_rms.copy()
    return frozen
