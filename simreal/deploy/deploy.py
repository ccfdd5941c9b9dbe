"""Drive an env with an exported policy, as a robot's adapter would, and record the episodes in the format
``simreal sysid`` and ``simreal finetune`` read: the first step of the loop deploy -> record -> identify ->
fine-tune.

The env is anything with gymnasium's API: a simreal target or nominal dynamics of the export's robot (standing in
for the real one), any registered gymnasium id, or an env object a user wrote for their robot."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from simreal.deploy.export import ExportedPolicy
from simreal.deploy.manifest import check_env, robot_reference
from simreal.envs.factory import get_dynamics, make_env
from simreal.envs.robots import load_robot, load_target
from simreal.errors import DataError, SpecError
from simreal.sysid.collect import record
from simreal.sysid.trajectories import Trajectories, save_trajectories


@dataclass
class Deployment:
    """What :func:`deploy` ran: the recording (also written, when asked) and each episode's return."""

    recording: Trajectories
    returns: list[float]
    path: Path | None


def deploy(
    export: str | os.PathLike[str],
    env: str | gym.Env,
    episodes: int = 1,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Deployment:
    """Run ``episodes`` episodes of an exported policy on ``env`` and record them.

    Args:
        export: the folder ``simreal export`` wrote.
        env: a target name or YAML of the export's robot, ``"nominal"``, a registered gymnasium id, or an env.
        episodes: how many (episode ``i`` reset with seed ``seed + i``).
        seed: the first episode's seed.
        out: write the recording there (``.npz`` or ``.csv``, atomically; ``None``: not written).
        overwrite: replace ``out`` if it exists (a real robot's recording can be hours of work: by default it is
            refused before anything runs).

    Raises:
        DataError: an invalid export, an env that does not match its manifest (the field named), an unknown env, or
            ``out`` exists without ``overwrite``.
        SetupError: an ONNX export without onnxruntime.
    """
    if out is not None and not overwrite and os.path.lexists(out):
        raise DataError(f"{out}: already exists: a recording is replaced only with overwrite=True")
    policy = ExportedPolicy(export)
    made, meta = _env(env, policy)
    try:
        check_env(policy.manifest, made, policy.where)

        def act(obs: np.ndarray, first: bool) -> np.ndarray:
            if first:
                policy.reset()
            return policy.act(obs)

        recording = record(made, act, episodes, seed, meta)
    finally:
        if not isinstance(env, gym.Env):
            made.close()
    returns = [float(recording.rewards[rows].sum()) for rows in recording.episode_rows()]
    path = save_trajectories(recording, out) if out is not None else None
    return Deployment(recording, returns, path)


def _env(env: str | gym.Env, policy: ExportedPolicy) -> tuple[gym.Env, dict[str, Any]]:
    """The env to drive and the recording's meta (a simreal env's true dynamics; only its name otherwise)."""
    manifest = policy.manifest
    spec = load_robot(robot_reference(policy.folder, manifest))
    meta: dict[str, Any] = {"robot": spec.robot, "policy": str(policy.folder), "export": manifest.format}
    if isinstance(env, gym.Env):
        return env, {**meta, "source": "env", "env": str(env.spec.id if env.spec else type(env.unwrapped).__name__)}
    if env == "nominal":
        made = make_env(spec)
        return made, {**meta, "source": "simulator", "dynamics": get_dynamics(made)}
    if env in spec.targets or Path(env).suffix in (".yaml", ".yml"):
        name, target = load_target(spec, env)
        made = make_env(spec, fixed=target.parameters, effects=target.effects)
        target_meta = {"name": name, **target.model_dump(exclude={"base", "description"})}
        return made, {**meta, "source": "simulator", "target": target_meta, "dynamics": get_dynamics(made)}
    try:
        made = gym.make(env)
    except gym.error.Error as exc:
        known = ", ".join(sorted(spec.targets))
        raise SpecError(
            f"env {env!r}: not nominal, a target of {spec.robot} ({known}), a target YAML or a registered "
            f"gymnasium id ({type(exc).__name__})"
        ) from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"env {env!r}: could not be made ({exc})") from None
    return made, {**meta, "source": "env", "env": env}
