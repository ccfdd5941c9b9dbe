"""The catalogue of shipped robots, parameters and targets, as plain data for tables and JSON."""

from __future__ import annotations

from typing import Any

from simreal.envs.dynamics import UNITS, DynamicsModel
from simreal.envs.mujoco_base import make_base_env, mujoco_env
from simreal.envs.robots import load_robot, load_target_file, robot_names
from simreal.envs.spec import TargetSpec


def robot_catalogue(robot: str) -> dict[str, Any]:
    """One robot's entry: its ids, parameters (nominal physical value, unit, range, distribution, limits, whether
    randomized by default) and targets (multipliers and effects)."""
    spec = load_robot(robot)
    env = make_base_env(spec)
    try:
        nominal = DynamicsModel(spec, mujoco_env(env).model).nominal()
    finally:
        env.close()
    parameters = []
    for name, param in spec.parameters.items():
        parameters.append(
            {
                "name": name,
                "kind": param.kind,
                "element": param.body or param.joint,
                "nominal": nominal[name],
                "unit": UNITS[param.kind],
                "range": list(param.range),
                "distribution": param.distribution,
                **({"mean": param.mean} if param.mean is not None else {}),
                **({"std": param.std} if param.std is not None else {}),
                "limits": list(param.hard_limits),
                "default": param.default,
                "description": param.description,
            }
        )
    targets = [_target(name, target) for name, target in spec.targets.items()]
    return {
        "robot": spec.robot,
        "id": spec.simreal_id,
        "gym_id": spec.gym_id,
        "description": spec.description,
        "parameters": parameters,
        "targets": targets,
    }


def _target(name: str, target: TargetSpec) -> dict[str, Any]:
    return {
        "name": name,
        "description": target.description,
        "parameters": dict(target.parameters),
        "effects": target.effects.model_dump(),
    }


def target_entry(path: str) -> dict[str, Any]:
    """A target file's entry, validated against its ``base`` robot (raises :class:`~simreal.errors.SpecError`)."""
    spec, name, target = load_target_file(path)
    return {"base": spec.robot, **_target(name, target)}


def catalogue(robots: list[str] | None = None) -> list[dict[str, Any]]:
    """The entries of ``robots`` (default: every shipped robot, sorted by name)."""
    return [robot_catalogue(robot) for robot in (robots or robot_names())]
