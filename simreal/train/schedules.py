"""Randomization schedules: how the sampled ranges evolve during training.

* :class:`FixedSchedule`: the configured ranges for the whole run.
* :class:`CurriculumSchedule`: every range starts at (or near) the nominal value and widens to its full range over
  a fraction of training, linearly or in steps.
* :class:`ADRSchedule`: Automatic Domain Randomization (OpenAI et al., 2019, "Solving Rubik's Cube with a Robot
  Hand"): ranges start narrow around nominal; boundary episodes pin one parameter to one boundary of its current
  range; when a boundary's buffer of returns is full its mean is compared with two thresholds and the boundary moves
  out (above the high one) or in (below the low one), never past the hard limits.

A robust objective can sit on a fixed or curriculum schedule: the weakest-region objective
(:class:`~simreal.train.weakest_region.WeakestRegionSchedule`) keeps its ranges and draws more episodes where the
policy is currently weakest, so it cannot buy average return by giving up a region. :func:`build_schedule` makes
the schedule a resolved config asks for.

Every schedule follows one protocol, :class:`~simreal.train.protocol.Schedule`: it lives in the training process,
decides the ranges and the sampler the envs draw with, hears every finished episode, and keeps its state as JSON so
that checkpoints carry it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simreal.envs.dynamics import DynamicsSampler
from simreal.envs.spec import EFFECT_NAMES, ParameterRange
from simreal.runs.setup import TrainingSetup
from simreal.train.protocol import Observation, Schedule
from simreal.train.weakest_region import WeakestRegionSchedule

SIDES = ("low", "high")


class FixedSchedule(Schedule):
    """The configured distributions over the configured ranges, all run long."""

    def __init__(self, full: Mapping[str, ParameterRange]) -> None:
        self.full = dict(full)

    def ranges(self) -> dict[str, ParameterRange]:
        return dict(self.full)


def nominal_value(name: str, r: ParameterRange | tuple[float, float], offsets: Collection[str] = ()) -> float:
    """Where a range grows from: a parameter's nominal multiplier 1.0, an effect's or an offset's 0 (``offsets``:
    the parameters that are offsets), or the nearest point of the range to it."""
    low, high = (r.low, r.high) if isinstance(r, ParameterRange) else r
    return min(max(0.0 if name in EFFECT_NAMES or name in offsets else 1.0, low), high)


def _scaled(name: str, r: ParameterRange, width: float, offsets: Collection[str] = ()) -> ParameterRange:
    """``r`` shrunk around its nominal value to ``width`` (0 = that value alone, 1 = all of ``r``); an integer range
    keeps whole-number bounds (a value comes in once the range has grown all the way to it)."""
    a = nominal_value(name, r, offsets)
    low, high = a - width * (a - r.low), a + width * (r.high - a)
    if r.distribution == "integer":
        low, high = float(math.ceil(low - 1e-9)), float(math.floor(high + 1e-9))
    return r.model_copy(update={"low": low, "high": high})


class CurriculumSchedule(FixedSchedule):
    """Ranges that widen from ``initial_fraction`` of their width to all of it over ``ramp_fraction`` of training.

    Args:
        full: the full ranges, reached at ``ramp_fraction``.
        initial_fraction: width at the start, as a fraction of the full width around nominal (0: nominal only).
        ramp_fraction: fraction of training over which ranges widen (then they stay full).
        mode: ``linear``, or ``steps`` (``steps`` equal increments, the first at the start).
        steps: the number of increments in ``steps`` mode.
        offsets: the parameters that are offsets (nominal 0, as the effects).
    """

    def __init__(
        self,
        full: Mapping[str, ParameterRange],
        initial_fraction: float = 0.0,
        ramp_fraction: float = 0.5,
        mode: str = "linear",
        steps: int = 5,
        offsets: Collection[str] = (),
    ) -> None:
        super().__init__(full)
        self.offsets = frozenset(offsets)
        self.initial_fraction, self.ramp_fraction, self.mode, self.steps = initial_fraction, ramp_fraction, mode, steps
        self._width = self.width_at(0.0)

    def width_at(self, progress: float) -> float:
        """The fraction of the full width in force at ``progress`` (fraction of training done)."""
        done = 1.0 if self.ramp_fraction <= 0 else min(max(progress / self.ramp_fraction, 0.0), 1.0)
        if self.mode == "steps":
            done = math.floor(done * self.steps) / self.steps
        return self.initial_fraction + (1.0 - self.initial_fraction) * done

    def ranges(self) -> dict[str, ParameterRange]:
        return {name: _scaled(name, r, self._width, self.offsets) for name, r in self.full.items()}

    def update(self, progress: float) -> bool:
        # never narrower than it has been: a run resumed with a larger budget stands earlier in it
        width = max(self.width_at(progress), self._width)
        changed = width != self._width
        self._width = width
        return changed

    def state(self) -> dict[str, Any]:
        return {"width": self._width}

    def restore(self, state: Mapping[str, Any]) -> None:
        self._width = float(state.get("width", self._width))


@dataclass(frozen=True)
class BoundaryDecision:
    """A boundary's buffer was full and evaluated: its mean return and where the boundary went."""

    parameter: str
    side: str
    mean_return: float
    move: str  # "expand", "contract" or "keep"
    value: float


class BoundarySampler(DynamicsSampler):
    """ADR's sampler: with ``probability`` an episode pins one parameter (chosen uniformly, as is the end) to one end
    of its range, and reports ``adr_boundary: [name, "low" | "high"]`` at its end."""

    def __init__(self, ranges: Mapping[str, ParameterRange], probability: float) -> None:
        super().__init__(ranges)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"boundary probability must be in [0, 1], got {probability}")
        self.probability = float(probability)

    def episode(self, values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        if self.probability <= 0 or rng.random() >= self.probability:
            return values, {}
        position, side = divmod(int(rng.integers(2 * len(self.names))), 2)
        name = self.names[position]
        values = values.copy()
        values[position] = self.ranges[name].high if side else self.ranges[name].low
        return values, {"adr_boundary": [name, SIDES[side]]}


class ADRSchedule(Schedule):
    """Automatic Domain Randomization over the parameters of ``limits``.

    Effects (:data:`~simreal.envs.spec.EFFECT_NAMES`) take part like parameters, on their own scale: a drawn
    effect's range starts at its low limit (normally 0, no effect), and ``initial_width`` and ``step`` are fractions
    of its limits' width; an integer effect (the delay) moves by whole steps, at least one. Offsets
    (``offsets``: a frictionloss, a centre of mass) move the same way, from 0.

    Args:
        limits: hard limits per parameter (each contains the nominal value 1.0) or effect; ranges never pass them.
        initial_width: each parameter's range starts at ``[1 - initial_width, 1 + initial_width]`` (within the
            limits).
        step: how far a boundary moves, in multiplier units.
        probability: the chance that an episode is a boundary episode (one parameter pinned to one boundary).
        buffer_size: boundary returns collected before a boundary is judged.
        low_threshold, high_threshold: below the low threshold a boundary contracts, above the high one it expands.
        relative: thresholds are fractions of the reference return (see :meth:`observe_reference`) rather than
            returns; until the reference has ``buffer_size`` episodes, full buffers wait.
        reference_window: the reference is the mean return of this many recent non-boundary episodes.
    """

    def __init__(
        self,
        limits: Mapping[str, tuple[float, float]],
        initial_width: float = 0.05,
        step: float = 0.05,
        probability: float = 0.5,
        buffer_size: int = 10,
        low_threshold: float = 0.5,
        high_threshold: float = 0.8,
        relative: bool = True,
        reference_window: int = 100,
        integers: Collection[str] = (),
        offsets: Collection[str] = (),
    ) -> None:
        self.limits = {name: (float(lo), float(hi)) for name, (lo, hi) in limits.items()}
        self.offsets = frozenset(offsets)
        self.integers = frozenset(integers)
        self.initial_width = initial_width
        self.step, self.boundary_probability, self.buffer_size = step, probability, buffer_size
        self.low_threshold, self.high_threshold, self.relative = low_threshold, high_threshold, relative
        self.bounds = {name: list(self._initial(name)) for name in self.limits}
        self.buffers: dict[str, list[float]] = {f"{name}/{side}": [] for name in self.limits for side in SIDES}
        self.reference_returns: deque[float] = deque(maxlen=reference_window)

    def _unit(self, name: str) -> float:
        """The scale of ``initial_width`` and ``step``: 1 for a multiplier, the width of an effect's (or an
        offset's) limits."""
        lo, hi = self.limits[name]
        return hi - lo if self._zero_based(name) else 1.0

    def _zero_based(self, name: str) -> bool:
        return name in EFFECT_NAMES or name in self.offsets

    def _initial(self, name: str) -> tuple[float, float]:
        """The range ``name`` starts at, and that contraction never goes inside."""
        lo, hi = self.limits[name]
        nominal = nominal_value(name, (lo, hi), self.offsets)
        half = self.initial_width * self._unit(name)
        if name in self.integers:
            half = math.floor(half + 1e-9)
        return max(lo, nominal - half), min(hi, nominal + half)

    def _step(self, name: str) -> float:
        step = self.step * self._unit(name)
        return max(1.0, float(round(step))) if name in self.integers else step

    def ranges(self) -> dict[str, ParameterRange]:
        return {
            name: ParameterRange(low=lo, high=hi, distribution="integer" if name in self.integers else "uniform")
            for name, (lo, hi) in self.bounds.items()
        }

    def sampler(self) -> BoundarySampler:
        return BoundarySampler(self.ranges(), self.boundary_probability)

    def scalars(self) -> dict[str, float]:
        return {"dr/adr_entropy": self.entropy()}

    def observe(self, info: Mapping[str, Any], episode_return: float) -> Observation:
        """A boundary episode's return goes to its boundary's buffer; any other episode's to the reference."""
        boundary = info.get("adr_boundary")
        if boundary is None:
            self.observe_reference(episode_return)
            return Observation()
        decision = self.observe_boundary(boundary[0], boundary[1], episode_return)
        if decision is None:
            return Observation()
        tag = f"dr/adr/{decision.parameter}/{decision.side}/mean_return"
        return Observation(changed=decision.move != "keep", scalars={tag: decision.mean_return})

    def observe_reference(self, episode_return: float) -> None:
        """Record the return of a non-boundary episode: the policy's own return under the current ranges, which ADR
        keeps close to nominal. Relative thresholds are fractions of the mean of the recent ones. (The deterministic
        evaluation return would not do: training episodes run the stochastic policy and score lower.)"""
        self.reference_returns.append(float(episode_return))

    @property
    def reference(self) -> float | None:
        """The reference return, once ``buffer_size`` non-boundary episodes are in."""
        if len(self.reference_returns) < self.buffer_size:
            return None
        return sum(self.reference_returns) / len(self.reference_returns)

    def thresholds(self) -> tuple[float, float] | None:
        """``(low, high)`` as returns, or ``None`` while relative thresholds have no reference yet."""
        if not self.relative:
            return (self.low_threshold, self.high_threshold)
        reference = self.reference
        if reference is None:
            return None
        return (self.low_threshold * abs(reference), self.high_threshold * abs(reference))

    def entropy(self) -> float:
        """ADR entropy: the mean log width of the ranges (nats); it grows as the policy masters more randomization.
        An effect's width is a fraction of its limits' width (an integer effect's: the fraction of its values)."""
        widths = []
        for name, (lo, hi) in self.bounds.items():
            if name in self.integers:
                widths.append((hi - lo + 1) / (self._unit(name) + 1))
            else:
                widths.append((hi - lo) / self._unit(name) if self._zero_based(name) else hi - lo)
        return float(sum(math.log(w) if w > 0 else -math.inf for w in widths) / len(widths))

    def observe_boundary(self, parameter: str, side: str, episode_return: float) -> BoundaryDecision | None:
        """Record a boundary episode's return; judge the boundary when its buffer is full.

        Returns:
            The decision when the boundary was judged (its buffer is then cleared), else ``None``.
        """
        key = f"{parameter}/{side}"
        if key not in self.buffers:
            return None
        buffer = self.buffers[key]
        buffer.append(float(episode_return))
        thresholds = self.thresholds()
        if len(buffer) < self.buffer_size or thresholds is None:
            return None
        mean = sum(buffer) / len(buffer)
        buffer.clear()
        low_threshold, high_threshold = thresholds
        move = "expand" if mean > high_threshold else "contract" if mean < low_threshold else "keep"
        self._move(parameter, side, move)
        index = SIDES.index(side)
        return BoundaryDecision(parameter, side, mean, move, self.bounds[parameter][index])

    def _move(self, parameter: str, side: str, move: str) -> None:
        if move == "keep":
            return
        lo_limit, hi_limit = self.limits[parameter]
        lo, hi = self.bounds[parameter]
        step = (1.0 if move == "expand" else -1.0) * self._step(parameter)
        # contracting never goes inside the initial range, so the range keeps its nominal value
        floor, ceiling = self._initial(parameter)
        if side == "low":
            self.bounds[parameter][0] = max(min(lo - step, floor), lo_limit)
        else:
            self.bounds[parameter][1] = min(max(hi + step, ceiling), hi_limit)

    def state(self) -> dict[str, Any]:
        return {"bounds": self.bounds, "buffers": self.buffers, "reference_returns": list(self.reference_returns)}

    def restore(self, state: Mapping[str, Any]) -> None:
        if "bounds" in state:
            self.bounds = {name: [float(lo), float(hi)] for name, (lo, hi) in state["bounds"].items()}
            self.buffers = {key: [float(v) for v in values] for key, values in state["buffers"].items()}
            self.reference_returns.clear()
            self.reference_returns.extend(float(v) for v in state.get("reference_returns", []))


def build_schedule(setup: TrainingSetup) -> Schedule:
    """The schedule a resolved training config asks for, over its training ranges (with a robust objective around
    it, if the config has one)."""
    schedule = _range_schedule(setup)
    robust = setup.config.robust
    if robust.method == "weakest":
        return WeakestRegionSchedule(schedule, setup.ranges, robust.probability, robust.bins, robust.window)
    return schedule


def _range_schedule(setup: TrainingSetup) -> Schedule:
    schedule = setup.config.randomization.schedule
    offsets = [name for name in setup.ranges if name in setup.spec.parameters and setup.spec.parameters[name].offset]
    if schedule.kind == "curriculum":
        return CurriculumSchedule(
            setup.ranges, schedule.initial_fraction, schedule.ramp_fraction, schedule.mode, schedule.steps, offsets
        )
    if schedule.kind == "adr":
        return ADRSchedule(
            setup.schedule_limits,
            initial_width=schedule.initial_width,
            step=schedule.step,
            probability=schedule.probability,
            buffer_size=schedule.buffer_size,
            low_threshold=schedule.thresholds.low,
            high_threshold=schedule.thresholds.high,
            relative=schedule.thresholds.relative,
            integers=[name for name, r in setup.ranges.items() if r.distribution == "integer"],
            offsets=offsets,
        )
    return FixedSchedule(setup.ranges)
