"""A robot's parameter catalogue generated from its compiled ``MjModel``, and a starter robot file for any env.

Every element a kind applies to becomes one parameter, named from the model's own names:

* ``mass``: each body with mass (``<body>_mass``; an unnamed body by the joint it carries, ``<joint>_body_mass``);
* ``friction``: the sliding friction of every geom, one parameter, where two geoms can touch with friction;
* ``damping`` and ``armature``: each hinge or slide joint whose nominal value is not zero (``<joint>_damping``,
  ``<joint>_armature``; a multiplier of zero would change nothing);
* ``gain``: the gear of each motor driving a joint (``<joint>_gain``);
* ``kp`` and ``kv``: the position and velocity gains of each position actuator on a joint (``<joint>_kp``,
  ``<joint>_kv``);
* ``gravity``: the gravity vector, where it is not zero;
* ``frictionloss`` (an offset, added in N·m or N): each actuated hinge or slide joint's dry friction
  (``<joint>_frictionloss``), its default range 0 to 2% of the joint's peak actuator force;
* ``com`` (an offset, in metres): each body's centre of mass moved along each axis of its frame
  (``<body>_com_x``...), for bodies that rotate, leaving out the axis every rotation of the body is about when
  there is one (a planar model's normal: there a shift changes nothing), by up to 1 cm.

The offsets are ``optional`` unless ``generate.kinds`` names them: in the catalogue for targets, ranges and system
identification that name them, not randomized by default (their default ranges are a guess of scale, not a ratio).

The order is kind by kind in the order above, elements in model order within a kind: a robot file's ``parameters``
then only override (ranges, distributions, limits, descriptions) or add, and ``generate.exclude`` drops what the robot
should not randomize (the pusher's object, say). The five robots simreal first shipped generate exactly their former
hand-written catalogues (tested), so their seeds give the same numbers.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import mujoco
import yaml
from gymnasium.envs.registration import EnvSpec
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from simreal.envs.kinds import KIND_ELEMENTS
from simreal.errors import SpecError, shown

#: Every kind a catalogue can be generated with, in catalogue order.
GENERATED_KINDS: tuple[str, ...] = (
    "mass",
    "friction",
    "damping",
    "armature",
    "gain",
    "kp",
    "kv",
    "gravity",
    "frictionloss",
    "com",
)
#: The kinds generated and randomized by default: the multipliers.
DEFAULT_KINDS: tuple[str, ...] = GENERATED_KINDS[:-2]
#: The kinds generated but optional by default: the offsets.
OPTIONAL_KINDS: tuple[str, ...] = GENERATED_KINDS[-2:]

#: The default training range of each kind's multiplier (what a robot file's ``parameters`` override).
DEFAULT_RANGES: dict[str, dict[str, Any]] = {
    "mass": {"range": [0.75, 1.25], "distribution": "uniform"},
    "friction": {"range": [0.6, 1.5], "distribution": "loguniform"},
    "damping": {"range": [0.5, 2.0], "distribution": "loguniform"},
    "armature": {"range": [0.5, 2.0], "distribution": "loguniform"},
    "gain": {"range": [0.8, 1.2], "distribution": "uniform"},
    "kp": {"range": [0.8, 1.2], "distribution": "uniform"},
    "kv": {"range": [0.5, 2.0], "distribution": "loguniform"},
    "gravity": {"range": [0.9, 1.1], "distribution": "truncnormal", "mean": 1.0, "std": 0.05},
    "frictionloss": {"distribution": "uniform"},  # range and limits per joint, from its actuator's peak force
    "com": {"range": [-0.01, 0.01], "distribution": "uniform"},
}


class GenerateSpec(BaseModel):
    """A robot file's ``generate`` block.

    Attributes:
        kinds: the kinds to generate and randomize by default (default: the multipliers, :data:`DEFAULT_KINDS`).
        optional: kinds generated into the catalogue after the others but not randomized unless named
            (``default: false``): for targets, ranges and system identification that name them.
        exclude: parameter names or shell patterns (``obj_*``) to leave out; each must match something.
        rename: generated name -> the name to use instead (in the same place of the catalogue).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: tuple[str, ...] = DEFAULT_KINDS
    optional: tuple[str, ...] = OPTIONAL_KINDS
    exclude: tuple[str, ...] = ()
    rename: dict[str, str] = {}

    @field_validator("kinds", "optional")
    @classmethod
    def _known(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        for kind in kinds:
            if kind not in GENERATED_KINDS:
                raise ValueError(f"unknown kind {kind!r} (known: {', '.join(GENERATED_KINDS)})")
        return kinds


def generated_parameters(model: mujoco.MjModel, kinds: tuple[str, ...] = GENERATED_KINDS) -> dict[str, dict[str, Any]]:
    """The catalogue of ``model`` for ``kinds``, name -> the fields of a
    :class:`~simreal.envs.spec.ParameterSpec` (not yet validated), in catalogue order."""
    entries: dict[str, dict[str, Any]] = {}
    for kind in GENERATED_KINDS:
        if kind in kinds:
            for name, fields in KIND_ELEMENTS[kind](model):
                entries[name] = {"kind": kind, **DEFAULT_RANGES[kind], **fields}
    return entries


def model_of(
    gym_id: str | EnvSpec, env_kwargs: Mapping[str, Any], source: object, field: str = "gym_id"
) -> mujoco.MjModel:
    """The compiled model of the gymnasium env ``gym_id`` (an id or a spec: a MuJoCo env), built with
    ``env_kwargs``; errors name ``source`` and ``field``.

    Raises:
        SpecError: naming ``source``: the id is not registered, the env cannot be built, or it is not a MuJoCo env.
    """
    from simreal.envs.mujoco_base import error_line, route_mujoco_warnings

    route_mujoco_warnings()
    label = gym_id if not isinstance(gym_id, EnvSpec) else _label(gym_id, field)
    try:
        env = gym.make(gym_id, disable_env_checker=True, **dict(env_kwargs))
    except Exception as exc:  # a user's env: any failure to build it is bad input, said on one line
        raise SpecError(f"{source}: {field}: cannot make {label!r}: {error_line(exc)}") from None
    try:
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            raise SpecError(f"{source}: {field}: {label!r} is not a MuJoCo env (its env has no MjModel 'model')")
        return model
    finally:
        env.close()


def _label(spec: EnvSpec, field: str) -> str:
    """How messages name the env of ``spec``: its id, or its entry point (``module:Class``)."""
    entry = spec.entry_point
    if field != "entry_point":
        return spec.id
    if isinstance(entry, str):
        return entry
    return f"{getattr(entry, '__module__', '?')}:{getattr(entry, '__qualname__', entry)}"


def robot_model(data: Mapping[str, Any], source: object) -> mujoco.MjModel:
    """The compiled model of a robot's env (its ``gym_id`` or ``entry_point``, built with its ``env_kwargs`` or
    ``kwargs``; see :func:`model_of`), its entry point checked to be an env class before anything is called
    (:func:`~simreal.envs.mujoco_base.env_class`).

    Raises:
        SpecError: naming ``source`` and the field: as :func:`model_of`, an entry point that is not a gymnasium env
            class, or a model without actuators (a policy would have nothing to drive).
    """
    from simreal.envs.mujoco_base import base_env_spec, error_line

    gym_id, entry_point = data.get("gym_id"), data.get("entry_point")
    if not isinstance(gym_id, str) and not isinstance(entry_point, str):
        raise SpecError(f"{source}: gym_id: missing (a registered MuJoCo env id, or an 'entry_point' instead)")
    if isinstance(gym_id, str) and isinstance(entry_point, str):
        raise SpecError(f"{source}: entry_point: give 'gym_id' or 'entry_point', not both")
    env_kwargs = data.get("env_kwargs", data.get("kwargs")) or {}
    if not isinstance(env_kwargs, Mapping):
        raise SpecError(f"{source}: env_kwargs: expected a mapping, got {shown(env_kwargs)}")
    if isinstance(gym_id, str):
        if gym_id not in gym.registry and ":" not in gym_id:
            raise SpecError(f"{source}: gym_id: {gym_id!r} is not a registered gymnasium id")
        try:
            env_spec = base_env_spec(gym_id, None, None, gym_id, source)
        except SpecError:
            raise
        except Exception as exc:  # gymnasium's errors for an id it cannot find or import
            raise SpecError(f"{source}: gym_id: cannot make {gym_id!r}: {error_line(exc)}") from None
    else:
        env_id = str(data.get("simreal_id") or "simreal/Robot-v0")
        env_spec = base_env_spec(None, entry_point, None, env_id, source)
    field = "gym_id" if isinstance(gym_id, str) else "entry_point"
    model = model_of(env_spec, env_kwargs, source, field)
    if model.nu == 0:
        label = gym_id if isinstance(gym_id, str) else entry_point
        raise SpecError(f"{source}: {field}: {label!r} has no actuator: a policy would have nothing to drive")
    return model


def expand_generated(data: Mapping[str, Any], model: mujoco.MjModel, source: object) -> dict[str, Any]:
    """A robot file's fields with its catalogue generated from ``model``: the generated parameters minus
    ``generate.exclude``, renamed by ``generate.rename``, updated by the file's ``parameters`` (a generated name takes
    the fields given; a new name is a whole parameter). A file without ``generate`` comes back as it is.

    Raises:
        SpecError: naming ``source`` and the field: a malformed ``generate`` block, an unknown kind, an exclusion
            that matches nothing, an override of a name that is neither generated nor a whole parameter.
    """
    from simreal.envs.spec import check_name, validation_problem

    data = dict(data)
    if data.get("generate") is None:
        return data
    try:
        block = GenerateSpec.model_validate(data["generate"])
    except ValidationError as exc:
        field, message = validation_problem(exc)
        raise SpecError(f"{source}: generate{'.' + field if field else ''}: {message}") from None
    generated = generated_parameters(model, block.kinds)
    for name, fields in generated_parameters(model, block.optional).items():
        if name not in generated:
            generated[name] = {**fields, "default": False}
    for index, pattern in enumerate(block.exclude):
        matched = [name for name in generated if fnmatch.fnmatchcase(name, pattern)]
        if not matched:
            raise SpecError(f"{source}: generate.exclude.{index}: {pattern!r} matches no generated parameter")
        for name in matched:
            del generated[name]
    renamed_from: dict[str, str] = {}
    for old, new in block.rename.items():
        if old not in generated:
            raise SpecError(f"{source}: generate.rename.{old}: no generated parameter of that name")
        try:
            check_name(new)
        except ValueError as exc:
            raise SpecError(f"{source}: generate.rename.{old}: {exc}") from None
        if new in renamed_from:
            raise SpecError(f"{source}: generate.rename: {renamed_from[new]} and {old} are both renamed to {new!r}")
        if new in generated:
            raise SpecError(f"{source}: generate.rename.{old}: {new!r} is already a parameter")
        renamed_from[new] = old
    generated = {block.rename.get(name, name): fields for name, fields in generated.items()}
    overrides = data.get("parameters") or {}
    if not isinstance(overrides, Mapping):
        raise SpecError(f"{source}: parameters: expected a mapping of name -> fields, got {shown(overrides)}")
    for name, fields in overrides.items():
        if not isinstance(fields, Mapping):
            raise SpecError(f"{source}: parameters.{name}: expected a mapping of fields, got {shown(fields)}")
        if name in generated:
            generated[name] = {**generated[name], **fields}
        elif "kind" in fields:
            generated[name] = dict(fields)
        else:
            raise SpecError(
                f"{source}: parameters.{name}: not in the catalogue generated from "
                f"{data.get('gym_id') or data.get('entry_point')} "
                f"(generated: {', '.join(generated) or 'none'}); a parameter of its own needs a 'kind'"
            )
    if not generated:
        field = "generate.exclude" if block.exclude else "generate.kinds"
        raise SpecError(f"{source}: {field}: no parameter is left in the catalogue: nothing to randomize")
    data["parameters"] = generated
    return data


def robot_name(gym_id: str) -> str:
    """A robot name for a gymnasium id: ``Pusher-v5`` -> ``pusher``, ``pkg:MyArm-v0`` -> ``my_arm``."""
    base = gym_id.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    base = re.sub(r"-v\d+$", "", base)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower().replace("-", "_")


def starter_file(gym_id: str, env_kwargs: Mapping[str, Any] | None = None) -> str:
    """The text of a starter robot file for ``gym_id``: the catalogue generated from its model, listed in comments
    with nominal values so the overrides can be written beside them, and an example target.

    Raises:
        SpecError: the env cannot be built or is not a MuJoCo env.
    """
    from simreal.envs.dynamics import UNITS, DynamicsModel
    from simreal.envs.spec import RobotSpec

    model = model_of(gym_id, env_kwargs or {}, "generate")
    parameters = generated_parameters(model, DEFAULT_KINDS)
    for name, fields in generated_parameters(model, OPTIONAL_KINDS).items():
        parameters[name] = {**fields, "default": False}
    robot = robot_name(gym_id)
    camel = "".join(part.capitalize() for part in robot.split("_"))
    head = {
        "robot": robot,
        "gym_id": gym_id,
        "simreal_id": f"simreal/{camel}-v0",
        "description": f"{gym_id}, its catalogue generated from the model",
        **({"env_kwargs": dict(env_kwargs)} if env_kwargs else {}),
        "generate": {"kinds": list(DEFAULT_KINDS), "optional": list(OPTIONAL_KINDS), "exclude": []},
    }
    spec = RobotSpec.model_validate({**head, "generate": None, "parameters": parameters, "source": "generate"})
    nominal = DynamicsModel(spec, model).nominal()
    lines = [
        f"# A simreal robot file for {gym_id}. Every parameter below is generated from the model at load time;",
        "# 'parameters' only overrides them (range, distribution, mean, std, limits, description) or adds new ones,",
        "# and 'generate.exclude' drops names (shell patterns). Values are multipliers of the nominal (1.0).",
        yaml.safe_dump(head, sort_keys=False, default_flow_style=None, width=120).rstrip(),
        "parameters: {}",
        "# generated (name: kind, element, nominal value, default range; optional: randomized only when named):",
    ]
    for name, fields in parameters.items():
        element = fields.get("body") or fields.get("joint") or "all"
        unit = UNITS[fields["kind"]]
        low, high = fields["range"]
        lines.append(
            f"#   {name}: {fields['kind']}, {element}, {nominal[name]:.4g}{' ' + unit if unit else ''}, "
            f"[{low:g}, {high:g}] {fields['distribution']}{'' if fields.get('default', True) else ', optional'}"
        )
    example = next(iter(parameters), None)
    lines += [
        "targets:",
        "  example:",
        '    description: "an example reality: edit or replace"',
        f"    parameters: {{{example}: 1.1}}" if example else "    parameters: {}",
        "    effects: {action_delay_steps: 1, obs_noise_std: 0.01}",
    ]
    return "\n".join(lines) + "\n"
