"""Robots and targets loaded from data: a shipped robot by name, a robot file or an inline mapping, its catalogue
generated and bound to the env's model (:mod:`simreal.envs.generate`); a target by name, file or mapping, checked
against the robot's catalogue. Every problem is a :class:`~simreal.errors.SpecError` naming the file and the field.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from simreal.envs.generate import expand_generated, robot_model
from simreal.envs.ranges import check_parameter, parse_range
from simreal.envs.spec import RobotSpec, TargetSpec, check_multiplier, format_validation_error
from simreal.errors import SpecError, shown, unknown_name
from simreal.fileio import read_yaml
from simreal.resources import envs_dir


def robot_names() -> list[str]:
    """The robots shipped in ``envs/``, sorted."""
    return sorted(p.stem for p in envs_dir().glob("*.yaml"))


def shipped_robot_of(gym_id: str) -> str | None:
    """The shipped robot built on the gymnasium id ``gym_id`` (``Hopper-v5`` -> ``hopper``), if one is."""
    for name in robot_names():
        if read_yaml(envs_dir() / f"{name}.yaml", SpecError).get("gym_id") == gym_id:
            return name
    return None


def load_robot(robot: str | os.PathLike[str] | Mapping[str, Any]) -> RobotSpec:
    """Load and validate a robot spec: a shipped robot by name (``"hopper"``), a robot file of your own by path
    (``"my_robot.yaml"``, e.g. written by :func:`~simreal.envs.generate.starter_file`), or a robot given inline as
    the mapping such a file holds (at least ``entry_point`` or ``gym_id``: the catalogue is then generated whole).

    A robot of one's own may leave out ``robot`` (a file's stem, or a name made from the id or the entry point's
    class), ``simreal_id`` (``simreal/<Name>-v0``) and ``generate`` when it has no ``parameters`` (generated). The
    spec's parameters are bound to the env's compiled model here, so a name the model lacks is an error of the
    file, not of the first env made from it.

    Raises:
        SpecError: the robot is unknown or its spec is invalid, naming the file (``robot`` for a mapping) and the
            field.
    """
    if isinstance(robot, Mapping):
        try:
            key = json.dumps(dict(robot), sort_keys=True)
        except (TypeError, ValueError):
            raise SpecError(f"robot: an inline robot holds plain values only, got {shown(dict(robot))}") from None
        return _load_robot_data(key)
    if isinstance(robot, os.PathLike) or (isinstance(robot, str) and Path(robot).suffix in (".yaml", ".yml")):
        path = Path(robot)
        if not path.is_file():
            raise SpecError(f"{path}: no such robot file")
    else:
        # a name is a shipped robot's file name, never a path that leads out of envs/
        plain = isinstance(robot, str) and Path(robot).name == robot and not robot.startswith(".")
        path = envs_dir() / f"{robot}.yaml"
        if not plain or not path.is_file():
            raise SpecError(unknown_name("robot", robot, [*robot_names(), "or a robot YAML file"]))
    return _load_robot_file(str(path), os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _load_robot_file(path: str, _mtime: int) -> RobotSpec:
    spec = _robot_spec(read_yaml(path, SpecError), path, Path(path).stem)
    if Path(path).parent == envs_dir() and spec.robot != Path(path).stem:  # a shipped robot is loaded by its name
        raise SpecError(f"{path}: robot: {spec.robot!r} does not match the file name")
    return spec


@functools.lru_cache(maxsize=32)
def _load_robot_data(key: str) -> RobotSpec:
    data = json.loads(key)
    data.setdefault("generate", {})  # an inline robot's catalogue is generated; its parameters override
    return _robot_spec(data, "robot", None, source=key)


def robot_label(robot: str | Mapping[str, Any]) -> str:
    """A robot's name without loading it: a shipped robot's name, a robot file's stem, or an inline robot's
    ``robot`` (else a name made from its entry point's class or its id)."""
    if isinstance(robot, Mapping):
        from simreal.envs.generate import robot_name

        if isinstance(robot.get("robot"), str):
            return robot["robot"]
        if isinstance(robot.get("entry_point"), str):
            return robot_name(robot["entry_point"].split(":")[-1]).removesuffix("_env")
        return robot_name(str(robot.get("gym_id", "robot")))
    return Path(robot).stem if Path(str(robot)).suffix in (".yaml", ".yml") else str(robot)


def _robot_spec(raw: Mapping[str, Any], where: str, name: str | None, source: str | None = None) -> RobotSpec:
    """Validate a robot's fields (a file's or a mapping's, named ``where`` in errors), its catalogue generated and
    bound to the env's model."""
    from simreal.envs.dynamics import DynamicsModel

    data = dict(raw)
    data.setdefault("robot", name if name is not None else robot_label(data))
    if isinstance(data.get("robot"), str):
        camel = "".join(part.capitalize() for part in data["robot"].split("_"))
        data.setdefault("simreal_id", f"simreal/{camel}-v0")
    if "parameters" not in data:
        data.setdefault("generate", {})
    model = robot_model(data, where)
    data = expand_generated(data, model, where)
    try:
        spec = RobotSpec.model_validate({**data, "source": source or where})
    except ValidationError as exc:
        raise SpecError(format_validation_error(where, exc)) from None
    DynamicsModel(spec, model)  # every parameter names an element of the model
    for target_name, target in spec.targets.items():
        validate_target_values(spec, target, where, f"targets.{target_name}")
    return spec


def validate_target_values(spec: RobotSpec, target: TargetSpec, source: object, field: str = "") -> None:
    """Check that a target names only catalogue parameters with valid multipliers.

    Raises:
        SpecError: naming ``source`` and the offending field.
    """
    prefix = f"{field}." if field else ""
    for name, value in target.parameters.items():
        check_parameter(spec, name, f"{source}: {prefix}parameters.{name}")
        try:
            check_multiplier(spec.parameters[name].kind, value)
        except ValueError as exc:
            raise SpecError(f"{source}: {prefix}parameters.{name}: {exc}") from None
    for name, bounds in target.ranges.items():
        check_parameter(spec, name, f"{source}: {prefix}ranges.{name}")
        parse_range(spec.parameters[name], list(bounds), f"{source}: {prefix}ranges.{name}")


def load_target(spec: RobotSpec, target: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[str, TargetSpec]:
    """Resolve a target for ``spec``: a shipped target name, a YAML path, or a mapping.

    Returns:
        ``(name, target)``: the shipped name, or the file's stem, or ``"custom"`` for a mapping.

    Raises:
        SpecError: unknown target name, missing or malformed file, unknown field or parameter, bad multiplier, or a
            ``base`` that is not this robot.
    """
    source: str | Path  # what errors name
    if isinstance(target, Mapping):
        name, source, data = "custom", "target", dict(target)
    elif isinstance(target, str) and target in spec.targets:
        return target, spec.targets[target]
    elif isinstance(target, (str, os.PathLike)) and (Path(target).suffix in (".yaml", ".yml") or Path(target).exists()):
        path = Path(target)
        name, source, data = path.stem, path, read_yaml(path, SpecError)
    else:
        raise SpecError(unknown_name("target", target, [*spec.targets, "or a YAML file"], spec.robot))
    try:
        parsed = TargetSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(source, exc)) from None
    if parsed.base is not None and robot_label(parsed.base) != spec.robot:
        raise SpecError(f"{source}: base: target is for {robot_label(parsed.base)!r}, not {spec.robot!r}")
    validate_target_values(spec, parsed, source)
    return name, parsed


def load_targets(
    spec: RobotSpec,
    targets: Sequence[str | os.PathLike[str] | Mapping[str, Any]] | None,
    where: Callable[[int], str] | None = None,
) -> dict[str, TargetSpec]:
    """Several targets by name (see :func:`load_target`); ``None``: every target the robot ships.

    Args:
        spec: the robot.
        targets: target names, YAML files or mappings.
        where: how to name the ``index``-th target in errors (a config's ``eval.targets.<index>``); default: the
            target itself.

    Raises:
        SpecError: an unknown or invalid target, or two targets of the same name.
    """
    chosen: dict[str, TargetSpec] = {}
    for index, target in enumerate(targets if targets is not None else list(spec.targets)):
        try:
            name, target_spec = load_target(spec, target)
        except SpecError as exc:
            raise SpecError(f"{where(index)}: {exc}" if where else str(exc)) from None
        if name in chosen:
            at = where(index) if where else f"target {shown(target)}"
            raise SpecError(f"{at}: another target is already called {name!r}")
        chosen[name] = target_spec
    return chosen


def load_target_file(path: str | os.PathLike[str]) -> tuple[RobotSpec, str, TargetSpec]:
    """Load a target file on its own: its ``base`` names the robot.

    Raises:
        SpecError: as :func:`load_target`, or the file has no ``base``.
    """
    data = read_yaml(path, SpecError)
    base = data.get("base")
    if not isinstance(base, (str, Mapping)):
        raise SpecError(f"{path}: base: missing (the robot this target is for, e.g. 'hopper')")
    try:
        spec = load_robot(base)
    except SpecError as exc:
        raise SpecError(f"{path}: base: {exc}") from None
    name, target = load_target(spec, path)
    return spec, name, target
