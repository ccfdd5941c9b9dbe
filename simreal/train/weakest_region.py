"""The weakest-region objective: a robust objective that sits on a fixed or curriculum schedule.

:class:`WeakestRegionSchedule` keeps the ranges of the schedule it sits on and draws more episodes where the policy
is currently weakest (:class:`WeakestRegionSampler`), so it cannot buy average return by giving up a region.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from simreal.envs.dynamics import DynamicsSampler
from simreal.envs.spec import ParameterRange
from simreal.train.protocol import Observation, Schedule


class WeakestRegionSampler(DynamicsSampler):
    """The weakest-region schedule's sampler: with ``probability`` an episode draws one axis of ``focus`` (chosen in
    proportion to its weight) inside that axis's interval, the others as usual, and reports
    ``weakest_region: name`` at its end.

    Args:
        ranges: the distributions drawn from.
        focus: name -> ``(low, high, weight)``: the interval of its weakest bin inside its current range (an integer
            parameter: whole numbers in it, each equally likely; a log-uniform one: log-uniform in it) and how much
            of the focus it gets (> 0).
        probability: the share of focused episodes (when ``focus`` is not empty).
    """

    def __init__(
        self,
        ranges: Mapping[str, ParameterRange],
        focus: Mapping[str, tuple[float, float, float]],
        probability: float,
    ) -> None:
        super().__init__(ranges)
        if not 0.0 < probability <= 1.0:
            raise ValueError(f"focus probability must be in (0, 1], got {probability}")
        self.focus = {name: (float(lo), float(hi), float(w)) for name, (lo, hi, w) in focus.items() if w > 0}
        self.probability = float(probability)
        weights = np.array([w for _, _, w in self.focus.values()], dtype=np.float64)
        self._cumulative = np.cumsum(weights / weights.sum()) if len(weights) else weights

    def episode(self, values: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
        if not self.focus or rng.random() >= self.probability:
            return values, {}
        names = list(self.focus)
        name = names[min(int(np.searchsorted(self._cumulative, rng.random(), side="right")), len(names) - 1)]
        low, high, _ = self.focus[name]
        distribution = self.ranges[name].distribution
        if distribution == "integer":
            value = float(rng.integers(math.ceil(low - 1e-9), math.floor(high + 1e-9) + 1))
        elif distribution == "loguniform":
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = float(rng.uniform(low, high))
        values = values.copy()
        values[self.names.index(name)] = value
        return values, {"weakest_region": name}


def bin_edges(r: ParameterRange, bins: int) -> np.ndarray:
    """The edges of ``bins`` equal bins over ``r``: in log space for a log-uniform range, one bin per whole number
    (at most ``bins``, merged evenly beyond) for an integer range."""
    if r.distribution == "integer":
        values = round(r.high - r.low) + 1
        count = min(bins, values)
        return r.low - 0.5 + np.arange(count + 1) * (values / count)
    if r.distribution == "loguniform":
        return np.exp(np.linspace(math.log(r.low), math.log(r.high), bins + 1))
    return np.linspace(r.low, r.high, bins + 1)


@dataclass(frozen=True)
class Weakness:
    """An axis's weakest bin and how far, beyond noise, it falls below the axis's other bins.

    Attributes:
        index: the weakest bin.
        mean_return: its mean recent return.
        deficit: the mean over the axis's bins of their mean returns, minus the weakest bin's.
        weight: ``deficit`` less twice the weakest bin's standard error, at least 0: the focus the axis gets.
    """

    index: int
    mean_return: float
    deficit: float
    weight: float


class WeakestRegionSchedule(Schedule):
    """A robust objective over another schedule's ranges: every training episode's return joins, on every axis
    (randomized parameter or drawn effect), the bin its value fell in. At each rollout each axis's weakest bin is the
    one whose last ``window`` returns have the lowest mean, among the bins inside the current ranges holding at
    least ``min(3, window)`` returns; its weight is how far that mean lies below the mean of the axis's bins, less
    twice its standard error (:class:`Weakness`). With ``probability`` an episode draws one axis, chosen in
    proportion to the weights, inside its weakest bin (:class:`WeakestRegionSampler`): the focus goes where the
    policy is clearly weakest, and none is spent on an axis whose bins differ by noise only (when no axis has a
    weight, every episode is drawn as plain randomization would).

    The bins divide the full ranges (:func:`bin_edges`), so under a curriculum the bins outside the ranges so far
    wait their turn.

    Args:
        inner: the schedule whose ranges are drawn (fixed or curriculum).
        full: the full training ranges.
        probability: the share of focused episodes, in (0, 1].
        bins: bins per axis.
        window: returns remembered per bin.
    """

    def __init__(
        self, inner: Schedule, full: Mapping[str, ParameterRange], probability: float, bins: int, window: int
    ) -> None:
        self.inner, self.probability, self.window = inner, float(probability), int(window)
        self.edges = {name: bin_edges(r, bins) for name, r in full.items() if r.high > r.low}
        self.returns: dict[str, list[deque[float]]] = {
            name: [deque(maxlen=self.window) for _ in range(len(edges) - 1)] for name, edges in self.edges.items()
        }
        self.weakest: dict[str, Weakness] = {}

    def ranges(self) -> dict[str, ParameterRange]:
        return self.inner.ranges()

    def sampler(self) -> WeakestRegionSampler:
        current = self.ranges()
        focus = {}
        for name, weakness in self.weakest.items():
            edges, r, index = self.edges[name], current[name], weakness.index
            low, high = max(float(edges[index]), r.low), min(float(edges[index + 1]), r.high)
            if r.distribution == "integer" and math.ceil(low - 1e-9) > math.floor(high + 1e-9):
                continue  # no whole number of the bin is in the range yet
            if weakness.weight > 0 and (high > low or (r.distribution == "integer" and high >= low)):
                focus[name] = (low, high, weakness.weight)
        return WeakestRegionSampler(current, focus, self.probability)

    def update(self, progress: float) -> bool:
        changed = self.inner.update(progress)
        weakest = self.find_weakest()
        if weakest != self.weakest:
            self.weakest, changed = weakest, True
        return changed

    def find_weakest(self) -> dict[str, Weakness]:
        """Each axis's weakest bin among those inside the current ranges with enough returns (name -> its
        :class:`Weakness`); an axis with fewer than two such bins is left out."""
        current, known = self.ranges(), min(3, self.window)
        weakest = {}
        for name, edges in self.edges.items():
            r = current.get(name)
            if r is None:
                continue
            bins = self.returns[name]
            inside = [
                i
                for i in range(len(edges) - 1)
                if edges[i] < r.high + 1e-12 and edges[i + 1] > r.low - 1e-12 and len(bins[i]) >= known
            ]
            if len(inside) < 2:
                continue
            means = {i: float(np.mean(bins[i])) for i in inside}
            index = min(inside, key=means.__getitem__)
            deficit = float(np.mean(list(means.values()))) - means[index]
            error = float(np.std(bins[index], ddof=1)) / math.sqrt(len(bins[index]))
            weakest[name] = Weakness(index, means[index], deficit, max(deficit - 2 * error, 0.0))
        return weakest

    def observe(self, info: Mapping[str, Any], episode_return: float) -> Observation:
        observation = self.inner.observe(info, episode_return)
        dynamics, effects = info.get("dynamics") or {}, info.get("effects") or {}
        for name, edges in self.edges.items():
            value = effects.get(name, dynamics.get(name))
            if value is None:
                continue
            index = int(np.clip(np.searchsorted(edges, float(value), side="right") - 1, 0, len(edges) - 2))
            self.returns[name][index].append(float(episode_return))
        return observation

    def scalars(self) -> dict[str, float]:
        scalars = dict(self.inner.scalars())
        total = sum(w.weight for w in self.weakest.values())
        for name, weakness in self.weakest.items():
            edges, index = self.edges[name], weakness.index
            scalars[f"dr/weakest/{name}/center"] = float((edges[index] + edges[index + 1]) / 2)
            scalars[f"dr/weakest/{name}/mean_return"] = weakness.mean_return
            scalars[f"dr/weakest/{name}/focus"] = weakness.weight / total if total > 0 else 0.0
        return scalars

    def state(self) -> dict[str, Any]:
        returns = {name: [list(b) for b in bins] for name, bins in self.returns.items()}
        weakest = {name: [w.index, w.mean_return, w.deficit, w.weight] for name, w in self.weakest.items()}
        return {"inner": self.inner.state(), "returns": returns, "weakest": weakest}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.inner.restore(state.get("inner", {}))
        for name, bins in (state.get("returns") or {}).items():
            if name in self.returns:
                for deque_, values in zip(self.returns[name], bins, strict=False):
                    deque_.clear()
                    deque_.extend(float(v) for v in values)
        self.weakest = {
            name: Weakness(int(i), float(m), float(d), float(w))
            for name, (i, m, d, w) in (state.get("weakest") or {}).items()
            if name in self.edges
        }
