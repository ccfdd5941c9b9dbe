"""The reality gap: how much return a policy loses from its source simulator to a target, with bootstrap CIs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Bootstrap resamples used for every confidence interval.
RESAMPLES = 2000


@dataclass(frozen=True)
class GapEstimate:
    """``gap = source_nominal_return - target_return`` and ``relative_gap = gap / |source_nominal_return|``, each
    with a bootstrap confidence interval over episodes (percentile method)."""

    gap: float
    gap_ci: tuple[float, float]
    relative_gap: float
    relative_gap_ci: tuple[float, float]

    def as_dict(self) -> dict[str, float | list[float]]:
        """JSON-ready: ``gap``, ``gap_ci95``, ``relative_gap``, ``relative_gap_ci95``."""
        data = asdict(self)
        return {
            "gap": data["gap"],
            "gap_ci95": list(data["gap_ci"]),
            "relative_gap": data["relative_gap"],
            "relative_gap_ci95": list(data["relative_gap_ci"]),
        }


def reality_gap(
    source_returns: np.ndarray | list[float],
    target_returns: np.ndarray | list[float],
    rng: np.random.Generator,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
) -> GapEstimate:
    """Estimate the return gap between source and target episodes.

    Source and target episodes are independent samples, so each bootstrap resample draws both anew.

    Args:
        source_returns: episode returns in the source simulator at nominal dynamics.
        target_returns: episode returns on the target.
        rng: generator for the resamples (same generator state, same interval).
        confidence: coverage of the intervals.
        resamples: bootstrap resamples.

    Returns:
        The point estimates and their intervals. With one episode on a side the interval collapses to the point.
    """
    source = np.asarray(source_returns, dtype=np.float64)
    target = np.asarray(target_returns, dtype=np.float64)
    if source.size == 0 or target.size == 0:
        raise ValueError("reality_gap needs at least one source and one target episode")
    source_means = source[rng.integers(0, source.size, (resamples, source.size))].mean(axis=1)
    target_means = target[rng.integers(0, target.size, (resamples, target.size))].mean(axis=1)
    gaps = source_means - target_means
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = gaps / np.abs(source_means)
    tail = (1 - confidence) / 2 * 100
    gap = float(source.mean() - target.mean())
    scale = abs(float(source.mean()))
    relative_gap = gap / scale if scale > 0 else float("nan")
    return GapEstimate(
        gap=gap,
        gap_ci=_interval(gaps, tail),
        relative_gap=relative_gap,
        relative_gap_ci=_interval(relative[np.isfinite(relative)], tail),
    )


def _interval(samples: np.ndarray, tail: float) -> tuple[float, float]:
    if samples.size == 0:
        return (float("nan"), float("nan"))
    low, high = np.percentile(samples, [tail, 100 - tail])
    return (float(low), float(high))


def mean_return_ci(
    groups: list[np.ndarray] | list[list[float]],
    rng: np.random.Generator,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
) -> tuple[float, float]:
    """A bootstrap confidence interval of the mean return over groups of episodes (one group per training seed).

    Two-stage (hierarchical) resampling: seeds with replacement, then episodes within each drawn seed, so the
    interval holds seed-to-seed variance as well as episode-to-episode variance. One group is the plain bootstrap
    over episodes. With one episode in all, the interval collapses to the point.
    """
    arrays = [np.asarray(g, dtype=np.float64) for g in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("mean_return_ci needs at least one episode in every group")
    chosen = rng.integers(0, len(arrays), (resamples, len(arrays)))
    means = np.empty(resamples)
    for index, row in enumerate(chosen):
        means[index] = np.mean([arrays[g][rng.integers(0, arrays[g].size, arrays[g].size)].mean() for g in row])
    return _interval(means, (1 - confidence) / 2 * 100)


@dataclass(frozen=True)
class FractionClosed:
    """``(J_stage - J_zero_shot) / (J_oracle - J_zero_shot)`` with a bootstrap CI, or undefined (``value`` None)
    with the reason, when the oracle's margin over zero-shot is not clearly positive."""

    value: float | None
    ci: tuple[float, float] | None
    reason: str | None = None

    def as_dict(self) -> dict[str, float | list[float] | str | None]:
        return {
            "fraction_closed": self.value,
            "fraction_closed_ci95": list(self.ci) if self.ci is not None else None,
            "fraction_undefined": self.reason,
        }


def fraction_closed(
    zero_shot: np.ndarray | list[float],
    stage: np.ndarray | list[float],
    oracle: np.ndarray | list[float],
    rng: np.random.Generator,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
) -> FractionClosed:
    """The fraction of the zero-shot-to-oracle gap a stage closed, from the three sets of target episode returns.

    Each bootstrap resample draws the three sets anew (they are independent episodes). The fraction is undefined
    when the interval of the oracle's margin ``J_oracle - J_zero_shot`` reaches 0: there is no gap the data can
    show, and a ratio over it would be noise.
    """
    z, s, o = (np.asarray(x, dtype=np.float64) for x in (zero_shot, stage, oracle))
    if z.size == 0 or s.size == 0 or o.size == 0:
        raise ValueError("fraction_closed needs at least one episode of each")

    def means(x: np.ndarray) -> np.ndarray:
        return x[rng.integers(0, x.size, (resamples, x.size))].mean(axis=1)

    zs, ss, os_ = means(z), means(s), means(o)
    tail = (1 - confidence) / 2 * 100
    margin_low, _ = _interval(os_ - zs, tail)
    if not margin_low > 0:
        margin = o.mean() - z.mean()
        reason = f"the oracle's margin over zero-shot ({margin:.1f}) is within its {confidence:.0%} interval of 0"
        return FractionClosed(None, None, reason)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (ss - zs) / (os_ - zs)
    value = float((s.mean() - z.mean()) / (o.mean() - z.mean()))
    return FractionClosed(value, _interval(ratios[np.isfinite(ratios)], tail))
