"""Robot specs and targets as data: their schema.

A robot spec (``envs/<robot>.yaml``) names the gymnasium MuJoCo env a robot is built on, the catalogue of physical
parameters that can be randomized (each a *multiplier* of the model's nominal value, 1.0 = nominal) with a default
training range and distribution, and the shipped targets: fixed dynamics plus unmodeled effects that stand in for
reality. A target can also be a YAML file of its own with a ``base:`` robot.

Everything here is validated with pydantic. Loading robots and targets is :mod:`simreal.envs.robots`' job, checking
training ranges :mod:`simreal.envs.ranges`', and the coordinates learning sees :mod:`simreal.envs.coordinates`'.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simreal.envs.generate import GenerateSpec
from simreal.errors import shown
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
#: limit (:func:`~simreal.envs.coordinates.to_coordinates`), where they see a multiplier's logarithm.
OFFSET_KINDS = frozenset({"frictionloss", "com"})
#: The longest action delay an env accepts, in control steps.
MAX_DELAY = 100
#: Kinds whose multiplier must be strictly positive (a body without mass, a motor without gear is no robot).
POSITIVE_KINDS = frozenset({"mass", "friction", "gain", "kp"})
#: A parameter's name: a letter or ``_``, then letters, digits, ``_``, ``.`` or ``-``. Names are keys, table columns,
#: command-line lists and parts of file names: never empty, never a path (no separator, no ``..`` of its own).
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def check_name(name: object) -> None:
    """Raise ``ValueError`` when ``name`` is not a parameter's name (:data:`PARAMETER_NAME`)."""
    if not isinstance(name, str) or not PARAMETER_NAME.fullmatch(name):
        raise ValueError(
            f"{shown(name)} is not a parameter name (a letter or '_', then letters, digits, '_', '.' or '-')"
        )


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
        """An offset's unit in learning and identification (:func:`~simreal.envs.coordinates.to_coordinates`): the
        larger of its limits' magnitudes; 0 for a multiplier (its logarithm is used)."""
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
    result: at least one, each named by :data:`PARAMETER_NAME`.

    An entry point (a registered id's too) must name a :class:`gymnasium.Env` subclass: it is checked before
    anything is called (:func:`~simreal.envs.mujoco_base.env_class`).
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

    @field_validator("parameters")
    @classmethod
    def _named(cls, parameters: dict[str, ParameterSpec]) -> dict[str, ParameterSpec]:
        if not parameters:
            raise ValueError("no parameter: a robot needs at least one to randomize")
        for name in parameters:
            check_name(name)
        return parameters

    @model_validator(mode="after")
    def _one_env(self) -> RobotSpec:
        if (self.gym_id is None) == (self.entry_point is None):
            raise ValueError("a robot names exactly one of 'gym_id' (a registered id) or 'entry_point'")
        return self

    @property
    def reference(self) -> str | dict[str, Any]:
        """What :func:`~simreal.envs.robots.load_robot` loads this robot by: a shipped robot's name, the path of a
        robot file, or the mapping of a robot given inline."""
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
