"""Bad robot specs, targets and ranges: one error type, a message naming the file and the field."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import simreal
from simreal import SpecError
from simreal.envs.dynamics import DynamicsSampler
from simreal.envs.robots import load_robot
from simreal.envs.spec import ParameterRange


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("base: hopper\nparameters: {torso_mass: 0}\n", "parameters.torso_mass", "must be > 0"),
        ("base: hopper\nparameters: {friction: -0.5}\n", "parameters.friction", "must be > 0"),
        ("base: hopper\nparameters: {thigh_joint_gain: 0.0}\n", "parameters.thigh_joint_gain", "must be > 0"),
        ("base: hopper\nparameters: {neck_mass: 1.2}\n", "parameters.neck_mass", "unknown parameter"),
        (
            "base: hopper\neffects: {action_delay_steps: -1}\n",
            "effects.action_delay_steps",
            "greater than or equal",
        ),
        ("base: hopper\neffects: {latency: 2}\n", "effects.latency", "unknown field"),
        ("base: walker2d\nparameters: {torso_mass: 1.2}\n", "base", "not 'hopper'"),
        ("base: hopper\nparameters: {torso_mass: [1, 2\n", "malformed YAML", "line"),
        ("- just\n- a list\n", "expected a mapping", ""),
    ],
)
def test_bad_target_file_names_file_and_field(write_yaml, text, field, problem):
    path = write_yaml(text)
    with pytest.raises(SpecError) as caught:
        simreal.make("hopper", target=path)
    message = str(caught.value)
    assert message.startswith(str(path))
    assert field in message and problem in message
    assert "\n" not in message


def test_missing_target_file_and_unknown_names():
    with pytest.raises(SpecError, match=r"nowhere\.yaml: file not found"):
        simreal.make("hopper", target="nowhere.yaml")
    with pytest.raises(SpecError, match="unknown target 'brutal'.*mild, moderate, severe"):
        simreal.make("hopper", target="brutal")
    with pytest.raises(SpecError, match="unknown robot 'spider'"):
        simreal.make("spider")


def test_bad_range_overrides():
    with pytest.raises(SpecError, match="ranges.torso_mass: range low 1.3 > high 0.7"):
        simreal.make("hopper", ranges={"torso_mass": [1.3, 0.7]})
    with pytest.raises(SpecError, match="ranges.torso_mass: a mass multiplier must be > 0"):
        simreal.make("hopper", ranges={"torso_mass": [0.0, 1.2]})
    with pytest.raises(SpecError, match="ranges.wing_mass: unknown parameter .wing_mass."):
        simreal.make("hopper", ranges={"wing_mass": [0.9, 1.1]})
    with pytest.raises(SpecError, match="outside the limits"):
        simreal.make("hopper", ranges={"friction": [0.5, 50.0]})
    with pytest.raises(SpecError, match="target has fixed dynamics"):
        simreal.make("hopper", target="mild", ranges={"friction": [0.5, 1.0]})


def test_set_dynamics_rejects_bad_values():
    env = simreal.make("hopper", nominal=True)
    with pytest.raises(SpecError, match="dynamics.torso_mass: a mass multiplier must be > 0"):
        simreal.set_dynamics(env, {"torso_mass": -1.0})
    with pytest.raises(SpecError, match="unknown parameter"):
        simreal.set_dynamics(env, {"tail_mass": 1.0})


#: The line of a generated robot file where its overrides go.
OVERRIDES = "parameters: {}   # overrides of the generated parameters: none"


@pytest.fixture
def spec_dir(tmp_path, monkeypatch):
    """A copy of the shipped specs that a test may break."""
    folder = tmp_path / "envs"
    shutil.copytree(load_robot("hopper").source.rsplit("/", 1)[0], folder)
    monkeypatch.setattr("simreal.envs.robots.envs_dir", lambda: folder)
    monkeypatch.setattr("simreal.envs.spec.envs_dir", lambda: folder)  # a shipped robot's reference is its name
    return folder


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (
            OVERRIDES,
            "parameters: {torso_mass: {range: [1.25, 0.75]}}",
            "parameters.torso_mass: range low 1.25 > high 0.75",
        ),
        (OVERRIDES, "parameters: {torso_mass: {body: head}}", "parameters.torso_mass.body: no body named 'head'"),
        (OVERRIDES, "parameters: {friction: {kind: slipperiness}}", "parameters.friction.kind"),
        (
            "friction: 0.5,",
            "friction: 0.0,",
            "targets.severe.parameters.friction: a friction multiplier must be > 0",
        ),
    ],
)
def test_bad_robot_spec_names_file_and_field(spec_dir, old, new, field):
    path = spec_dir / "hopper.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(SpecError) as caught:
        simreal.make("hopper")
    assert str(caught.value).startswith(str(path))
    assert field in str(caught.value)


@pytest.mark.parametrize("distribution", ["uniform", "loguniform", "truncnormal"])
def test_sampling_distributions_stay_inside_their_bounds(distribution):
    ranges = {"a": ParameterRange(low=0.5, high=2.0, distribution=distribution)}
    rng = np.random.default_rng(0)
    values = DynamicsSampler(ranges).sample_block(rng, 4000)[:, 0]
    assert values.min() >= 0.5 and values.max() <= 2.0
    median = float(np.median(values))
    expected = {"uniform": 1.25, "loguniform": 1.0, "truncnormal": 1.25}[distribution]
    assert median == pytest.approx(expected, abs=0.05)
    if distribution == "truncnormal":  # concentrated around the mean, unlike uniform
        assert np.mean(np.abs(values - 1.25) < 0.375) > 0.6
