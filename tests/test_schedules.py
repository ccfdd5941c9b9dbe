"""Randomization schedules: curriculum widths, ADR boundary moves, reaching SubprocVecEnv workers, state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

import simreal
from simreal.envs.robots import load_robot
from simreal.envs.spec import ParameterRange
from simreal.train.schedules import ADRSchedule, BoundarySampler, CurriculumSchedule

FULL = {"torso_mass": ParameterRange(low=0.5, high=1.5), "friction": ParameterRange(low=0.8, high=2.0)}


@pytest.mark.parametrize(
    ("mode", "initial", "progress", "width"),
    [
        ("linear", 0.0, 0.0, 0.0),
        ("linear", 0.0, 0.25, 0.5),
        ("linear", 0.0, 0.5, 1.0),
        ("linear", 0.0, 0.9, 1.0),
        ("linear", 0.2, 0.0, 0.2),
        ("linear", 0.2, 0.25, 0.6),
        ("steps", 0.0, 0.09, 0.0),
        ("steps", 0.0, 0.1, 0.2),
        ("steps", 0.0, 0.29, 0.4),
        ("steps", 0.0, 0.5, 1.0),
    ],
)
def test_curriculum_widths_at_training_fractions(mode, initial, progress, width):
    schedule = CurriculumSchedule(FULL, initial_fraction=initial, ramp_fraction=0.5, mode=mode, steps=5)
    assert schedule.width_at(progress) == pytest.approx(width)
    schedule.update(progress)
    ranges = schedule.ranges()
    assert ranges["torso_mass"].low == pytest.approx(1.0 - 0.5 * width)
    assert ranges["torso_mass"].high == pytest.approx(1.0 + 0.5 * width)
    assert ranges["friction"].low == pytest.approx(1.0 - 0.2 * width)
    assert ranges["friction"].high == pytest.approx(1.0 + 1.0 * width)


def test_curriculum_reports_changes_only_when_the_width_changes():
    schedule = CurriculumSchedule(FULL, ramp_fraction=0.5, mode="steps", steps=2)
    assert not schedule.update(0.1)
    assert schedule.update(0.3)
    assert not schedule.update(0.4)


def adr(**kwargs) -> ADRSchedule:
    settings = {"initial_width": 0.1, "step": 0.1, "probability": 0.5, "buffer_size": 3}
    settings.update(kwargs)
    return ADRSchedule({"torso_mass": (0.5, 1.25), "friction": (0.9, 2.0)}, **settings)


def feed(schedule: ADRSchedule, parameter: str, side: str, value: float, count: int = 3):
    decisions = [schedule.observe_boundary(parameter, side, value) for _ in range(count)]
    assert decisions[:-1] == [None] * (count - 1)
    return decisions[-1]


def test_adr_expands_keeps_and_contracts_boundaries_on_returns():
    schedule = adr(low_threshold=100.0, high_threshold=200.0, relative=False)
    assert schedule.bounds["torso_mass"] == pytest.approx([0.9, 1.1])
    assert feed(schedule, "torso_mass", "high", 250.0).move == "expand"
    assert schedule.bounds["torso_mass"] == pytest.approx([0.9, 1.2])
    assert feed(schedule, "torso_mass", "high", 150.0).move == "keep"
    assert schedule.bounds["torso_mass"] == pytest.approx([0.9, 1.2])
    assert feed(schedule, "torso_mass", "low", 250.0).move == "expand"
    assert schedule.bounds["torso_mass"] == pytest.approx([0.8, 1.2])
    decision = feed(schedule, "torso_mass", "low", 50.0)
    assert decision.move == "contract" and decision.mean_return == 50.0
    assert schedule.bounds["torso_mass"] == pytest.approx([0.9, 1.2])
    assert schedule.buffers["torso_mass/low"] == []  # cleared after judging
    feed(schedule, "torso_mass", "low", 50.0)
    assert schedule.bounds["torso_mass"] == pytest.approx([0.9, 1.2])  # never inside the initial range
    for _ in range(5):
        feed(schedule, "torso_mass", "high", 999.0)
    assert schedule.bounds["torso_mass"][1] == pytest.approx(1.25)  # the hard limit
    for _ in range(5):
        feed(schedule, "friction", "low", 999.0)
    assert schedule.bounds["friction"][0] == pytest.approx(0.9)
    assert schedule.entropy() == pytest.approx((np.log(0.35) + np.log(0.2)) / 2)


def test_adr_relative_thresholds_are_fractions_of_recent_non_boundary_returns():
    schedule = adr(low_threshold=0.5, high_threshold=0.8, relative=True)
    assert feed(schedule, "friction", "high", 900.0) is None  # no reference yet: the buffer waits
    assert len(schedule.buffers["friction/high"]) == 3
    for value in (900.0, 1000.0, 1100.0):
        schedule.observe_reference(value)
    assert schedule.reference == pytest.approx(1000.0)
    decision = schedule.observe_boundary("friction", "high", 900.0)
    assert decision.move == "expand" and schedule.bounds["friction"][1] == pytest.approx(1.2)
    assert feed(schedule, "friction", "high", 600.0).move == "keep"
    assert feed(schedule, "friction", "high", 400.0).move == "contract"


def test_adr_state_round_trips_through_json():
    schedule = adr(low_threshold=100.0, high_threshold=200.0, relative=False)
    feed(schedule, "torso_mass", "high", 250.0)
    schedule.observe_boundary("friction", "low", 120.0)
    schedule.observe_reference(321.0)
    restored = adr(low_threshold=100.0, high_threshold=200.0, relative=False)
    restored.restore(json.loads(json.dumps(schedule.state())))
    assert restored.ranges() == schedule.ranges()
    assert restored.buffers == schedule.buffers
    assert restored.reference_returns == schedule.reference_returns
    assert restored.entropy() == schedule.entropy()


def test_ranges_and_boundary_episodes_reach_subprocess_workers():
    venv = SubprocVecEnv([lambda: simreal.make("hopper") for _ in range(2)])
    try:
        narrow = {"torso_mass": ParameterRange(low=1.3, high=1.4), "friction": ParameterRange(low=0.7, high=0.8)}
        venv.env_method("set_ranges", narrow)
        venv.seed(0)
        venv.reset()
        for dynamics in simreal.get_dynamics(venv):
            assert 1.3 <= dynamics["torso_mass"] <= 1.4 and 0.7 <= dynamics["friction"] <= 0.8
            assert dynamics["leg_mass"] == 1.0  # no longer randomized
        venv.env_method("set_sampler", BoundarySampler(narrow, probability=1.0))
        pinned = []
        for _ in range(5):
            venv.reset()
            for dynamics in simreal.get_dynamics(venv):
                at_bounds = [name for name, r in narrow.items() if dynamics[name] in (r.low, r.high)]
                pinned.append(len(at_bounds))
        assert pinned == [1] * 10
    finally:
        venv.close()


def test_boundary_episode_reports_its_boundary_at_the_end():
    env = simreal.make("inverted_pendulum", ranges={"pole_mass": [0.8, 1.2]}, parameters=["pole_mass"])
    env.get_wrapper_attr("set_sampler")(BoundarySampler({"pole_mass": ParameterRange(low=0.8, high=1.2)}, 1.0))
    _, info = env.reset(seed=0)
    side = "low" if info["dynamics"]["pole_mass"] == 0.8 else "high"
    assert info["dynamics"]["pole_mass"] in (0.8, 1.2)
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated or truncated
    assert info["adr_boundary"] == ["pole_mass", side]


def test_robot_ranges_are_adr_limits_by_default():
    from simreal.runs.setup import load_setup

    adr = "randomization.schedule={kind: adr, limits: {friction: [0.5, 2.0]}}"
    setup = load_setup("hopper_ppo_dr", [adr, "robust.method=none"])
    limits = setup.schedule_limits
    assert limits["torso_mass"] == tuple(load_robot("hopper").parameters["torso_mass"].range)
    assert limits["friction"] == (0.5, 2.0)


def test_a_curriculum_never_narrows_when_a_resumed_run_extends_its_budget():
    schedule = CurriculumSchedule(FULL, ramp_fraction=0.5)
    schedule.update(1.0)  # the run finished with the full ranges
    restored = CurriculumSchedule(FULL, ramp_fraction=0.5)
    restored.restore(json.loads(json.dumps(schedule.state())))
    assert not restored.update(0.25)  # resumed with four times the budget: a quarter through it
    assert restored.ranges() == schedule.ranges()


def _weakest(inner=None, probability=1.0, bins=4, window=50):
    from simreal.train.schedules import FixedSchedule
    from simreal.train.weakest_region import WeakestRegionSchedule

    return WeakestRegionSchedule(inner or FixedSchedule(FULL), FULL, probability, bins, window)


def _hear(schedule, episodes: int = 300, seed: int = 0, friction_matters: bool = True) -> None:
    """Episodes drawn uniformly over FULL whose return falls on high friction (>= 1.7) only, plus noise; torso mass
    does not matter."""
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        friction, torso = rng.uniform(0.8, 2.0), rng.uniform(0.5, 1.5)
        weak = friction_matters and friction >= 1.7
        episode_return = (400.0 if weak else 3000.0) + rng.normal(0, 200)
        schedule.observe({"dynamics": {"friction": friction, "torso_mass": torso}}, episode_return)


def test_the_weakest_region_is_the_bin_with_the_lowest_recent_returns():
    schedule = _weakest()
    assert not schedule.update(0.0) and schedule.sampler().focus == {}  # nothing heard yet: plain episodes
    _hear(schedule)
    assert schedule.update(0.1)
    # friction bins of [0.8, 2.0]: 0.8-1.1, 1.1-1.4, 1.4-1.7, 1.7-2.0; the policy falls on the last one
    friction, torso = schedule.weakest["friction"], schedule.weakest["torso_mass"]
    assert friction.index == 3 and friction.weight > 1500
    assert torso.weight == 0.0  # its bins differ by noise only: no focus spent there
    assert not schedule.update(0.2)  # nothing new: nothing to push to the envs
    # with probability 1 every episode is focused, all of them on friction, inside [1.7, 2.0]
    sampler = schedule.sampler()
    assert set(sampler.focus) == {"friction"}
    rng = np.random.default_rng(0)
    drawn = []
    for _ in range(200):
        values, info = sampler.episode(sampler.sample_array(rng), rng)
        assert info == {"weakest_region": "friction"}
        drawn.append(values[sampler.names.index("friction")])
    assert min(drawn) >= 1.7 and max(drawn) <= 2.0
    assert schedule.scalars()["dr/weakest/friction/focus"] == 1.0


def test_the_robust_objective_changes_which_dynamics_the_episodes_draw():
    from simreal.train.schedules import FixedSchedule

    plain, robust = FixedSchedule(FULL).sampler(), _weakest(probability=0.5)
    _hear(robust)
    robust.update(0.0)

    def high_friction_share(sampler) -> float:
        rng = np.random.default_rng(1)
        draws = [sampler.episode(sampler.sample_array(rng), rng)[0] for _ in range(2000)]
        return float(np.mean([d[sampler.names.index("friction")] >= 1.7 for d in draws]))

    assert high_friction_share(plain) == pytest.approx(0.25, abs=0.03)
    # half the episodes focus on friction's weakest bin: 0.5 + 0.5 * 0.25 of the draws land there
    assert high_friction_share(robust.sampler()) == pytest.approx(0.625, abs=0.03)


def test_no_focus_where_every_bin_scores_alike():
    schedule = _weakest()
    _hear(schedule, friction_matters=False)
    schedule.update(0.0)
    assert all(w.weight == 0.0 for w in schedule.weakest.values())
    sampler = schedule.sampler()
    rng = np.random.default_rng(0)
    values = sampler.sample_array(rng)
    assert sampler.episode(values, rng) == (values, {})


def test_under_a_curriculum_only_bins_inside_the_current_ranges_are_candidates():
    curriculum = CurriculumSchedule(FULL, initial_fraction=0.0, ramp_fraction=0.5)
    schedule = _weakest(inner=curriculum)
    schedule.update(0.1)  # friction's range is [0.96, 1.2] so far: bins 0 and 1
    assert curriculum.ranges()["friction"].high == pytest.approx(1.2)
    _hear(schedule)  # high friction falls, but it is outside the ranges so far (a resumed run's old episodes)
    schedule.update(0.1)
    assert schedule.weakest["friction"].index in (0, 1) and schedule.weakest["friction"].weight == 0.0
    schedule.update(0.5)  # the full ranges: now the last bin is a candidate, and the weakest
    assert schedule.weakest["friction"].index == 3
    low, high, _ = schedule.sampler().focus["friction"]
    assert (low, high) == pytest.approx((1.7, 2.0))


def test_the_weakest_region_state_round_trips_through_json():
    schedule = _weakest()
    _hear(schedule)
    schedule.update(0.0)
    restored = _weakest()
    restored.restore(json.loads(json.dumps(schedule.state())))
    assert restored.weakest == schedule.weakest
    assert restored.find_weakest() == schedule.find_weakest()
    assert restored.scalars() == schedule.scalars()


def test_integer_effects_get_one_bin_per_value():
    from simreal.train.weakest_region import bin_edges

    delay = ParameterRange(low=0, high=2, distribution="integer")
    np.testing.assert_allclose(bin_edges(delay, 8), [-0.5, 0.5, 1.5, 2.5])
    np.testing.assert_allclose(bin_edges(ParameterRange(low=0.5, high=2.0, distribution="loguniform"), 2), [0.5, 1, 2])
