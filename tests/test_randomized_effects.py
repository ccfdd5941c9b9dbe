"""Randomized unmodeled effects and history inputs in training: drawn per episode inside their ranges and
reproducible by seed, a drawn delay really delays, schedules widen effect ranges, the config option reaches every env
the policy meets, bad effect ranges give one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from stable_baselines3.common.vec_env import VecNormalize
from typer.testing import CliRunner

import simreal
from simreal.cli import app
from simreal.envs.spec import ParameterRange
from simreal.runs.policy import load_policy
from simreal.sysid.collect import collect
from simreal.train.schedules import ADRSchedule, CurriculumSchedule
from tests.test_training import tags, tiny_config

runner = CliRunner()

EFFECTS = {
    "action_delay_steps": [0, 3],
    "obs_noise_std": [0.0, 0.02],
    "action_noise_std": [0.01, 0.05],
    "obs_bias_std": [0.0, 0.03],
}


def drawn_effects(env, seed: int, episodes: int) -> list[dict]:
    draws = [env.reset(seed=seed)[1]["effects"]]
    draws += [env.reset()[1]["effects"] for _ in range(episodes - 1)]
    return draws


def test_effects_are_drawn_per_episode_inside_their_ranges_and_reproducible_by_seed():
    draws = drawn_effects(simreal.make("hopper", effect_ranges=EFFECTS), seed=4, episodes=60)
    again = drawn_effects(simreal.make("hopper", effect_ranges=EFFECTS), seed=4, episodes=60)
    other = drawn_effects(simreal.make("hopper", effect_ranges=EFFECTS), seed=5, episodes=60)
    assert draws == again
    assert draws != other
    for name, (low, high) in EFFECTS.items():
        values = np.array([draw[name] for draw in draws])
        assert values.min() >= low and values.max() <= high, name
        assert len(set(values.tolist())) > 1, name  # drawn anew, not fixed
    delays = [draw["action_delay_steps"] for draw in draws]
    assert all(isinstance(d, int) for d in delays) and set(delays) == {0, 1, 2, 3}  # every whole step, only those


def test_the_wrappers_apply_each_episode_its_own_draw():
    env = simreal.make("hopper", nominal=True, effect_ranges={"obs_bias_std": [0.5, 0.5], "obs_noise_std": [0, 0]})
    plain = simreal.make("hopper", nominal=True)
    biased, info = env.reset(seed=1)
    clean, _ = plain.reset(seed=1)
    bias = biased - clean
    assert info["effects"]["obs_bias_std"] == 0.5 and 0.2 < np.std(bias) < 1.0
    action = np.zeros(3, dtype=np.float32)
    assert np.allclose(env.step(action)[0] - plain.step(action)[0], bias)  # the same offset all episode long
    new_bias = env.reset(seed=2)[0] - plain.reset(seed=2)[0]
    assert not np.allclose(new_bias, bias)  # a new episode, a new offset


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_a_drawn_delay_delays_the_actions_by_the_drawn_number_of_steps(seed):
    env = simreal.make("hopper", nominal=True, effect_ranges={"action_delay_steps": [0, 3]})
    _, info = env.reset(seed=seed)
    delay = info["effects"]["action_delay_steps"]
    ctrl = env.unwrapped.data.ctrl
    rng = np.random.default_rng(seed)
    sent = [rng.uniform(-1, 1, 3).astype(np.float32) for _ in range(8)]
    applied = []
    for action in sent:
        env.step(action)
        applied.append(ctrl.copy())
    for t, actual in enumerate(applied):
        expected = sent[t - delay] if t >= delay else np.zeros(3)
        assert np.allclose(actual, expected, atol=1e-6), (delay, t)


def test_schedules_widen_effect_ranges_from_no_effect():
    full = {
        "torso_mass": ParameterRange(low=0.5, high=1.5),
        "action_delay_steps": ParameterRange(low=0, high=2, distribution="integer"),
        "obs_noise_std": ParameterRange(low=0.0, high=0.02),
    }
    curriculum = CurriculumSchedule(full, ramp_fraction=1.0)
    start = curriculum.ranges()
    assert (start["action_delay_steps"].low, start["action_delay_steps"].high) == (0, 0)
    assert (start["obs_noise_std"].low, start["obs_noise_std"].high) == (0, 0)
    curriculum.update(0.6)
    middle = curriculum.ranges()
    assert middle["action_delay_steps"].high == 1 and middle["action_delay_steps"].distribution == "integer"
    assert middle["obs_noise_std"].high == pytest.approx(0.012)
    curriculum.update(1.0)
    assert curriculum.ranges()["action_delay_steps"].high == 2

    adr = ADRSchedule(
        {"torso_mass": (0.5, 1.5), "action_delay_steps": (0, 2), "obs_noise_std": (0.0, 0.02)},
        initial_width=0.1,
        step=0.25,
        buffer_size=2,
        relative=False,
        integers=["action_delay_steps"],
    )
    assert adr.bounds["action_delay_steps"] == [0, 0] and adr.bounds["obs_noise_std"] == pytest.approx([0, 0.002])
    for _ in range(2):
        decision = adr.observe_boundary("action_delay_steps", "high", 10.0)
    assert decision.move == "expand" and adr.bounds["action_delay_steps"] == [0, 1]  # one whole step
    for _ in range(2):
        adr.observe_boundary("obs_noise_std", "high", 10.0)
    assert adr.bounds["obs_noise_std"][1] == pytest.approx(0.002 + 0.25 * 0.02)  # steps are fractions of the range
    for _ in range(2):
        adr.observe_boundary("action_delay_steps", "high", -10.0)
    assert adr.bounds["action_delay_steps"] == [0, 0]  # contracts back, never below no delay
    ranges = adr.ranges()
    assert ranges["action_delay_steps"].distribution == "integer" and np.isfinite(adr.entropy())


def test_training_draws_effects_logs_them_and_evaluates_with_history(tmp_path):
    config = tiny_config(
        tmp_path,
        "ppo",
        randomization={"effects": {"action_delay_steps": [0, 2], "obs_noise_std": [0, 0.02]}},
        env={"n_envs": 2, "history": 3, "normalize": {"observations": True, "rewards": True}},
    )
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    found = tags(run_dir)
    assert {"dr/action_delay_steps/mean", "dr/range/action_delay_steps/high", "dr/obs_noise_std/mean"} <= set(
        found["scalars"]
    )
    assert "dr/action_delay_steps" in found["histograms"]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["randomization"]["effects"]["action_delay_steps"] == [0, 2]
    policy = load_policy(run_dir)
    obs_dim, act_dim = 11, 3
    assert policy.model.observation_space.shape == (3 * (obs_dim + act_dim),)
    assert isinstance(policy.statistics, VecNormalize) and policy.statistics.obs_rms.mean.shape == (42,)
    report = json.loads((run_dir / "eval.json").read_text())
    assert set(report["targets"]) == {"mild", "moderate", "severe"}
    # data collection feeds the policy its history and records the robot's own observations
    recording = collect(str(run_dir), "hopper", target="moderate", episodes=1, seed=0)
    assert recording.observations.shape[1] == obs_dim


@pytest.mark.parametrize(
    ("effects", "message"),
    [
        ("{action_delay_steps: [2, 0]}", "randomization.effects.action_delay_steps: range low 2 > high 0"),
        ("{action_delay_steps: [0, 1.5]}", "action_delay_steps: [0, 1.5]: a delay is a whole number of control steps"),
        ("{action_delay_steps: 101}", "action_delay_steps: 101 steps is above the maximum delay of 100"),
        ("{obs_noise_std: [-0.1, 0.1]}", "randomization.effects.obs_noise_std: [-0.1, 0.1]: bounds must be finite"),
        ("{obs_noise_std: -0.1}", "randomization.effects.obs_noise_std: must be >= 0, got -0.1"),
        ("{latency: [0, 1]}", "randomization.effects.latency: unknown field"),
        ("{obs_bias_std: [0.1]}", "randomization.effects.obs_bias_std: expected a value or [low, high], got [0.1]"),
    ],
)
def test_bad_effect_ranges_give_one_line_and_exit_2(tmp_path, effects, message):
    config = tiny_config(tmp_path, "ppo")
    override = f"randomization.effects={effects}"
    result = runner.invoke(app, ["train", str(config), "--set", override, "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set randomization.effects"), lines
    assert message in lines[0], lines
    assert not (tmp_path / "r").exists()


def test_a_target_with_a_sensor_bias_is_shown_and_applied(tmp_path):
    path = tmp_path / "biased.yaml"
    path.write_text("base: hopper\neffects: {obs_bias_std: 0.05}\n")
    result = runner.invoke(app, ["envs", "--target", str(path)])
    assert result.exit_code == 0, result.output
    assert "obs bias σ=0.05" in result.stdout
    env, plain = simreal.make("hopper", target=str(path)), simreal.make("hopper", nominal=True)
    assert not np.allclose(env.reset(seed=0)[0], plain.reset(seed=0)[0])
