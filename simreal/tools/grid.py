"""The grid of a robustness map: its axes (a parameter's multipliers or offsets, an effect's steps or noise levels),
each with the policy's training range, the shipped targets' values and the nominal value, and the checks of what a
user asks for (one or two axes, at least two points, ranges within the limits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np

from simreal.envs.spec import EFFECT_NAMES, MAX_DELAY, STEP_EFFECTS, RobotSpec, check_multiplier
from simreal.errors import ConfigError, shown, unknown_name

if TYPE_CHECKING:
    from simreal.runs.setup import TrainingSetup

#: Default grid points per axis.
DEFAULT_POINTS = 9
#: The most grid points on one axis: a curve of a thousand points is finer than any plot shows.
MAX_POINTS = 1000
#: The most cells of a map (a 2-D map of 100 x 100): each cell is ``episodes`` episodes, so more is days of work,
#: and far more an allocation that fails.
MAX_CELLS = 10_000


def check_points(points: int, axes: int) -> None:
    """``points`` per axis on ``axes`` axes make a map of at most :data:`MAX_CELLS` cells, at most
    :data:`MAX_POINTS` per axis, at least 2.

    Raises:
        ConfigError: naming ``points`` and the bound.
    """
    if points < 2:
        raise ConfigError(f"points: at least 2 points per axis, got {points}")
    if points > MAX_POINTS:
        raise ConfigError(f"points: at most {MAX_POINTS} points per axis, got {points}")
    if points**axes > MAX_CELLS:
        raise ConfigError(
            f"points: {points} points on each of {axes} axes make {points**axes} cells, at most {MAX_CELLS}"
        )


@dataclass(frozen=True)
class Axis:
    """One axis of a map.

    Attributes:
        name: a parameter of the robot or an effect.
        values: the grid (multipliers, control steps or standard deviations), increasing.
        training: the policy's training range on this axis (``None``: trained at the nominal value only).
        targets: the shipped targets' value on this axis.
        neutral: the value at nominal dynamics (1.0 for a multiplier; 0.0 for an effect or an offset).
    """

    name: str
    values: tuple[float, ...]
    training: tuple[float, float] | None
    targets: dict[str, float]
    neutral: float = 1.0

    @property
    def effect(self) -> bool:
        return self.name in EFFECT_NAMES

    @property
    def nominal(self) -> float:
        return 0.0 if self.effect else self.neutral

    def index(self, value: float) -> int | None:
        """The grid index of ``value`` (compared with a relative tolerance of 1e-9), ``None`` when it is not on
        the grid."""
        for index, candidate in enumerate(self.values):
            if math.isclose(candidate, value, rel_tol=1e-9, abs_tol=1e-12):
                return index
        return None


def nominal_index(axes: Sequence[Axis]) -> int | None:
    """The flat index (``itertools.product`` order) of the cell at nominal dynamics, ``None`` when the grid has none."""
    indices = [axis.index(axis.nominal) for axis in axes]
    if any(index is None for index in indices):
        return None
    flat = 0
    for axis, index in zip(axes, indices, strict=True):
        flat = flat * len(axis.values) + cast(int, index)
    return flat


def grid_axes(
    spec: RobotSpec,
    names: Sequence[str],
    training: dict[str, tuple[float, float]],
    points: int = DEFAULT_POINTS,
    spans: Sequence[tuple[float, float]] = (),
) -> list[Axis]:
    """The axes of a map over ``names`` (one or two parameters or effects).

    Args:
        spec: the robot.
        names: the axes, by name.
        training: the policy's training ranges by name (parameters and drawn effects; a fixed effect as
            ``(value, value)``).
        points: grid points per axis (a delay axis keeps whole steps only, so it may have fewer).
        spans: ``(low, high)`` per axis, or one for all; default: the training range, the nominal value and every
            shipped target's value, widened by a quarter of their span on each side (within the parameter's hard
            limits).

    Raises:
        ConfigError: naming the argument at fault (``params``, ``points``, ``spans``).
    """
    if not 1 <= len(names) <= 2:
        raise ConfigError(f"params: one or two axes, got {len(names)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"params: {', '.join(names)}: an axis appears twice")
    check_points(points, len(names))
    if len(spans) not in (0, 1, len(names)):
        raise ConfigError(f"spans: give one range for every axis or one per axis ({len(names)}), got {len(spans)}")
    axes = []
    for index, name in enumerate(names):
        if name not in spec.parameters and name not in EFFECT_NAMES:
            raise ConfigError("params: " + unknown_name("parameter or effect", name, [*spec.parameters, *EFFECT_NAMES]))
        targets = {
            target: float(getattr(t.effects, name))
            if name in EFFECT_NAMES
            else t.parameters.get(name, spec.parameters[name].neutral)
            for target, t in spec.targets.items()
        }
        span = spans[0] if len(spans) == 1 else spans[index] if spans else None
        trained = training.get(name)
        low, high = span if span is not None else _default_span(spec, name, trained, targets)
        _check_span(spec, name, low, high)
        values = np.linspace(low, high, points)
        if name in STEP_EFFECTS:
            values = np.unique(np.round(values))
        neutral = 0.0 if name in EFFECT_NAMES else spec.parameters[name].neutral
        axes.append(Axis(name, tuple(float(v) for v in values), trained, targets, neutral))
    return axes


def _default_span(
    spec: RobotSpec, name: str, trained: tuple[float, float] | None, targets: dict[str, float]
) -> tuple[float, float]:
    nominal = 0.0 if name in EFFECT_NAMES else spec.parameters[name].neutral
    seen = [nominal, *targets.values(), *(trained or ())]
    low, high = min(seen), max(seen)
    if high == low:  # an effect (or an offset) that nothing uses: show a little of it
        if name in EFFECT_NAMES:
            high = 3.0 if name in STEP_EFFECTS else 0.05
        elif spec.parameters[name].offset:  # a tenth of its limits either side
            scale = spec.parameters[name].scale / 10
            low, high = max(spec.parameters[name].hard_limits[0], -scale), scale
        else:
            low, high = 0.5, 1.5
    pad = 0.25 * (high - low)
    if name in EFFECT_NAMES:
        return max(0.0, low - pad), min(float(MAX_DELAY), high + pad) if name in STEP_EFFECTS else high + pad
    limit_low, limit_high = spec.parameters[name].hard_limits
    return max(limit_low, low - pad), min(limit_high, high + pad)


def _check_span(spec: RobotSpec, name: str, low: float, high: float) -> None:
    if not low < high:
        raise ConfigError(f"spans: {name}: low {low:g} must be below high {high:g}")
    if name in EFFECT_NAMES:
        if low < 0 or (name in STEP_EFFECTS and high > MAX_DELAY):
            top = f"{MAX_DELAY}" if name in STEP_EFFECTS else "inf"
            raise ConfigError(f"spans: {name}: [{low:g}, {high:g}] is outside [0, {top}]")
        return
    limit_low, limit_high = spec.parameters[name].hard_limits
    try:
        check_multiplier(spec.parameters[name].kind, low)
    except ValueError as exc:
        raise ConfigError(f"spans: {name}: {exc}") from None
    if low < limit_low or high > limit_high:
        raise ConfigError(f"spans: {name}: [{low:g}, {high:g}] is outside its limits [{limit_low:g}, {limit_high:g}]")


def parse_span(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` as two floats (raises :class:`ConfigError` naming ``spans``)."""
    pieces = text.split(":")
    try:
        if len(pieces) != 2:
            raise ValueError
        return float(pieces[0]), float(pieces[1])
    except ValueError:
        raise ConfigError(f"spans: expected LOW:HIGH (e.g. 0.5:1.5), got {shown(text)}") from None


def training_ranges(setup: TrainingSetup) -> dict[str, tuple[float, float]]:
    """The training ranges of a resolved run (:class:`~simreal.runs.setup.TrainingSetup`) by name: its drawn
    parameters and effects, and its fixed effects as a point."""
    ranges = {name: (r.low, r.high) for name, r in setup.ranges.items()}
    for name in EFFECT_NAMES:
        value = float(getattr(setup.effects, name))
        if name not in ranges and value:
            ranges[name] = (value, value)
    return ranges
