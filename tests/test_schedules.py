"""Randomization schedules: curriculum widths, ADR boundary moves, reaching SubprocVecEnv workers, state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

import simreal
from simreal.envs.spec import ParameterRange, load_robot
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

    setup = load_setup("hopper_ppo_dr", ["randomization.schedule={kind: adr, limits: {friction: [0.5, 2.0]}}"])
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
