"""A training config resolved once, at the top, into what the stages need.

:func:`load_setup` reads and validates a config (:mod:`simreal.runs.config_files`), then loads the robot's spec once,
resolves the training ranges, the effects, the evaluation targets and the schedule's limits once, and hands them
down as a :class:`TrainingSetup`: the vectorized envs, the evaluator and the schedule take these pieces and never
reload the spec or re-resolve the config.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simreal.envs.coordinates import offset_scales
from simreal.envs.factory import robot_sizes
from simreal.envs.inputs import DynamicsSource, InputLayout
from simreal.envs.privileged import DynamicsInputSpec, PrivilegedSpec
from simreal.envs.ranges import effect_ranges, resolve_ranges
from simreal.envs.robots import load_robot, load_targets
from simreal.envs.spec import EFFECT_NAMES, Effects, ParameterRange, RobotSpec, TargetSpec
from simreal.errors import ConfigError, SpecError, unknown_name
from simreal.runs.config import ADRConfig, TrainConfig
from simreal.runs.config_files import (
    ConfigSource,
    apply_overrides,
    load_config_with_source,
    parse_overrides,
    validate_config,
)
from simreal.runs.rundir import CONFIG, saved_config


@dataclass(frozen=True)
class TrainingSetup:
    """Everything a training run needs, resolved.

    Attributes:
        config: the validated config (what the run directory saves).
        spec: the robot.
        ranges: the full training distributions (empty when randomization is off: nominal dynamics), the drawn
            effects among them (:data:`~simreal.envs.spec.EFFECT_NAMES`).
        effects: the fixed unmodeled effects applied during training.
        history: the policy's input holds the last this many observations and actions (0: the observation only).
        targets: the evaluation targets by name (the config's, else every target the robot ships).
        schedule_limits: ADR's hard limits per parameter (empty for other schedules).
        adaptive: the parameters an adaptive policy sees (empty: a plain policy).
    """

    config: TrainConfig
    spec: RobotSpec
    ranges: dict[str, ParameterRange]
    effects: Effects
    targets: dict[str, TargetSpec]
    schedule_limits: dict[str, tuple[float, float]] = field(default_factory=dict)
    adaptive: tuple[str, ...] = ()

    @property
    def history(self) -> int:
        return self.config.env.history

    @property
    def dynamics_input(self) -> DynamicsInputSpec | None:
        """What the policy's input holds beyond the robot's observation, as every env but the training envs build
        it: an adaptive policy's true log-multipliers and RMA's history after them, an asymmetric critic's padded
        privileged inputs last (``None``: neither)."""
        privileged = self.privileged
        if not self.adaptive and privileged is None:
            return None
        adaptation = self.config.adaptation
        history = adaptation.history if adaptation.kind == "rma" else 0
        offsets = tuple(offset_scales(self.spec, self.adaptive).items())
        return DynamicsInputSpec(self.adaptive, history=history, privileged=privileged, offsets=offsets)

    @property
    def training_input(self) -> DynamicsInputSpec | None:
        """:attr:`dynamics_input` as the training envs build it: the critic's privileged inputs are read."""
        spec = self.dynamics_input
        if spec is None or spec.privileged is None:
            return spec
        return replace(spec, privileged=spec.privileged.read())

    @property
    def privileged(self) -> PrivilegedSpec | None:
        """An asymmetric critic's privileged inputs (``algorithm.privileged_critic``), padded: every randomized
        parameter's log-multiplier, then every drawn effect, with fixed statistics over its widest training range
        (ADR: its limits) as if log-uniform (a parameter) or uniform (an effect); ``None`` without one."""
        if not self.config.algorithm.privileged_critic:
            return None
        names, means, variances = [], [], []
        for name in self.ranges:
            mean, variance = self._fixed_statistics(name)
            names.append(name)
            means.append(mean)
            variances.append(variance)
        offsets = tuple(offset_scales(self.spec, names).items())
        return PrivilegedSpec(tuple(names), tuple(means), tuple(variances), offsets=offsets)

    def _fixed_statistics(self, name: str) -> tuple[float, float]:
        """The mean and variance of a drawn quantity over its widest range: a parameter's log-multiplier as if
        log-uniform, an effect's value as if uniform (the delay: over its whole steps); never a variance of 0 (a
        pinned parameter's: 1e-4; an effect's, whose values are small: 1e-8)."""
        low, high = self.schedule_limits.get(name) or (self.ranges[name].low, self.ranges[name].high)
        if name in EFFECT_NAMES:
            if self.ranges[name].distribution == "integer":
                count = round(high - low) + 1
                return float((low + high) / 2), max((count**2 - 1) / 12, 1e-4)
            return float((low + high) / 2), max((high - low) ** 2 / 12, 1e-8)
        param = self.spec.parameters[name]
        if param.offset:  # divided by its scale, as if uniform
            low, high = low / param.scale, high / param.scale
            return float((low + high) / 2), max((high - low) ** 2 / 12, 1e-4)
        # a range from 0 (a damping's or an armature's limits, as an unidentifiable sysid result gives them): its
        # logarithm from the floor system identification searches from
        log_low, log_high = math.log(max(low, LOG_FLOOR)), math.log(max(high, LOG_FLOOR))
        return float((log_low + log_high) / 2), max((log_high - log_low) ** 2 / 12, 1e-4)

    def input_layout(self, source: DynamicsSource | None = None, estimator_history: int = 0) -> InputLayout:
        """The policy's input layout on this robot.

        Args:
            source: where an adaptive policy's log-multipliers come from (default: the truth, as in training).
            estimator_history: steps the estimator reads (``source == "estimated"``).
        """
        adaptation = self.config.adaptation
        privileged = self.privileged
        observation, action = robot_sizes(self.spec)
        return InputLayout(
            observation,
            action,
            dynamics=self.adaptive,
            source=source or ("true" if self.adaptive else "none"),
            estimator_history=estimator_history,
            raw_history=adaptation.history if self.adaptive and adaptation.kind == "rma" else 0,
            history=self.history,
            privileged=privileged.size if privileged is not None else 0,
            offsets=tuple(offset_scales(self.spec, self.adaptive).items()),
        )

    def pinned(self, layout: InputLayout) -> dict[int, tuple[float, float]]:
        """Fixed normalization statistics of what the policy's input holds about the dynamics: input index ->
        (mean, variance) of each of an adaptive policy's log-multipliers, in every step the history stacks (see
        :meth:`_fixed_statistics`), and (0, 1) for each of an asymmetric critic's privileged inputs (standardized
        already: left as they are).

        Args:
            layout: the policy's input (:meth:`input_layout`).
        """
        pinned: dict[int, tuple[float, float]] = {}
        stacked = layout.size - layout.privileged
        for offset in range(layout.privileged):
            pinned[stacked + offset] = (0.0, 1.0)
        for step in range(max(layout.history, 1)):
            start = step * layout.step_size + layout.observation  # z follows o
            for offset, name in enumerate(layout.dynamics):
                pinned[start + offset] = self._fixed_statistics(name)
        return pinned


#: The smallest multiplier whose logarithm the fixed statistics take (system identification's floor too).
LOG_FLOOR = 1e-3


def load_setup(
    config: str | os.PathLike[str], overrides: list[str] | None = None, labels: Mapping[str, str] | None = None
) -> TrainingSetup:
    """Read, override, validate and resolve a training config.

    Args:
        config: a YAML path, or the name of a shipped config.
        overrides: ``key=value`` strings with dotted keys.
        labels: how errors name an override the caller set for the user (``{"seed": "--seed"}``).

    Raises:
        ConfigError: anything wrong with the file or the config, named by file (or ``--set`` key) and field.
    """
    parsed, source = load_config_with_source(config, overrides, labels)
    return resolve(parsed, source)


def resume_setup(
    run_dir: str | os.PathLike[str],
    config: str | os.PathLike[str] | None = None,
    overrides: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> TrainingSetup:
    """The resolved config a resumed run continues with: the run's own ``config.yaml``.

    A config file or ``--set`` that disagrees with it is refused, except ``--set total_timesteps=N``: the explicit
    way to extend (or restate) a run's budget.

    Args:
        run_dir: the run directory.
        config: a config file or shipped name to check against the run's (optional).
        overrides: ``key=value`` strings; only ``total_timesteps`` may change anything.
        labels: how errors name an override the caller set for the user (``{"seed": "--seed"}``).

    Raises:
        ConfigError: a field that differs from the run's, named with where it came from.
        DataError: not a run directory, or a corrupt ``config.yaml``.
    """
    run_dir = Path(run_dir)
    saved = saved_config(run_dir)
    pairs = parse_overrides(overrides or [])
    if config is not None:
        candidate, source = load_config_with_source(config, overrides, labels)
    else:
        source = ConfigSource(run_dir / CONFIG, pairs, labels)
        candidate = validate_config(apply_overrides(saved.model_dump(mode="json"), pairs), source)
    extends = any(key == "total_timesteps" for key, _ in pairs)
    before, after = _flat(saved.model_dump(mode="json")), _flat(candidate.model_dump(mode="json"))
    for key in [*after, *(k for k in before if k not in after)]:
        if key == "total_timesteps" and extends:
            continue
        if before.get(key) != after.get(key):
            raise ConfigError(
                f"{source.where(key)}: {after.get(key)!r} differs from the run's {before.get(key)!r} "
                "(a resumed run keeps its config; only its total_timesteps may grow)"
            )
    return resolve(candidate, source)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: data}


def resolve(config: TrainConfig, source: ConfigSource | str = "config") -> TrainingSetup:
    """Check a validated config against its robot and resolve it (see :class:`TrainingSetup`).

    Raises:
        ConfigError: unknown robot, parameter or target; bad ranges or limits; naming the field.
    """
    if isinstance(source, str):
        source = ConfigSource(source)
    try:
        spec = load_robot(config.robot)
    except SpecError as exc:
        # an inline robot's errors already start with its field
        message = str(exc).removeprefix("robot: ") if isinstance(config.robot, dict) else str(exc)
        raise ConfigError(f"{source.where('robot')}: {message}") from None
    randomization = config.randomization
    if isinstance(randomization.ranges, str):  # load_config puts the file's ranges in the path's place
        where = source.where("randomization.ranges")
        raise ConfigError(f"{where}: a sysid file's path, unread: load the config with load_config")
    try:
        ranges = resolve_ranges(
            spec,
            randomization.parameters,
            dict(randomization.ranges),
            parameters_source="randomization.parameters",
            ranges_source="randomization.ranges",
        )
        drawn = effect_ranges(randomization.effects.drawn(), "randomization.effects")
    except SpecError as exc:
        field, _, message = str(exc).partition(": ")
        raise ConfigError(f"{source.where(field)}: {message}") from None
    ranges = {**ranges, **drawn}
    schedule = randomization.schedule
    limits = _adr_limits(schedule, spec, ranges, source) if isinstance(schedule, ADRConfig) else {}

    try:
        targets = load_targets(spec, config.eval.targets, lambda index: source.where(f"eval.targets.{index}"))
    except SpecError as exc:
        raise ConfigError(str(exc)) from None

    _check_objective(config, source)
    if config.algorithm.name == "ppo":
        hyper = config.algorithm.hyperparameters
        if hyper.n_steps * config.env.n_envs < 2:
            where = source.where("algorithm.hyperparameters.n_steps")
            raise ConfigError(f"{where}: n_steps * n_envs must be > 1")
    return TrainingSetup(
        config=config,
        spec=spec,
        ranges=ranges if randomization.enabled else {},
        effects=randomization.effects.fixed(),
        targets=targets,
        schedule_limits=limits,
        adaptive=_adaptive(config, ranges, source),
    )


def _check_objective(config: TrainConfig, source: ConfigSource) -> None:
    """The asymmetric critic and the robust objective need what they work on."""
    randomized = config.randomization.enabled
    if config.algorithm.privileged_critic:
        where = source.where("algorithm.privileged_critic")
        if not randomized:
            raise ConfigError(f"{where}: nothing is privileged at nominal dynamics (randomization.enabled: false)")
        if config.adaptation.kind != "none":
            raise ConfigError(
                f"{where}: a {config.adaptation.kind} policy already sees the true parameters while training "
                "(actor and critic): the privileged critic is for plain policies (adaptation.kind: none)"
            )
    if config.robust.method != "none":
        where = source.where("robust.method")
        if not randomized:
            raise ConfigError(f"{where}: needs randomized dynamics (randomization.enabled: true)")
        if config.randomization.schedule.kind == "adr":
            raise ConfigError(
                f"{where}: works with the fixed and curriculum schedules (ADR already draws its own boundary "
                "episodes): with ADR, set robust.method=none"
            )


def _adaptive(config: TrainConfig, ranges: dict[str, ParameterRange], source: ConfigSource) -> tuple[str, ...]:
    """The parameters an adaptive policy sees: the configured ones, each randomized, else every randomized one."""
    adaptation = config.adaptation
    if adaptation.kind == "none":
        return ()
    where = source.where("adaptation.kind")
    if not config.randomization.enabled:
        raise ConfigError(f"{where}: an adaptive policy needs randomized dynamics (randomization.enabled: true)")
    if config.env.history:
        raise ConfigError(f"{where}: the estimator reads adaptation.history itself: set env.history to 0")
    if adaptation.kind == "rma" and config.algorithm.name != "ppo":
        raise ConfigError(f"{where}: rma is built for PPO (its adaptation module lives in PPO's shared extractor)")
    physics = [name for name in ranges if name not in EFFECT_NAMES]
    names = adaptation.parameters if adaptation.parameters is not None else physics
    for index, name in enumerate(names):
        if name not in physics:
            listed = ", ".join(physics) or "none"
            raise ConfigError(
                f"{source.where(f'adaptation.parameters.{index}')}: {name!r} is not randomized (randomized: {listed})"
            )
    if not names:
        raise ConfigError(f"{where}: no randomized physical parameter to adapt to")
    return tuple(names)


def _adr_limits(
    schedule: ADRConfig, spec: RobotSpec, ranges: dict[str, ParameterRange], source: ConfigSource
) -> dict[str, tuple[float, float]]:
    """ADR's hard limits: the configured ``limits``, else each randomized parameter's training range."""
    limits = {name: (r.low, r.high) for name, r in ranges.items()}
    for name, (low, high) in schedule.limits.items():
        where = source.where(f"randomization.schedule.limits.{name}")
        if name not in spec.parameters:
            raise ConfigError(f"{where}: {unknown_name('parameter', name, spec.parameters, spec.robot)}")
        if not low <= 1.0 <= high:
            raise ConfigError(f"{where}: limits [{low}, {high}] do not contain the nominal value 1.0")
        hard_low, hard_high = spec.parameters[name].hard_limits
        if low < hard_low or high > hard_high:
            raise ConfigError(f"{where}: limits [{low}, {high}] pass the parameter's limits [{hard_low}, {hard_high}]")
        limits[name] = (float(low), float(high))
    return limits
