"""Record trajectories from a policy (or random actions) on a simulated robot: the input of system identification."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from simreal.envs.factory import get_dynamics, make_env
from simreal.envs.mujoco_base import box_space
from simreal.envs.robots import load_robot, load_target
from simreal.envs.spec import RobotSpec
from simreal.errors import DataError
from simreal.fileio import check_writable
from simreal.runs.config import check_seed
from simreal.sysid.trajectories import Trajectories, refuse_existing, save_trajectories


def collect(
    policy: str | os.PathLike[str],
    robot: str | RobotSpec,
    target: str | os.PathLike[str] | None = None,
    episodes: int = 10,
    seed: int = 0,
    deterministic: bool = True,
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    trust_pickles: bool = False,
) -> Trajectories:
    """Run ``episodes`` episodes and record every step, with the full MuJoCo state.

    Args:
        policy: a run directory, a model file inside one, or ``"random"`` (uniform random actions).
        robot: the robot to run on (a name, a robot file, an inline mapping, or its spec).
        target: a target name or file (default: nominal dynamics).
        episodes: episodes to record (episode ``i`` is reset with seed ``seed + i``).
        seed: the first episode's seed, and the random policy's.
        deterministic: the trained policy's mean action rather than a sampled one.
        out: also write the recording there (``.npz`` or ``.csv``, atomically; ``None``: not written).
        overwrite: replace ``out`` if it exists (a recording can be hours of work: by default it is refused, before
            anything runs).
        trust_pickles: let a run holding stable-baselines3's pickles only load (:data:`~simreal.errors.TRUST_PICKLES`).

    Returns:
        The recording; its ``meta`` names the robot, source, policy and, for a target, its true multipliers and
        effects.

    Raises:
        DataError: a policy trained on another robot, or a missing or corrupt policy; ``out`` exists without
            ``overwrite``, or is not ``.npz`` or ``.csv``.
        StorageError: ``out`` cannot be written.
        ConfigError: a seed out of range.
        SpecError: an unknown robot or target.
    """
    check_seed(seed)
    if out is not None:  # before the episodes are spent
        if Path(out).suffix not in (".npz", ".csv"):
            raise DataError(f"{out}: unknown data format (use .npz or .csv)")
        if not overwrite:
            refuse_existing(out)
        check_writable(out)
    spec = robot if isinstance(robot, RobotSpec) else load_robot(robot)
    meta: dict[str, Any] = {"robot": spec.robot, "source": "simulator", "policy": str(policy), "seed": seed}
    if target is not None:
        name, target_spec = load_target(spec, target)
        env = make_env(spec, fixed=target_spec.parameters, effects=target_spec.effects)
        meta["target"] = {"name": name, **target_spec.model_dump(exclude={"base", "description"})}
    else:
        env = make_env(spec)
    meta["dynamics"] = get_dynamics(env)
    try:
        act = _policy(policy, spec.robot, env, seed, deterministic, trust_pickles=trust_pickles)
        data = record(env, act, episodes, seed, meta)
    finally:
        env.close()
    if out is not None:
        save_trajectories(data, out)
    return data


Policy = Callable[[np.ndarray, bool], np.ndarray]


def record(env: gym.Env, act: Policy, episodes: int, seed: int, meta: dict[str, Any]) -> Trajectories:
    """Run ``episodes`` episodes of ``act(obs, first)`` on any gymnasium-API env and record every step: what system
    identification and fine-tuning read. Episode ``i`` is reset with seed ``seed + i``; the full MuJoCo state is
    kept when the env is a MuJoCo env (``env.unwrapped.data``).

    Args:
        env: the env (not closed here).
        act: the action for an observation (``first``: the episode's first).
        episodes: how many.
        seed: the first episode's seed.
        meta: the recording's ``meta``.
    """
    mj_data = getattr(env.unwrapped, "data", None)  # a MuJoCo env's state, recorded with each step
    state = mj_data if hasattr(mj_data, "qpos") and hasattr(mj_data, "qvel") else None
    rows: dict[str, list[Any]] = {
        k: [] for k in ("episode", "step", "obs", "act", "rew", "term", "trunc", "qpos", "qvel")
    }
    for index in range(episodes):
        obs, _ = env.reset(seed=seed + index)
        done, step = False, 0
        while not done:
            action = act(obs, step == 0)
            if state is not None:
                rows["qpos"].append(state.qpos.copy())
                rows["qvel"].append(state.qvel.copy())
            rows["obs"].append(np.asarray(obs, dtype=np.float64))
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in (
                ("episode", index),
                ("step", step),
                ("act", np.asarray(action, dtype=np.float64)),
                ("rew", reward),
                ("term", terminated),
                ("trunc", truncated),
            ):
                rows[key].append(value)
            obs, step, done = next_obs, step + 1, terminated or truncated
    return Trajectories(
        episode=np.array(rows["episode"], dtype=np.int64),
        step=np.array(rows["step"], dtype=np.int64),
        observations=np.array(rows["obs"]),
        actions=np.array(rows["act"]),
        rewards=np.array(rows["rew"], dtype=np.float64),
        terminated=np.array(rows["term"], dtype=bool),
        truncated=np.array(rows["trunc"], dtype=bool),
        qpos=np.array(rows["qpos"]) if state is not None else None,
        qvel=np.array(rows["qvel"]) if state is not None else None,
        meta=meta,
    )


def _policy(
    policy: str | os.PathLike[str], robot: str, env: gym.Env, seed: int, deterministic: bool, *, trust_pickles: bool
) -> Policy:
    if str(policy) == "random":
        rng = np.random.default_rng(seed)
        space = box_space(env.action_space)
        return lambda obs, first: rng.uniform(space.low, space.high).astype(space.dtype)
    # only a trained policy needs stable-baselines3 (the train extra): random actions do not
    from simreal.runs.policy import load_policy

    loaded = load_policy(policy, trust_pickles=trust_pickles)
    if loaded.robot != robot:
        raise DataError(f"{policy}: the policy was trained on {loaded.robot}, not {robot}")
    runner = loaded.runner(deterministic=deterministic)
    # the policy's input is built from the recorded observations: the recording keeps the robot's own
    return lambda obs, first: runner.reset(obs, {"dynamics": get_dynamics(env)}) if first else runner.step(obs)
