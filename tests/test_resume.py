"""Resume continues the same run: its own config, its random streams, true step counts, no step logged twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

import simreal
from simreal.cli import app
from simreal.runs.algorithms import load_pickled_model as load_model
from simreal.runs.setup import load_setup, resume_setup
from simreal.train.trainer import train

runner = CliRunner()


def tiny_config(tmp_path: Path, **changes) -> Path:
    config = {
        "robot": "hopper",
        "seed": 3,
        "total_timesteps": 1024,
        "algorithm": {
            "name": "ppo",
            "hyperparameters": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
            "network": {"pi": [8], "vf": [8]},
        },
        "env": {"n_envs": 2},
        "eval": {"frequency": 0, "episodes": 1, "targets": ["mild"]},
        "checkpoint": {"frequency": 256, "keep": 2},
    }
    config.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_resume_after_sigkill_continues_the_run_with_its_own_config(tmp_path):
    config = tiny_config(tmp_path)  # the file says 1024 timesteps; the run is started with 4096
    total, interval = 4096, 256
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "simreal.cli", "train", str(config), "--set", f"total_timesteps={total}"]
    process = subprocess.Popen(
        [*command, "--run-dir", str(run_dir), "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    latest = run_dir / "checkpoints" / "latest.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (
        latest.exists() and json.loads(latest.read_text())["num_timesteps"] >= 3 * interval
    ):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    saved_at = json.loads(latest.read_text())["num_timesteps"]
    assert saved_at < total, "the run finished before it could be killed"
    checkpoint = run_dir / "checkpoints" / json.loads(latest.read_text())["checkpoint"]
    assert load_model(checkpoint / "model.zip", "ppo").num_timesteps == saved_at  # the latest is never corrupt

    # a config or --set that disagrees with the run is refused, and nothing is written
    before = (run_dir / "config.yaml").read_text()
    for refused, message in (
        ([str(config)], "total_timesteps: 1024 differs from the run's 4096"),
        (["--set", "seed=5"], "--set seed: 5 differs from the run's 3"),
        (["--seed", "5"], "--seed: 5 differs from the run's 3"),
        (["--set", "total_timesteps=100"], f"the run already trained {saved_at} timesteps"),
    ):
        result = runner.invoke(app, ["train", "--resume", str(run_dir), *refused])
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert (run_dir / "config.yaml").read_text() == before

    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"resumed at {saved_at} timesteps" in result.stdout and f"{total} of {total}" in result.stdout
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["total_timesteps"] == total
    assert load_model(run_dir / "model.zip", "ppo").num_timesteps == total
    assert json.loads((run_dir / "eval.json").read_text())["num_timesteps"] == total
    run = json.loads((run_dir / "run.json").read_text())
    assert run["num_timesteps"] == total and len(run["starts"]) == 2
    assert run["starts"][1]["start_timesteps"] == saved_at and run["starts"][1]["end_timesteps"] == total
    assert "git_commit" in run and (run["git_commit"] or run["git_commit_note"])

    # TensorBoard shows every step once: the killed run's steps past the checkpoint are purged
    accumulator = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0})
    accumulator.Reload()
    for tag in accumulator.Tags()["scalars"]:
        steps = [event.step for event in accumulator.Scalars(tag)]
        assert len(steps) == len(set(steps)), tag

    # the budget is extended only explicitly, and the same budget again trains nothing
    again = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", f"total_timesteps={total}"])
    assert again.exit_code == 0 and "trained 0 more" in again.stdout
    more = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", f"total_timesteps={total + 256}"])
    assert more.exit_code == 0, more.output
    assert load_model(run_dir / "model.zip", "ppo").num_timesteps == total + 256


class _Killed(Exception):
    pass


class _KillAt(BaseCallback):
    """Dies like a killed process at this many timesteps: nothing more is written."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at:
            raise _Killed
        return True


class _EpisodeDynamics(BaseCallback):
    """Per env, the dynamics and the return of every episode that ends after ``after`` timesteps."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after
        self.episodes: dict[int, list[tuple[dict[str, float], float]]] = defaultdict(list)

    def _on_step(self) -> bool:
        for index, done in enumerate(self.locals["dones"]):
            if done and self.num_timesteps > self.after:
                dynamics = self.training_env.env_method("get_dynamics", indices=[index])[0]
                self.episodes[index].append((dynamics, self.locals["infos"][index]["episode"]["r"]))
        return True


@pytest.mark.parametrize("schedule", ["fixed", "curriculum"])
def test_a_resumed_run_takes_the_very_steps_of_an_uninterrupted_one(schedule, tmp_path):
    # a curriculum has moved the ranges between an episode's start and the checkpoint: the replay needs its draw
    effects = {"obs_noise_std": 0.01, "action_noise_std": 0.05, "action_delay_steps": [0, 2]}
    randomization = {"effects": effects, "schedule": {"kind": schedule}}
    config = tiny_config(tmp_path, randomization=randomization, env={"n_envs": 2})
    setup = load_setup(config)
    checkpoint = 512

    uninterrupted = _EpisodeDynamics(after=checkpoint)
    train(setup, tmp_path / "a", device="cpu", callbacks=[uninterrupted])

    with pytest.raises(_Killed):
        train(setup, tmp_path / "b", device="cpu", callbacks=[_KillAt(checkpoint + 200)])
    assert json.loads((tmp_path / "b" / "checkpoints" / "latest.json").read_text())["num_timesteps"] == checkpoint
    resumed = _EpisodeDynamics(after=checkpoint)
    train(resume_setup(tmp_path / "b"), tmp_path / "b", device="cpu", resume=True, callbacks=[resumed])

    # the episodes in progress at the checkpoint go on where they stood (replayed, see simreal.envs.replay): every
    # env ends the same episodes, with the same dynamics, effects and returns (the Monitor's, whole episodes)
    for index in range(2):
        assert len(uninterrupted.episodes[index]) >= 2
        assert resumed.episodes[index] == uninterrupted.episodes[index], index
    # and the policy learned the same: same seed, same numbers
    weights = [load_model(tmp_path / run / "model.zip", "ppo").policy.state_dict() for run in ("a", "b")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    assert (
        json.loads((tmp_path / "a" / "eval.json").read_text())["source"]
        == json.loads((tmp_path / "b" / "eval.json").read_text())["source"]
    )


def test_stream_state_round_trips_through_json():
    env = simreal.make("hopper", effects={"obs_noise_std": 0.05, "action_noise_std": 0.1})
    env.reset(seed=11)
    for _ in range(3):
        env.step(env.action_space.sample())
    state = json.loads(json.dumps(env.get_wrapper_attr("get_stream_state")()))
    assert {"dynamics", "dynamics_pending", "initial_state", "observation_noise", "action_noise"} <= set(state)

    other = simreal.make("hopper", effects={"obs_noise_std": 0.05, "action_noise_std": 0.1})
    other.reset(seed=99)
    other.get_wrapper_attr("set_stream_state")(state)
    obs_a, info_a = env.reset()
    obs_b, info_b = other.reset()
    assert info_a["dynamics"] == info_b["dynamics"]
    assert (obs_a == obs_b).all()  # the same initial-state noise and the same observation noise
    action = env.action_space.sample()
    assert (env.step(action)[0] == other.step(action)[0]).all()  # the same action noise too


def test_drawn_effects_and_the_sensor_bias_continue_after_a_stream_round_trip():
    ranges = {"action_delay_steps": [0, 2], "obs_bias_std": [0.0, 0.05], "obs_noise_std": [0.0, 0.02]}
    env = simreal.make("hopper", effect_ranges=ranges)
    env.reset(seed=11)
    env.reset()
    state = json.loads(json.dumps(env.get_wrapper_attr("get_stream_state")()))
    assert "observation_bias" in state

    other = simreal.make("hopper", effect_ranges=ranges)
    other.reset(seed=99)
    other.get_wrapper_attr("set_stream_state")(state)
    for _ in range(3):  # the same draws of delay, bias and noise, episode after episode
        obs_a, info_a = env.reset()
        obs_b, info_b = other.reset()
        assert info_a["effects"] == info_b["effects"] and info_a["dynamics"] == info_b["dynamics"]
        assert (obs_a == obs_b).all()


def test_resuming_a_complete_run_says_so_and_how_to_extend_it(tmp_path):
    # PPO stops at the end of the rollout that reaches the budget: 100 asked, 128 trained
    config = tiny_config(tmp_path, total_timesteps=100, env={"n_envs": 1}, checkpoint={"frequency": 0})
    config_data = yaml.safe_load(config.read_text())
    config_data["algorithm"]["hyperparameters"]["n_steps"] = 64
    config.write_text(yaml.safe_dump(config_data))
    run_dir = tmp_path / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train(load_setup(config), run_dir, device="cpu")  # the run trains on config.torch_threads (1)
        assert torch.get_num_threads() == 2  # and gives the caller's setting back
    finally:
        torch.set_num_threads(before)
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "the run is complete: 128 of 100 timesteps" in result.stdout and "--set total_timesteps=N" in result.stdout
    assert "--set" not in result.stderr  # no flag the user did not type
