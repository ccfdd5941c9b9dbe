"""Experiment configs: YAML validated with pydantic, with ``--set key=value`` overrides by dotted path.

A config names the robot, what is randomized, the algorithm and its hyperparameters (structured, no code in strings),
the vectorized envs and normalization, the budget, evaluation on targets and checkpointing. Every problem is raised as
:class:`~simreal.errors.ConfigError` with a message naming the file and the dotted field.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from simreal.envs.spec import (
    MAX_DELAY,
    STEP_EFFECTS,
    Effects,
    effect_range,
    load_target_file,
    robot_label,
    validation_problem,
)
from simreal.errors import ConfigError, SpecError, shown, unknown_name
from simreal.fileio import parse_yaml, read_yaml
from simreal.resources import configs_dir


class StrictModel(BaseModel):
    """A config's section: unknown fields refused (a typo is an error, not a default), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FixedScheduleConfig(StrictModel):
    """The configured ranges all run long."""

    kind: Literal["fixed"] = "fixed"


class CurriculumConfig(StrictModel):
    """Ranges widen from ``initial_fraction`` of their width around nominal to all of it over ``ramp_fraction`` of
    training, ``linear``-ly or in ``steps`` equal increments."""

    kind: Literal["curriculum"]
    initial_fraction: float = Field(default=0.0, ge=0, le=1)
    ramp_fraction: float = Field(default=0.5, ge=0, le=1)
    mode: Literal["linear", "steps"] = "linear"
    steps: int = Field(default=5, gt=0)


class Thresholds(StrictModel):
    """ADR thresholds: returns, or, when ``relative``, fractions of the mean return of recent non-boundary episodes
    (the policy's return under its current ranges, which ADR keeps close to nominal)."""

    low: float = 0.5
    high: float = 0.8
    relative: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.low > self.high:
            raise ValueError(f"low {self.low} > high {self.high}")
        return self


class ADRConfig(StrictModel):
    """Automatic Domain Randomization (see :class:`simreal.train.schedules.ADRSchedule`).

    Attributes:
        initial_width: ranges start at ``1 +- initial_width``.
        step: how far a boundary moves (multiplier units).
        probability: chance that an episode pins one parameter to one boundary.
        buffer_size: boundary returns collected before a boundary is judged.
        thresholds: ``low`` and ``high``; ``relative`` makes them fractions of the nominal-dynamics return.
        limits: hard limits per parameter, each containing 1.0 (default: the parameter's training range; a drawn
            effect's limits are its configured range, and it starts at its low end).
    """

    kind: Literal["adr"]
    initial_width: float = Field(default=0.05, gt=0)
    step: float = Field(default=0.05, gt=0)
    probability: float = Field(default=0.5, ge=0, le=1)
    buffer_size: int = Field(default=10, gt=0)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    limits: dict[str, tuple[float, float]] = Field(default_factory=dict)


Delay = Annotated[int, Field(ge=0, le=MAX_DELAY)]
Std = Annotated[float, Field(ge=0)]


class EffectsConfig(StrictModel):
    """Unmodeled effects during training (:class:`~simreal.envs.spec.Effects`): each a fixed value, or
    ``[low, high]`` drawn anew every episode (the delay over whole control steps). Drawn effects follow the
    schedule like the parameters: their nominal value, where curriculum and ADR start, is 0 (no effect)."""

    action_delay_steps: Delay | tuple[Delay, Delay] = 0
    obs_noise_std: Std | tuple[Std, Std] = 0.0
    action_noise_std: Std | tuple[Std, Std] = 0.0
    obs_bias_std: Std | tuple[Std, Std] = 0.0
    obs_delay_steps: Delay | tuple[Delay, Delay] = 0
    actuator_lag_s: Std | tuple[Std, Std] = 0.0

    @field_validator("*", mode="before")
    @classmethod
    def _value_or_range(cls, value: Any, info: ValidationInfo) -> Any:
        # one clear message rather than one per member of the union
        if isinstance(value, (list, tuple)):
            checked = effect_range(str(info.field_name), value)
            return (checked.low, checked.high)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a number or [low, high], got {shown(value)}")
        if not value >= 0:
            raise ValueError(f"must be >= 0, got {shown(value)}")
        if info.field_name in STEP_EFFECTS:
            if not float(value).is_integer():
                raise ValueError(f"a delay is a whole number of control steps, got {shown(value)}")
            effect_range(info.field_name, [value, value])  # within the maximum
        return value

    def drawn(self) -> dict[str, list[float]]:
        """The effects drawn per episode: name -> ``[low, high]``."""
        return {name: list(value) for name, value in self if isinstance(value, tuple)}

    def fixed(self) -> Effects:
        """The fixed effects; a drawn one stands at the low end of its range (what applies with randomization off)."""
        return Effects(**{name: value[0] if isinstance(value, tuple) else value for name, value in self})


ScheduleConfig = Annotated[FixedScheduleConfig | CurriculumConfig | ADRConfig, Field(discriminator="kind")]
SCHEDULE_KINDS = ("fixed", "curriculum", "adr")


class Randomization(StrictModel):
    """What is randomized during training.

    Attributes:
        enabled: ``false`` trains at nominal dynamics only.
        parameters: names to randomize (default: all the robot's parameters).
        ranges: per-parameter range overrides, ``[low, high]`` or a mapping with ``low``, ``high``, ``distribution``;
            or the path of a YAML written by ``simreal sysid`` (its ``ranges``, and its ``effects`` unless
            ``effects`` is set here).
        effects: unmodeled effects applied during training (delay, noise, bias): fixed values, or ranges drawn per
            episode.
        schedule: how the ranges evolve: ``fixed``, ``curriculum`` or ``adr``.
    """

    enabled: bool = True
    parameters: list[str] | None = None
    ranges: dict[str, Any] | str = Field(default_factory=dict)
    effects: EffectsConfig = Field(default_factory=EffectsConfig)
    schedule: ScheduleConfig = Field(default_factory=FixedScheduleConfig)


class Network(StrictModel):
    """Network sizes and activation. ``pi`` is the actor; ``vf`` the PPO critic; ``qf`` the SAC critics."""

    pi: list[int] = Field(default_factory=lambda: [64, 64])
    vf: list[int] = Field(default_factory=lambda: [64, 64])
    qf: list[int] = Field(default_factory=lambda: [256, 256])
    # by name, mapped to torch modules in simreal.runs.algorithms: a config never has code evaluated
    activation: Literal["tanh", "relu", "elu", "leaky_relu", "gelu", "silu"] = "tanh"
    log_std_init: float = 0.0
    ortho_init: bool = True

    @model_validator(mode="after")
    def _sizes(self) -> Network:
        for name in ("pi", "vf", "qf"):
            if any(size <= 0 for size in getattr(self, name)):
                raise ValueError(f"{name}: layer sizes must be > 0")
        return self


class PPOHyperparameters(StrictModel):
    """stable-baselines3 PPO arguments (same names, same meaning)."""

    learning_rate: float = Field(default=3e-4, gt=0)
    n_steps: int = Field(default=2048, gt=0)
    batch_size: int = Field(default=64, gt=0)
    n_epochs: int = Field(default=10, gt=0)
    gamma: float = Field(default=0.99, gt=0, le=1)
    gae_lambda: float = Field(default=0.95, ge=0, le=1)
    clip_range: float = Field(default=0.2, gt=0)
    ent_coef: float = Field(default=0.0, ge=0)
    vf_coef: float = Field(default=0.5, ge=0)
    max_grad_norm: float = Field(default=0.5, gt=0)
    target_kl: float | None = Field(default=None, gt=0)
    linear_lr_decay: bool = False


class SACHyperparameters(StrictModel):
    """stable-baselines3 SAC arguments (same names, same meaning)."""

    learning_rate: float = Field(default=3e-4, gt=0)
    buffer_size: int = Field(default=1_000_000, gt=0)
    learning_starts: int = Field(default=10_000, ge=0)
    batch_size: int = Field(default=256, gt=0)
    tau: float = Field(default=0.005, gt=0, le=1)
    gamma: float = Field(default=0.99, gt=0, le=1)
    train_freq: int = Field(default=1, gt=0)
    gradient_steps: int = Field(default=1, ge=-1)
    ent_coef: str | float = "auto"


class PPOAlgorithm(StrictModel):
    """PPO from stable-baselines3.

    Attributes:
        privileged_critic: an asymmetric actor-critic: the value function also sees the episode's true
            log-multipliers and drawn effects (only while training in simulation); the actor sees what a robot has.
    """

    name: Literal["ppo"] = "ppo"
    hyperparameters: PPOHyperparameters = Field(default_factory=PPOHyperparameters)
    network: Network = Field(default_factory=Network)
    privileged_critic: bool = False


class SACAlgorithm(StrictModel):
    """SAC from stable-baselines3.

    Attributes:
        privileged_critic: an asymmetric actor-critic: the Q-functions also see the episode's true
            log-multipliers and drawn effects (only while training in simulation); the actor sees what a robot has.
    """

    name: Literal["sac"]
    hyperparameters: SACHyperparameters = Field(default_factory=SACHyperparameters)
    network: Network = Field(default_factory=Network)
    privileged_critic: bool = False


Algorithm = Annotated[PPOAlgorithm | SACAlgorithm, Field(discriminator="name")]


class Normalize(StrictModel):
    """VecNormalize: running mean/std of observations and returns."""

    observations: bool = True
    rewards: bool = True
    clip_obs: float = Field(default=10.0, gt=0)
    clip_reward: float = Field(default=10.0, gt=0)


class EnvConfig(StrictModel):
    """The vectorized training envs.

    Attributes:
        n_envs: envs stepped together.
        vec_env: ``dummy`` (in this process, batched) or ``subproc`` (one process each).
        normalize: VecNormalize.
        history: feed the policy the last ``history`` observations and actions
            (:class:`~simreal.envs.history.HistoryObservation`; 0: the current observation only). Every env built
            for the policy (evaluation, collection) gets the same input.
    """

    n_envs: int = Field(default=1, gt=0)
    vec_env: Literal["dummy", "subproc"] = "dummy"
    normalize: Normalize = Field(default_factory=Normalize)
    history: int = Field(default=0, ge=0, le=1000)


class Evaluation(StrictModel):
    """Periodic evaluation during training.

    Attributes:
        frequency: every this many total timesteps (summed over envs); 0 turns it off.
        episodes: episodes per evaluated env.
        targets: target names or files (default: every target the robot ships).
        video_steps: with each evaluation and at the end of training, log a video of this many steps (one episode,
            deterministic) on nominal dynamics and on each target to TensorBoard (``eval/video/<env>``); 0: none.
            Needs a rendering backend (``MUJOCO_GL``).
        video_size: width and height of those videos, in pixels.
    """

    frequency: int = Field(default=50_000, ge=0)
    episodes: int = Field(default=5, gt=0)
    targets: list[str] | None = None
    video_steps: int = Field(default=0, ge=0)
    video_size: int = Field(default=128, ge=16, le=1024)


class Checkpoint(StrictModel):
    """Checkpoints: every this many total timesteps (summed over envs); 0 saves only at the end."""

    frequency: int = Field(default=100_000, ge=0)
    keep: int = Field(default=2, gt=0)


class OSIConfig(StrictModel):
    """UP-OSI's online system identification network and how it is trained after the universal policy.

    Attributes:
        hidden: hidden layer sizes of the MLP.
        iterations: rounds of rollouts and supervised fitting: the first with the true multipliers driving the
            policy, the later ones with the network's own estimates (DAgger-like, as in Yu et al. 2017); the data
            are aggregated.
        episodes: rollouts on the training distribution per round.
        epochs: passes over the aggregated data per round.
        learning_rate: Adam's.
        batch_size: samples per gradient step.
    """

    hidden: list[int] = Field(default_factory=lambda: [128, 128])
    iterations: int = Field(default=3, ge=1)
    episodes: int = Field(default=20, ge=1)
    epochs: int = Field(default=30, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=256, gt=0)


class RMAConfig(StrictModel):
    """RMA's latent, encoder and adaptation module, and how the module is trained after the base policy.

    Attributes:
        latent: size of the latent ``z``.
        encoder: hidden sizes of the encoder ``mu(e)``.
        channels: channels of the adaptation module's 1-D convolutions.
        kernel: their kernel size (time steps).
        iterations: rounds of on-policy collection (the policy acting on the module's estimate) and fitting.
        steps: env steps collected per round.
        epochs: passes over each round's data.
        learning_rate: Adam's.
        batch_size: samples per gradient step.
    """

    latent: int = Field(default=8, ge=1)
    encoder: list[int] = Field(default_factory=lambda: [64, 64])
    channels: int = Field(default=32, ge=1)
    kernel: int = Field(default=5, ge=1)
    iterations: int = Field(default=5, ge=1)
    steps: int = Field(default=20_000, ge=1)
    epochs: int = Field(default=5, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    batch_size: int = Field(default=256, gt=0)


class AdaptationConfig(StrictModel):
    """Online adaptation: a policy that adapts to the dynamics from what it observes. ``uposi``: the policy sees the
    log-multipliers, true while training, estimated from the last ``history`` observations and actions when
    deployed; ``rma``: the policy sees a latent encoded from them, later estimated from the history by an
    adaptation module inside the policy. ``none``: a plain policy.

    Attributes:
        kind: ``none``, ``uposi`` or ``rma``.
        history: steps of observations and actions the estimator reads.
        parameters: the parameters the policy sees and the estimator estimates (default: every randomized physical
            parameter).
        osi: UP-OSI's estimator.
        rma: RMA's latent and adaptation module.
    """

    kind: Literal["none", "uposi", "rma"] = "none"
    history: int = Field(default=10, ge=1, le=1000)
    parameters: list[str] | None = None
    osi: OSIConfig = Field(default_factory=OSIConfig)
    rma: RMAConfig = Field(default_factory=RMAConfig)


class RobustObjective(StrictModel):
    """The training objective over the randomized dynamics: ``none``, plain domain randomization (every episode drawn
    from the training distribution, the average return maximized), or ``weakest``: draw more often where the policy
    is weakest (see :class:`simreal.train.weakest_region.WeakestRegionSchedule`), so it cannot buy average return by
    giving up a region of its training range. The other fields are the weakest-region objective's (kept, unused,
    with ``none``: one key turns it off).

    With ``weakest`` each randomized parameter's (and drawn effect's) range is cut into ``bins``; every training
    episode's return joins the bin its value fell in, on every axis. With ``probability`` an episode draws one axis
    inside that axis's weakest bin (lowest mean of its last ``window`` returns), the others as usual; the axis is
    chosen in proportion to how far its weakest bin lies below its other bins beyond noise (none: a plain episode).

    Attributes:
        method: ``none`` or ``weakest``.
        probability: the share of focused episodes, in (0, 1].
        bins: bins per axis (an integer effect: at most one per value).
        window: returns remembered per bin.
    """

    method: Literal["none", "weakest"] = "none"
    probability: float = Field(default=0.5, gt=0, le=1)
    bins: int = Field(default=8, ge=2, le=100)
    window: int = Field(default=50, ge=2)


class TrainConfig(StrictModel):
    """A training experiment."""

    robot: str | dict[str, Any]
    seed: int = Field(default=0, ge=0)
    total_timesteps: int = Field(gt=0)
    randomization: Randomization = Field(default_factory=Randomization)
    algorithm: Algorithm = Field(default_factory=PPOAlgorithm)
    env: EnvConfig = Field(default_factory=EnvConfig)
    eval: Evaluation = Field(default_factory=Evaluation)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    adaptation: AdaptationConfig = Field(default_factory=AdaptationConfig)
    robust: RobustObjective = Field(default_factory=RobustObjective)
    torch_threads: int | None = Field(default=None, gt=0)


def parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """Parse ``key=value`` strings; values are YAML (``3``, ``1e-4``, ``[64, 64]``, ``true``, ``null``).

    Raises:
        ConfigError: a pair without ``=`` or with an empty key.
    """
    parsed = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {pair!r}: expected key=value with a dotted key, e.g. algorithm.name=sac")
        try:
            value = parse_yaml(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        parsed.append((key.strip(), value))
    return parsed


def apply_overrides(data: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Set each dotted key in a copy of the raw config mapping (validation happens afterwards)."""
    data = copy.deepcopy(data)
    for key, value in overrides:
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key}: {part} is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


ConfigKind = Literal["train", "transfer"]


def shipped_configs(kind: ConfigKind | None = None) -> list[str]:
    """The names of the shipped configs, sorted; with ``kind``, only training configs or only transfer pipelines
    (``kind: transfer`` in the file)."""
    names = []
    for path in configs_dir().glob("*.yaml"):
        data = parse_yaml(path.read_text(encoding="utf-8"))
        found: ConfigKind = "transfer" if isinstance(data, dict) and data.get("kind") == "transfer" else "train"
        if kind is None or found == kind:
            names.append(path.stem)
    return sorted(names)


def resolve_config_path(config: str | os.PathLike[str], kind: ConfigKind | None = None) -> Path:
    """A config path as given, or the name of a shipped config (``hopper_ppo_dr`` or ``hopper_ppo_dr.yaml``).

    Args:
        config: a path or a shipped config's name.
        kind: the kind of config the caller runs: an unknown name lists only the shipped configs of that kind.

    Raises:
        ConfigError: a bare name that is neither a file nor a shipped config (the message lists the shipped ones).
    """
    path = Path(config)
    if path.exists():
        return path
    shipped = configs_dir() / (path.name if path.suffix else f"{path.name}.yaml")
    if len(path.parts) == 1 and shipped.exists():
        return shipped
    if len(path.parts) == 1 and path.suffix in ("", ".yaml", ".yml"):
        raise ConfigError(unknown_name("config", str(config), [*shipped_configs(kind), "or a YAML file"]))
    return path


class ConfigSource:
    """Where each field of a config came from: a ``--set`` override or the file, to name it in errors.

    Args:
        path: the config file.
        overrides: the parsed ``key=value`` overrides, in order.
        labels: how the caller names an override key it set on the user's behalf (the CLI's ``--seed`` sets
            ``seed``): errors about that field name the label, not ``--set key``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        overrides: list[tuple[str, Any]] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.path = str(path)
        self.keys = [key for key, _ in overrides or []]
        self.labels = dict(labels or {})

    def where(self, field: str) -> str:
        """``--set key: field`` when an override set ``field`` (or a mapping holding it), else ``file: field``."""
        for key in reversed(self.keys):  # the last override of a field wins
            shown = self.labels.get(key, f"override {key}")
            if field == key:
                return shown
            if field.startswith(f"{key}.") or key.startswith(f"{field}."):
                return f"{shown}: {field}"
        return f"{self.path}: {field}" if field else self.path


def load_config(config: str | os.PathLike[str], overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a training config (its schema only: :func:`simreal.runs.setup.load_setup`
    also checks it against the robot).

    Args:
        config: a YAML path, or the name of a shipped config.
        overrides: ``key=value`` strings with dotted keys.

    Raises:
        ConfigError: missing or malformed file, unknown key, wrong type, out-of-range value; the message names the
            file and the field, or the ``--set`` key that set it.
    """
    return load_config_with_source(config, overrides)[0]


def load_config_with_source(
    config: str | os.PathLike[str], overrides: list[str] | None = None, labels: Mapping[str, str] | None = None
) -> tuple[TrainConfig, ConfigSource]:
    """:func:`load_config`, and where each field came from (for the errors of later checks; ``labels``: see
    :class:`ConfigSource`)."""
    data, source = read_config(config, "train", overrides, labels)
    return validate_config(data, source), source


def read_config(
    config: str | os.PathLike[str],
    kind: ConfigKind,
    overrides: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], ConfigSource]:
    """A config's raw mapping with its ``key=value`` overrides applied (validation is the caller's, by kind), and
    where each field came from.

    Raises:
        ConfigError: an unknown shipped name, a missing or malformed file, a malformed override.
    """
    path = resolve_config_path(config, kind)
    pairs = parse_overrides(overrides or [])
    return apply_overrides(read_yaml(path, ConfigError), pairs), ConfigSource(path, pairs, labels)


def validate_config(data: dict[str, Any], source: ConfigSource) -> TrainConfig:
    """Validate a raw config mapping; a ``randomization.ranges`` path is replaced by the ranges in that file.

    Raises:
        ConfigError: naming the field and where it came from.
    """
    if isinstance(data, dict) and data.get("kind") == "transfer":
        raise ConfigError(f"{source.where('kind')}: a transfer pipeline's config: run it with simreal transfer")
    try:
        parsed = TrainConfig.model_validate(data)
    except ValidationError as exc:
        field, message = validation_problem(exc, drop=("ppo", "sac", *SCHEDULE_KINDS))
        raise ConfigError(f"{source.where(field)}: {message}") from None
    if isinstance(parsed.robot, str) and Path(parsed.robot).suffix in (".yaml", ".yml"):
        # the run keeps the robot file's content, not a path that may change or move
        robot = read_yaml(parsed.robot, ConfigError)
        robot.setdefault("robot", Path(parsed.robot).stem)
        parsed = parsed.model_copy(update={"robot": robot})
    if isinstance(parsed.randomization.ranges, str):
        # the run keeps the ranges themselves, not a path that may change or move
        where = source.where("randomization.ranges")
        ranges, effects = from_sysid_file(parsed.randomization.ranges, robot_label(parsed.robot), where)
        update: dict[str, Any] = {"ranges": ranges}
        if "effects" not in (data.get("randomization") or {}):
            # the identified delay and noise, unless the config names its own
            update["effects"] = EffectsConfig(**effects.model_dump())
        parsed = parsed.model_copy(update={"randomization": parsed.randomization.model_copy(update=update)})
    return parsed


def from_sysid_file(path: str, robot: str, where: str) -> tuple[dict[str, list[float]], Effects]:
    """The training ranges and the effects in a YAML written by ``simreal sysid``.

    Raises:
        ConfigError: the file is missing, malformed, for another robot, or holds no ranges.
    """
    try:
        spec, _, target = load_target_file(path)
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if spec.robot != robot:
        raise ConfigError(f"{where}: {path}: base: ranges for {spec.robot}, not {robot}")
    if not target.ranges:
        raise ConfigError(f"{where}: {path}: ranges: none in the file (write it with simreal sysid)")
    return {name: list(bounds) for name, bounds in target.ranges.items()}, target.effects


def config_table(config: TrainConfig) -> list[tuple[str, str]]:
    """The resolved config flattened to ``(dotted key, value)`` rows, for logs and TensorBoard."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            rows.append((prefix, yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()))

    walk("", config.model_dump(mode="json"))
    return rows
