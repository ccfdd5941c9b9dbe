"""Reality-gap estimates and their bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from simreal.evaluate.gap import mean_return_ci, reality_gap


def test_gap_point_estimates_and_intervals():
    source = np.array([100.0, 110.0, 90.0, 105.0, 95.0])
    target = np.array([60.0, 70.0, 50.0, 65.0, 55.0])
    estimate = reality_gap(source, target, np.random.default_rng(0))
    assert estimate.gap == pytest.approx(40.0)
    assert estimate.relative_gap == pytest.approx(0.4)
    assert estimate.gap_ci[0] < 40.0 < estimate.gap_ci[1]
    assert estimate.gap_ci[0] > 30.0 and estimate.gap_ci[1] < 50.0
    assert estimate.relative_gap_ci[0] < 0.4 < estimate.relative_gap_ci[1]


def test_same_generator_state_same_interval_and_more_episodes_narrow_it():
    rng = np.random.default_rng(1)
    source, target = rng.normal(100, 10, 40), rng.normal(80, 10, 40)
    a = reality_gap(source, target, np.random.default_rng(7))
    b = reality_gap(source, target, np.random.default_rng(7))
    assert a == b
    few = reality_gap(source[:5], target[:5], np.random.default_rng(7))
    assert (a.gap_ci[1] - a.gap_ci[0]) < (few.gap_ci[1] - few.gap_ci[0])


def test_interval_covers_the_true_gap_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    covered = 0
    for _ in range(200):
        estimate = reality_gap(rng.normal(100, 20, 30), rng.normal(70, 20, 30), rng, resamples=500)
        covered += estimate.gap_ci[0] <= 30.0 <= estimate.gap_ci[1]
    assert 0.88 <= covered / 200 <= 0.99


def test_single_episode_collapses_the_interval_and_empty_input_is_refused():
    estimate = reality_gap([10.0], [4.0], np.random.default_rng(0))
    assert estimate.gap_ci == (6.0, 6.0)
    with pytest.raises(ValueError):
        reality_gap([], [1.0], np.random.default_rng(0))


def test_mean_return_ci_covers_the_true_mean_about_as_often_as_it_says():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(100):
        low, high = mean_return_ci([rng.normal(1000.0, 200.0, 20)], rng, resamples=500)
        hits += low <= 1000.0 <= high
    assert 85 <= hits <= 100


def test_mean_return_ci_over_seeds_holds_the_seed_to_seed_spread():
    rng = np.random.default_rng(1)
    seeds = [rng.normal(mean, 10.0, 20) for mean in (1000.0, 2000.0, 3000.0)]
    low, high = mean_return_ci(seeds, np.random.default_rng(2))
    pooled_low, pooled_high = mean_return_ci([np.concatenate(seeds)], np.random.default_rng(2))
    assert low < pooled_low and high > pooled_high  # three seeds far apart: the pooled interval is too narrow
    assert mean_return_ci([[5.0]], rng) == (5.0, 5.0)
