"""Coverage of a robustness map: how much of a policy's training range keeps its return near nominal.

:func:`map_coverage` reads a computed :class:`~simreal.tools.robustness.RobustnessMap` (nothing is evaluated here)
and gives, for each policy of the map and each axis:

- the **nominal return**: the policy's mean return at nominal dynamics (every multiplier 1, every effect off), from
  the map's nominal cell when the grid has one, else from :attr:`RobustnessMap.nominal`, the extra cell that
  :func:`~simreal.tools.robustness.robustness_map` evaluates at nominal with the same episodes as every other cell;
- the **worst cell inside the training range** (lowest mean return among the cells whose value lies in the policy's
  training range), its mean return relative to the nominal return, and a 95% bootstrap interval of that ratio;
- the **fraction of the training range** where the mean return stays at or above :data:`THRESHOLD` (70%) of the
  nominal return.

A 2-D map gets each axis's figures on the slice where the other axis is nominal (when its nominal value is on the
grid), and the in-range region as a whole. An axis without a training range (not randomized in training, or a
second policy whose ranges the map does not hold) gets no figures and a reason: a range is never invented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from simreal.envs.spec import STEP_EFFECTS
from simreal.evaluate.gap import RESAMPLES

if TYPE_CHECKING:
    from simreal.tools.grid import Axis
    from simreal.tools.robustness import RobustnessMap

#: The share of the nominal return a cell must keep to count as covered.
THRESHOLD = 0.7
#: Tolerance when comparing a grid value with a range's bound or a nominal value (grids come from ``linspace``).
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class AxisCoverage:
    """One axis's coverage figures (a 1-D map, or a 2-D map's slice with the other axis nominal), or a 2-D map's
    in-range region (both axes).

    Attributes:
        training: the policy's training range of each axis measured (``None``: no range known).
        worst_cell: the worst in-range cell's value on every axis of the map (a slice's other axis: nominal).
        worst_return: that cell's mean return.
        worst_relative: ``worst_return / nominal return``.
        worst_relative_ci: its 95% bootstrap interval (percentile method), resampling the episodes jointly in every
            cell (the same episode seeds in every cell, the nominal one included).
        fraction_at_70: the fraction (0..1) of the training range where the mean return is at least
            :data:`THRESHOLD` times the nominal return, over the part of the range the grid spans.
        measured_by: how that fraction is measured: ``"length"``, the share of the range's length where the mean
            return, interpolated linearly between neighbouring cells, is at or above the threshold (a continuous
            axis); ``"cells"``, the share of in-range cells at or above it (the delay, whose values are whole steps,
            and a 2-D region).
        range_on_grid: the share of the training range (its length; the delay: its whole steps; a region: the
            product over its axes) that the grid spans; the figures describe that part only.
        reason: why some figures are ``None`` (``None`` when every figure is given).
    """

    training: dict[str, tuple[float, float] | None]
    worst_cell: dict[str, float] | None = None
    worst_return: float | None = None
    worst_relative: float | None = None
    worst_relative_ci: tuple[float, float] | None = None
    fraction_at_70: float | None = None
    measured_by: str | None = None
    range_on_grid: float | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (ranges and intervals as lists)."""
        return {
            "training": {name: list(r) if r else None for name, r in self.training.items()},
            "worst_cell": self.worst_cell,
            "worst_return": self.worst_return,
            "worst_relative": self.worst_relative,
            "worst_relative_ci95": list(self.worst_relative_ci) if self.worst_relative_ci else None,
            "fraction_at_70": self.fraction_at_70,
            "measured_by": self.measured_by,
            "range_on_grid": self.range_on_grid,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Coverage:
    """One policy's coverage of its training range on a map.

    Attributes:
        policy: the policy's path, as the map's ``meta`` records it.
        nominal_return: its mean return at nominal dynamics (``None``: the map holds no nominal cell).
        nominal_from: ``"grid"`` (the map's nominal cell) or ``"evaluation"`` (the extra nominal cell), or ``None``.
        axes: per axis (the map's order), its figures.
        region: a 2-D map's in-range region as a whole (``None`` for a 1-D map).
    """

    policy: str | None
    nominal_return: float | None
    nominal_from: str | None
    axes: dict[str, AxisCoverage]
    region: AxisCoverage | None = None

    @property
    def threshold(self) -> float:
        """The share of the nominal return that counts as covered (:data:`THRESHOLD`)."""
        return THRESHOLD

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``policy``, ``threshold``, ``nominal_return``, ``nominal_from``, ``axes`` and ``region``."""
        return {
            "policy": self.policy,
            "threshold": self.threshold,
            "nominal_return": self.nominal_return,
            "nominal_from": self.nominal_from,
            "axes": {name: axis.as_dict() for name, axis in self.axes.items()},
            "region": self.region.as_dict() if self.region else None,
        }


def map_coverage(result: RobustnessMap, seed: int | None = None) -> dict[str, Coverage]:
    """Each policy's coverage of its training range on a map.

    Args:
        result: a computed map (1-D or 2-D, with or without a comparison).
        seed: seed of the bootstrap (default: the map's ``meta["seed"]``, else 0).

    Returns:
        ``{"policy": ...}``, and ``"against": ...`` for a comparison (over the second policy's own training ranges,
        :attr:`RobustnessMap.against_training`, and its own nominal return).
    """
    seed = result.meta.get("seed", 0) if seed is None else seed
    training = {axis.name: axis.training for axis in result.axes}
    coverages = {"policy": _policy_coverage(result, _Side(result.returns, result.nominal, training), seed)}
    if result.against is not None:
        against_training: dict[str, tuple[float, float] | None]
        if result.against_training is None:
            against_training = {axis.name: None for axis in result.axes}
            unknown = "the second policy's training ranges are not recorded in the map"
        else:
            against_training = {axis.name: result.against_training.get(axis.name) for axis in result.axes}
            unknown = None
        side = _Side(result.against, result.against_nominal, against_training, unknown, result.meta.get("against"))
        coverages["against"] = _policy_coverage(result, side, seed)
    return coverages


@dataclass(frozen=True)
class _Side:
    """One policy's side of a map: its returns per cell, its nominal return (``None``: not measured), its training
    range per axis (``None``: not randomized, or not recorded, which ``unknown`` then says) and its path."""

    returns: list[list[float]]
    nominal: list[float] | None
    training: dict[str, tuple[float, float] | None]
    unknown: str | None = None
    policy: str | None = None


def _policy_coverage(result: RobustnessMap, side: _Side, seed: int) -> Coverage:
    index = result.nominal_index()
    nominal_from: str | None
    if index is not None:
        side, nominal_from = replace(side, nominal=side.returns[index]), "grid"
    else:
        nominal_from = "evaluation" if side.nominal is not None else None
    rng = np.random.default_rng(seed)
    axes = result.axes
    per_axis = {}
    for position, axis in enumerate(axes):
        cells = _slice(result, position)
        if cells is None:
            other = axes[1 - position]
            reason = f"{other.name}'s nominal value {other.nominal:g} is not on the grid: no slice through nominal"
            per_axis[axis.name] = AxisCoverage({axis.name: side.training[axis.name]}, reason=reason)
            continue
        per_axis[axis.name] = _coverage(
            result, side, [axis], cells, rng, fraction_by_length=axis.name not in STEP_EFFECTS
        )
    region = None
    if len(axes) == 2:
        everything = list(range(len(side.returns)))
        region = _coverage(result, side, axes, everything, rng, fraction_by_length=False)
    mean = float(np.mean(side.nominal)) if side.nominal is not None else None
    return Coverage(side.policy, mean, nominal_from, per_axis, region)


def _slice(result: RobustnessMap, position: int) -> list[int] | None:
    """The cells along ``axes[position]`` (a 2-D map: with the other axis at its nominal value; ``None`` when that
    value is not on the grid), as indices in the map's cell order."""
    axes = result.axes
    count = len(axes[position].values)
    if len(axes) == 1:
        return list(range(count))
    other = axes[1 - position]
    fixed = other.index(other.nominal)
    if fixed is None:
        return None
    width = len(axes[1].values)  # cell (i, j) is at i * width + j
    return [i * width + fixed for i in range(count)] if position == 0 else [fixed * width + j for j in range(count)]


def _coverage(
    result: RobustnessMap,
    side: _Side,
    measured: list[Axis],
    cells: list[int],
    rng: np.random.Generator,
    fraction_by_length: bool,
) -> AxisCoverage:
    """The figures of one policy's ``side`` over ``cells`` (a line along one axis, or the whole 2-D grid), measured
    on the ``measured`` axes' training ranges."""
    returns, nominal = side.returns, side.nominal
    ranges = {axis.name: side.training[axis.name] for axis in measured}
    missing = [name for name, r in ranges.items() if r is None]
    if missing:
        which = f"{', '.join(missing)}: " if len(measured) > 1 else ""  # a single axis's entry is named already
        reason = (
            side.unknown or f"{which}not randomized in training (trained at the nominal value only): no training range"
        )
        return AxisCoverage(ranges, reason=reason)
    bounds = [(axis, r) for axis in measured if (r := ranges[axis.name]) is not None]
    positions = [result.axes.index(axis) for axis in measured]
    coordinates = result.cells()
    in_range = [
        cell
        for cell in cells
        if all(_in_range(coordinates[cell][p], *r) for p, (_, r) in zip(positions, bounds, strict=True))
    ]
    on_grid = math.prod(_share_on_grid(axis, *r) for axis, r in bounds)
    means = {cell: float(np.mean(returns[cell])) for cell in cells}
    # a ratio to a nominal return that is not positive says nothing about how much of it is kept
    scale = float(np.mean(nominal)) if nominal is not None else math.nan
    relative = nominal is not None and scale > 0
    reasons = []
    if nominal is None:
        reasons.append("no nominal cell in the map")
    elif not relative:
        reasons.append(f"nominal return {scale:.4g} <= 0: no relative figures")
    figures: dict[str, Any] = {"range_on_grid": on_grid}
    if in_range:
        worst = min(in_range, key=lambda cell: means[cell])
        figures["worst_cell"] = {axis.name: coordinates[worst][i] for i, axis in enumerate(result.axes)}
        figures["worst_return"] = means[worst]
        if relative and nominal is not None:
            figures["worst_relative"] = means[worst] / scale
            figures["worst_relative_ci"] = _worst_relative_ci([returns[c] for c in in_range], nominal, rng)
    elif on_grid > 0:
        reasons.append("no grid cell inside the training range")
    if on_grid == 0:
        reasons.append("the grid does not reach the training range")
    elif relative and fraction_by_length:
        x = np.array([coordinates[c][positions[0]] for c in cells])
        y = np.array([means[c] for c in cells])
        fraction = _length_fraction(x, y, *bounds[0][1], THRESHOLD * scale)
        figures.update(fraction_at_70=fraction, measured_by="length")
    elif relative and in_range:
        covered = sum(means[c] >= THRESHOLD * scale for c in in_range)
        figures.update(fraction_at_70=covered / len(in_range), measured_by="cells")
    return AxisCoverage(ranges, **figures, reason="; ".join(reasons) or None)


def _worst_relative_ci(
    cells: list[list[float]], nominal: list[float], rng: np.random.Generator
) -> tuple[float, float] | None:
    """95% percentile interval of ``min(cell means) / nominal mean``, resampling episode indices jointly across the
    cells and the nominal cell (paired: episode ``k`` has the same seed everywhere); ``None`` when the cells hold
    different numbers of episodes (no pairing)."""
    episodes = len(nominal)
    if episodes == 0 or any(len(cell) != episodes for cell in cells):
        return None
    picks = rng.integers(0, episodes, (RESAMPLES, episodes))
    worst = np.asarray(cells, dtype=np.float64)[:, picks].mean(axis=2).min(axis=0)
    scale = np.asarray(nominal, dtype=np.float64)[picks].mean(axis=1)
    ratios = worst[scale > 0] / scale[scale > 0]
    if ratios.size == 0:
        return None
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def _length_fraction(x: np.ndarray, y: np.ndarray, low: float, high: float, threshold: float) -> float:
    """The share of ``[low, high]`` (clipped to the grid's span) where the piecewise-linear curve through
    ``(x, y)`` is at or above ``threshold``; a single point (a pinned range): 1 or 0."""
    low, high = max(low, float(x[0])), min(high, float(x[-1]))
    if high - low <= _TOLERANCE:
        return float(np.interp(low, x, y) >= threshold)
    points = [low, high, *x[(x > low) & (x < high)]]
    for a, b, ya, yb in zip(x[:-1], x[1:], y[:-1], y[1:], strict=True):
        if (ya - threshold) * (yb - threshold) < 0:  # the curve crosses the threshold inside this segment
            points.append(a + (threshold - ya) * (b - a) / (yb - ya))
    edges = np.unique(np.clip(points, low, high))
    middles = (edges[:-1] + edges[1:]) / 2
    above = np.interp(middles, x, y) >= threshold
    return float(np.sum(np.diff(edges)[above]) / (high - low))


def _share_on_grid(axis: Axis, low: float, high: float) -> float:
    """The share of ``[low, high]`` the grid spans: of its length, or (a delay) of its whole steps."""
    values = axis.values
    if axis.name in STEP_EFFECTS:
        steps = math.floor(high + _TOLERANCE) - math.ceil(low - _TOLERANCE) + 1
        return sum(_in_range(v, low, high) for v in values) / steps if steps > 0 else 0.0
    if high - low <= _TOLERANCE:
        return float(values[0] - _TOLERANCE <= low <= values[-1] + _TOLERANCE)
    return max(0.0, min(high, values[-1]) - max(low, values[0])) / (high - low)


def _in_range(value: float, low: float, high: float) -> bool:
    return low - _TOLERANCE <= value <= high + _TOLERANCE
