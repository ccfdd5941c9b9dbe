"""Robot specs and targets as data.

A robot spec (``envs/<robot>.yaml``) names the gymnasium MuJoCo env a robot is built on, the catalogue of physical
parameters that can be randomized (each a *multiplier* of the model's nominal value, 1.0 = nominal) with a default
training range and distribution, and the shipped targets: fixed dynamics plus unmodeled effects that stand in for
reality. A target can also be a YAML file of its own with a ``base:`` robot.

Everything here is validated with pydantic; every problem is raised as :class:`~simreal.errors.SpecError` with a
message that names the file and the field.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from simreal.envs.generate import GenerateSpec, expand_generated, robot_model
from simreal.errors import SpecError, shown, unknown_name
from simreal.fileio import read_yaml
from simreal.resources import envs_dir

Kind = Literal["mass", "friction", "damping", "armature", "frictionloss", "gain", "kp", "kv", "gravity", "com"]
DistributionName = Literal["uniform", "loguniform", "truncnormal"]
#: ``integer`` (uniform over the whole numbers in ``[low, high]``) serves effects such as the action delay.
RangeDistribution = Literal["uniform", "loguniform", "truncnormal", "integer"]

#: Hard limits of each kind of multiplier, used where a parameter declares none. Ranges must lie inside them.
DEFAULT_LIMITS: dict[str, tuple[float, float]] = {
    "mass": (0.1, 10.0),
    "friction": (0.05, 10.0),
    "damping": (0.0, 20.0),
    "armature": (0.0, 20.0),
    "gain": (0.1, 10.0),
    "kp": (0.1, 10.0),
    "kv": (0.0, 20.0),
    "gravity": (0.1, 5.0),
    "frictionloss": (0.0, 100.0),
    "com": (-0.1, 0.1),
}
#: Kinds that apply to one joint (``armature`` to its dofs, ``gain``/``kp``/``kv`` to the actuator driving it).
JOINT_KINDS = frozenset({"damping", "armature", "frictionloss", "gain", "kp", "kv"})
#: Kinds whose value is *added* to the model's (nominal 0, in the element's own units: frictionloss in N·m or N, a
#: centre-of-mass offset in metres) instead of multiplying it. Learning and identification see them divided by their
#: limit (:func:`to_coordinates`), where they see a multiplier's logarithm.
OFFSET_KINDS = frozenset({"frictionloss", "com"})
#: The longest action delay an env accepts, in control steps.
MAX_DELAY = 100
#: Kinds whose multiplier must be strictly positive (a body without mass, a motor without gear is no robot).
POSITIVE_KINDS = frozenset({"mass", "friction", "gain", "kp"})


class ParameterRange(BaseModel):
    """The distribution one multiplier is sampled from.

    Attributes:
        low: lower bound of the multiplier.
        high: upper bound (``low == high`` pins the value).
        distribution: ``uniform``; ``loguniform`` (uniform in log space, needs ``low > 0``); ``truncnormal``
            (normal with ``mean`` and ``std``, truncated to ``[low, high]``; defaults: the midpoint and a quarter of
            the width); or ``integer`` (each whole number in ``[low, high]`` equally likely; whole-number bounds).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: float
    high: float
    distribution: RangeDistribution = "uniform"
    mean: float | None = None
    std: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ParameterRange:
        if self.low > self.high:
            raise ValueError(f"range low {self.low} > high {self.high}")
        if self.distribution == "loguniform" and self.low <= 0:
            raise ValueError(f"loguniform needs low > 0, got {self.low}")
        if (self.mean is not None or self.std is not None) and self.distribution != "truncnormal":
            raise ValueError("mean and std apply to the truncnormal distribution only")
        if self.distribution == "integer" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"an integer range needs whole-number bounds, got [{self.low}, {self.high}]")
        return self


class ParameterSpec(BaseModel):
    """One randomizable physical parameter of a robot.

    Attributes:
        kind: ``mass`` (of one body, inertia scaled alike), ``friction`` (sliding friction of every geom),
            ``damping`` or ``armature`` (rotor inertia) of one joint, ``gain`` (gear of the motor driving one
            joint), ``kp`` or ``kv`` (position and velocity gains of the position actuator on one joint),
            ``gravity``: multipliers. ``frictionloss`` (dry friction of one joint, added in N·m or N) and ``com``
            (the body's centre of mass moved along ``axis`` of its frame, in metres): offsets, nominal 0.
        body: for ``mass`` and ``com``, the body by name.
        joint: for the joint kinds, the joint by name; for ``mass`` and ``com``, the body carrying this joint (for
            models whose bodies are unnamed).
        axis: for ``com``, the body-frame axis (``x``, ``y``, ``z``).
        range: default training range of the multiplier, ``[low, high]``.
        distribution: how training samples the multiplier inside ``range``.
        mean, std: truncnormal parameters.
        limits: hard limits of the multiplier (schedules and system identification never go past them).
        description: a few words for the catalogue.
        default: randomized (and identified) when a config, :func:`~simreal.envs.factory.make` or ``simreal sysid``
            names no parameters; ``false`` keeps a parameter in the catalogue for targets, ranges and sysid that
            name it (a robot's ``generate.optional`` kinds).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind
    body: str | None = None
    joint: str | None = None
    axis: Literal["x", "y", "z"] | None = None
    range: tuple[float, float]
    distribution: DistributionName = "uniform"
    mean: float | None = None
    std: float | None = Field(default=None, gt=0)
    limits: tuple[float, float] | None = None
    description: str = ""
    default: bool = True

    @model_validator(mode="after")
    def _check(self) -> ParameterSpec:
        if self.kind in ("mass", "com") and (self.body is None) == (self.joint is None):
            raise ValueError(f"a {self.kind} parameter names exactly one of 'body' or 'joint'")
        if (self.kind == "com") != (self.axis is not None):
            raise ValueError("a com parameter names its 'axis' (x, y or z); no other kind has one")
        if self.kind in JOINT_KINDS and self.joint is None:
            raise ValueError(f"a {self.kind} parameter names its 'joint'")
        if self.kind in ("friction", "gravity") and (self.body or self.joint):
            raise ValueError(f"a {self.kind} parameter applies to the whole model: no 'body' or 'joint'")
        _ = self.sampling  # validates range and distribution together
        low, high = self.hard_limits
        if low > high:
            raise ValueError(f"limits low {low} > high {high}")
        if not low <= self.neutral <= high:
            raise ValueError(f"limits [{low}, {high}] do not contain the nominal value {self.neutral:g}")
        if self.kind in OFFSET_KINDS and max(abs(low), abs(high)) <= 0:
            raise ValueError(f"limits [{low}, {high}]: an offset's limits must not both be 0")
        if not (low <= self.range[0] and self.range[1] <= high):
            raise ValueError(f"range {list(self.range)} is outside the limits [{low}, {high}]")
        check_multiplier(self.kind, self.range[0])
        return self

    @property
    def sampling(self) -> ParameterRange:
        """The default training distribution."""
        return ParameterRange(
            low=self.range[0],
            high=self.range[1],
            distribution=self.distribution,
            mean=self.mean,
            std=self.std,
        )

    @property
    def hard_limits(self) -> tuple[float, float]:
        """The declared limits, or the kind's default limits."""
        return self.limits if self.limits is not None else DEFAULT_LIMITS[self.kind]

    @property
    def offset(self) -> bool:
        """Whether the value is added to the model's (:data:`OFFSET_KINDS`) rather than multiplying it."""
        return self.kind in OFFSET_KINDS

    @property
    def neutral(self) -> float:
        """The value that leaves the model as it is: 1.0 for a multiplier, 0.0 for an offset."""
        return 0.0 if self.offset else 1.0

    @property
    def scale(self) -> float:
        """An offset's unit in learning and identification (:func:`to_coordinates`): the larger of its limits'
        magnitudes; 0 for a multiplier (its logarithm is used)."""
        low, high = self.hard_limits
        return max(abs(low), abs(high)) if self.offset else 0.0


def check_multiplier(kind: Kind, value: float) -> None:
    """Raise ``ValueError`` when ``value`` is not a valid value (a multiplier, or an offset of
    :data:`OFFSET_KINDS`) for a parameter of ``kind``."""
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{'value' if kind in OFFSET_KINDS else 'multiplier'} must be finite, got {value}")
    if kind == "com":
        return
    if kind == "frictionloss":
        if value < 0:
            raise ValueError(f"a frictionloss offset adds friction: must be >= 0, got {value}")
        return
    if kind in POSITIVE_KINDS and value <= 0:
        raise ValueError(f"a {kind} multiplier must be > 0, got {value}")
    if value < 0:
        raise ValueError(f"a {kind} multiplier must be >= 0, got {value}")


def offset_scales(spec: RobotSpec, names: Sequence[str]) -> dict[str, float]:
    """The offsets among ``names`` (parameters of ``spec``; others, effects included, are left out), by name ->
    :attr:`ParameterSpec.scale`: what :func:`to_coordinates` needs besides the names."""
    return {
        name: spec.parameters[name].scale for name in names if name in spec.parameters and spec.parameters[name].offset
    }


def to_coordinates(names: Sequence[str], values: Any, offsets: Mapping[str, float]) -> np.ndarray:
    """The values of ``names`` (last axis of ``values``) as learning and identification see them: a multiplier's
    logarithm, an offset divided by its scale (``offsets``: name -> scale, see :func:`offset_scales`). Zero is the
    nominal value either way."""
    values = np.asarray(values, dtype=np.float64)
    if not offsets:
        return np.log(values)
    scale = np.array([offsets.get(name, 0.0) for name in names])
    is_offset = scale > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(is_offset, values / np.where(is_offset, scale, 1.0), np.log(np.where(is_offset, 1.0, values)))


def from_coordinates(names: Sequence[str], coordinates: Any, offsets: Mapping[str, float]) -> np.ndarray:
    """The inverse of :func:`to_coordinates`."""
    coordinates = np.asarray(coordinates, dtype=np.float64)
    if not offsets:
        return np.exp(coordinates)
    scale = np.array([offsets.get(name, 0.0) for name in names])
    return np.where(scale > 0, coordinates * scale, np.exp(np.where(scale > 0, 0.0, coordinates)))


def estimate_errors(names: Sequence[str], estimates: Any, truths: Any, offsets: Mapping[str, float]) -> np.ndarray:
    """How far estimates lie from the truth, both in coordinates (:func:`to_coordinates`): a multiplier's relative
    error ``|exp(e - t) - 1|``; an offset's absolute error as a fraction of its scale ``|e - t|``."""
    difference = np.asarray(estimates, dtype=np.float64) - np.asarray(truths, dtype=np.float64)
    relative = np.abs(np.exp(difference) - 1.0)
    if not offsets:
        return relative
    is_offset = np.array([offsets.get(name, 0.0) > 0 for name in names])
    return np.where(is_offset, np.abs(difference), relative)


class Effects(BaseModel):
    """Unmodeled effects: what differs on a real robot beyond the parameter catalogue.

    Attributes:
        action_delay_steps: actions reach the robot this many control steps late (zeros until then).
        obs_noise_std: standard deviation of Gaussian noise added to every observation entry.
        action_noise_std: standard deviation of Gaussian noise added to every action entry (then clipped).
        obs_bias_std: a sensor offset: each episode draws one bias per observation entry from a normal distribution
            of this standard deviation and adds it to every observation of the episode.
        obs_delay_steps: observations reach the policy this many control steps late (the first one until then).
        actuator_lag_s: the time constant, in seconds, of a first-order lag between the action sent and the one the
            actuators apply (a motor's bandwidth is 1 / (2π τ)); 0 is none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action_delay_steps: int = Field(default=0, ge=0, le=MAX_DELAY)
    obs_noise_std: float = Field(default=0.0, ge=0)
    action_noise_std: float = Field(default=0.0, ge=0)
    obs_bias_std: float = Field(default=0.0, ge=0)
    obs_delay_steps: int = Field(default=0, ge=0, le=MAX_DELAY)
    actuator_lag_s: float = Field(default=0.0, ge=0)


#: The unmodeled effects by name: they can be randomized per episode like the physical parameters (their nominal
#: value, where schedules start from, is 0: no effect).
EFFECT_NAMES: tuple[str, ...] = tuple(Effects.model_fields)
#: The effects counted in whole control steps (drawn over whole numbers, at most :data:`MAX_DELAY`).
STEP_EFFECTS = frozenset({"action_delay_steps", "obs_delay_steps"})


def effect_range(name: str, value: Any) -> ParameterRange:
    """The per-episode distribution of effect ``name`` from ``[low, high]``: uniform, the delays over whole steps.

    Raises:
        ValueError: an unknown effect, a malformed or negative range, a delay that is not whole steps or above the
            maximum.
    """
    if name not in EFFECT_NAMES:
        raise ValueError(unknown_name("effect", name, EFFECT_NAMES))
    if isinstance(value, ParameterRange):
        value = [value.low, value.high]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"expected a value or [low, high], got {shown(value)}")
    try:
        low, high = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise ValueError(f"expected two numbers [low, high], got {shown(value)}") from None
    delay = name in STEP_EFFECTS
    if not (low >= 0 and high < float("inf")):  # also false for NaN
        raise ValueError(f"[{low:g}, {high:g}]: bounds must be finite and >= 0")
    if low > high:
        raise ValueError(f"range low {low:g} > high {high:g}")
    if delay and not (low.is_integer() and high.is_integer()):
        raise ValueError(f"[{low:g}, {high:g}]: a delay is a whole number of control steps")
    if delay and high > MAX_DELAY:
        raise ValueError(f"{high:g} steps is above the maximum delay of {MAX_DELAY}")
    return ParameterRange(low=low, high=high, distribution="integer" if delay else "uniform")


def effect_ranges(ranges: Mapping[str, Any], where: str = "effects") -> dict[str, ParameterRange]:
    """Per-episode distributions of effects, name -> ``[low, high]`` (see :func:`effect_range`), in the order of
    :data:`EFFECT_NAMES`.

    Raises:
        SpecError: naming ``where`` and the effect.
    """
    result = {}
    for name, value in ranges.items():
        try:
            result[name] = effect_range(name, value)
        except ValueError as exc:
            raise SpecError(f"{where}.{name}: {exc}") from None
    return {name: result[name] for name in EFFECT_NAMES if name in result}


class TargetSpec(BaseModel):
    """A fixed "reality": multipliers and offsets (omitted ones stay nominal: 1.0, an offset 0.0) plus unmodeled
    effects.

    ``ranges`` (optional, written by ``simreal sysid``) are training ranges around the multipliers: a target file
    with them can also serve as ``randomization.ranges`` of a training config. As a target, they are ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: str | dict[str, Any] | None = None
    description: str = ""
    parameters: dict[str, float] = Field(default_factory=dict)
    effects: Effects = Field(default_factory=Effects)
    ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)


class ObservationLayout(BaseModel):
    """How the robot's observation holds its MuJoCo state, so that states can be rebuilt from observations.

    Attributes:
        skipped_positions: the leading ``qpos`` entries the observation leaves out (the free x, y position: the
            dynamics do not depend on it, so it is rebuilt as 0).
        velocity_clip: the observation clips ``qvel`` to this magnitude (a rebuilt state is exact only below it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    skipped_positions: int = Field(default=0, ge=0)
    velocity_clip: float | None = Field(default=None, gt=0)


class RobotSpec(BaseModel):
    """A robot: its gymnasium env, parameter catalogue and shipped targets.

    The env is a registered ``gym_id`` or an ``entry_point`` (``"package.module:EnvClass"``, a gymnasium
    ``MujocoEnv``), built with ``env_kwargs`` (or ``kwargs``, gymnasium's word) and limited to ``max_episode_steps``
    (default: the id's own limit, else 1000). With ``generate``, the catalogue is generated from the env's compiled
    model (:mod:`simreal.envs.generate`) and the file's ``parameters`` override it; ``parameters`` here is the
    result.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    robot: str
    gym_id: str | None = None
    entry_point: str | None = None
    max_episode_steps: int | None = Field(default=None, gt=0)
    simreal_id: str
    description: str = ""
    env_kwargs: dict[str, Any] = Field(default_factory=dict, validation_alias=AliasChoices("env_kwargs", "kwargs"))
    observation: ObservationLayout | None = None
    generate: GenerateSpec | None = None
    parameters: dict[str, ParameterSpec]
    targets: dict[str, TargetSpec] = Field(default_factory=dict)
    source: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _one_env(self) -> RobotSpec:
        if (self.gym_id is None) == (self.entry_point is None):
            raise ValueError("a robot names exactly one of 'gym_id' (a registered id) or 'entry_point'")
        return self

    @property
    def reference(self) -> str | dict[str, Any]:
        """What :func:`load_robot` loads this robot by: a shipped robot's name, the path of a robot file, or the
        mapping of a robot given inline."""
        if isinstance(self.source, str) and self.source.startswith("{"):
            return json.loads(self.source)
        shipped = envs_dir() / f"{self.robot}.yaml"
        return self.robot if not self.source or Path(self.source) == shipped else self.source


def validation_problem(exc: ValidationError, drop: tuple[str, ...] = ()) -> tuple[str, str]:
    """The dotted field and the message of pydantic's first problem.

    Args:
        exc: pydantic's error.
        drop: location parts to leave out (the tags of discriminated unions).
    """
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"] if part not in drop)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    return field, message


def format_validation_error(source: object, exc: ValidationError, drop: tuple[str, ...] = ()) -> str:
    """One line naming ``source``, the dotted field and what is wrong with it (see :func:`validation_problem`)."""
    field, message = validation_problem(exc, drop)
    return f"{source}: {field}: {message}" if field else f"{source}: {message}"


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


def resolve_ranges(
    spec: RobotSpec,
    parameters: Sequence[str] | None = None,
    ranges: Mapping[str, Any] | None = None,
    parameters_source: object = "parameters",
    ranges_source: object = "ranges",
) -> dict[str, ParameterRange]:
    """The training distributions for ``spec``: all or some parameters, with ranges overriding the defaults.

    Args:
        spec: the robot.
        parameters: names to randomize; ``None`` means every catalogue parameter that is randomized by default.
        ranges: per-name overrides, each ``[low, high]`` or a mapping of :class:`ParameterRange` fields (``low``,
            ``high``, ``distribution``...) or of ``range``/``distribution``. Named parameters are randomized even if
            ``parameters`` leaves them out.
        parameters_source, ranges_source: how to name the origin of ``parameters`` and of ``ranges`` in errors.

    Raises:
        SpecError: unknown names, bad ranges, ranges outside the parameter's limits.
    """
    names = default_parameters(spec) if parameters is None else list(parameters)
    for index, name in enumerate(names):
        check_parameter(spec, name, f"{parameters_source}.{index}")
    result = {name: spec.parameters[name].sampling for name in names}
    for name, value in (ranges or {}).items():
        check_parameter(spec, name, f"{ranges_source}.{name}")
        result[name] = parse_range(spec.parameters[name], value, f"{ranges_source}.{name}")
    return {name: result[name] for name in spec.parameters if name in result}


def default_parameters(spec: RobotSpec) -> list[str]:
    """The parameters randomized and identified when none are named (``default: true``), in catalogue order."""
    return [name for name, param in spec.parameters.items() if param.default]


def check_parameter(spec: RobotSpec, name: object, where: str) -> None:
    """Raise :class:`SpecError` prefixed with ``where`` when ``name`` is not one of the robot's parameters."""
    if name not in spec.parameters:
        raise SpecError(f"{where}: {unknown_name('parameter', name, spec.parameters, spec.robot)}")


def parse_range(param: ParameterSpec, value: Any, where: str) -> ParameterRange:
    """Parse one range override for ``param`` and check it against the parameter's kind and limits."""
    if isinstance(value, ParameterRange):
        fields: dict[str, Any] = value.model_dump()
    elif isinstance(value, Mapping):
        fields = dict(value)
        if "range" in fields:
            low_high = fields.pop("range")
            if not isinstance(low_high, (list, tuple)) or len(low_high) != 2:
                raise SpecError(f"{where}: range: expected [low, high]")
            fields["low"], fields["high"] = low_high
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        fields = {"low": value[0], "high": value[1]}
    else:
        raise SpecError(f"{where}: expected [low, high] or a mapping with low/high, got {shown(value)}")
    try:
        parsed = ParameterRange.model_validate(fields)
        check_multiplier(param.kind, parsed.low)
    except ValidationError as exc:
        raise SpecError(format_validation_error(where, exc)) from None
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
    low, high = param.hard_limits
    if not (low <= parsed.low and parsed.high <= high):
        raise SpecError(f"{where}: range [{parsed.low}, {parsed.high}] is outside the limits [{low}, {high}]")
    return parsed
