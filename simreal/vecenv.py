"""Vectorized envs for training and evaluation, with VecNormalize statistics kept in step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from simreal.config import TrainConfig, range_overrides
from simreal.factory import make
from simreal.spec import ParameterRange, load_robot, resolve_ranges


def training_ranges(config: TrainConfig) -> dict[str, ParameterRange]:
    """The full training ranges of a config (empty when randomization is off)."""
    if not config.randomization.enabled:
        return {}
    spec = load_robot(config.robot)
    return resolve_ranges(spec, config.randomization.parameters, range_overrides(config) or None)


def env_factory(config: TrainConfig) -> Callable[[], gym.Env]:
    """A picklable factory of one training env (randomized as the config says, or nominal)."""
    randomization = config.randomization
    kwargs: dict[str, Any] = {"effects": randomization.effects.model_dump()}
    if randomization.enabled:
        kwargs.update(parameters=randomization.parameters, ranges=range_overrides(config) or None)
    else:
        kwargs["nominal"] = True
    return EnvFactory(config.robot, kwargs)


class EnvFactory:
    """``simreal.make(robot, **kwargs)`` as a picklable callable (SubprocVecEnv sends it to its workers)."""

    def __init__(self, robot: str, kwargs: dict[str, Any]) -> None:
        self.robot, self.kwargs = robot, kwargs

    def __call__(self) -> gym.Env:
        return make(self.robot, **self.kwargs)


def make_training_env(config: TrainConfig, seed: int) -> VecEnv:
    """The training VecEnv: ``n_envs`` copies (env ``i`` seeded with ``seed + i``), each in a Monitor, optionally in
    subprocesses, wrapped in VecNormalize when the config normalizes."""
    vec_env_cls = SubprocVecEnv if config.env.vec_env == "subproc" else DummyVecEnv
    venv = make_vec_env(env_factory(config), n_envs=config.env.n_envs, seed=seed, vec_env_cls=vec_env_cls)
    normalize = config.env.normalize
    if normalize.observations or normalize.rewards:
        venv = VecNormalize(
            venv,
            norm_obs=normalize.observations,
            norm_reward=normalize.rewards,
            clip_obs=normalize.clip_obs,
            clip_reward=normalize.clip_reward,
            gamma=config.algorithm.hyperparameters.gamma,
        )
    return venv


def make_eval_env(factory: Callable[[], gym.Env], seed: int, n_envs: int = 1) -> VecEnv:
    """A VecEnv for evaluation, env ``i`` seeded with ``seed + i``, each in a Monitor (which records the raw episode
    returns). One env per episode lets the policy act on all of them in one batch."""
    return make_vec_env(factory, n_envs=n_envs, seed=seed, vec_env_cls=DummyVecEnv)


def normalized_like(venv: VecEnv, statistics: VecNormalize | None) -> VecEnv:
    """Wrap an eval env with frozen copies of the training normalization (observations only: returns are raw)."""
    if statistics is None:
        return venv
    frozen = VecNormalize(
        venv, training=False, norm_obs=statistics.norm_obs, norm_reward=False, clip_obs=statistics.clip_obs
    )
    frozen.obs_rms = statistics.obs_rms.copy()
    return frozen
