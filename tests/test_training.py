"""Training from the CLI end to end, the run directory, TensorBoard tags, resume after a kill, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from simreal.cli import app
from simreal.envs.robots import load_robot
from simreal.runs.algorithms import load_pickled_model as load_model

runner = CliRunner()

TINY = {
    "ppo": {
        "name": "ppo",
        "hyperparameters": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
        "network": {"pi": [8], "vf": [8]},
    },
    "sac": {
        "name": "sac",
        "hyperparameters": {"learning_starts": 64, "buffer_size": 2000, "batch_size": 32},
        "network": {"pi": [8], "qf": [8]},
    },
}


def tiny_config(tmp_path: Path, algo: str, **changes) -> Path:
    """A config small enough for the test suite: hundreds of steps, 8-unit networks."""
    config = {
        "robot": "hopper",
        "seed": 3,
        "total_timesteps": 512,
        "algorithm": TINY[algo],
        "env": {"n_envs": 2, "normalize": {"observations": True, "rewards": True}},
        "eval": {"frequency": 256, "episodes": 2},
        "checkpoint": {"frequency": 256, "keep": 2},
    }
    config.update(changes)
    path = tmp_path / f"tiny_{algo}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tags(run_dir: Path) -> dict[str, list[str]]:
    accumulator = EventAccumulator(str(run_dir / "tb"), size_guidance={"histograms": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator.Tags()


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_train_end_to_end_writes_the_run_directory(tmp_path, algo):
    run_dir = tmp_path / "run"
    result = runner.invoke(
        app, ["train", str(tiny_config(tmp_path, algo)), "--run-dir", str(run_dir), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert "target: severe" in result.stdout and "tensorboard --logdir" in result.stdout

    model_files = ("weights.pt", "model.json", "vecnormalize.npz", "model.zip", "vecnormalize.pkl")
    for name in (*model_files, *(f"best/{name}" for name in model_files), "eval.json"):
        assert (run_dir / name).is_file(), name
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    checkpoint = run_dir / "checkpoints" / latest["checkpoint"]
    assert latest["num_timesteps"] == 512
    assert all((checkpoint / name).is_file() for name in model_files)
    assert (checkpoint / "replay_buffer.npz").is_file() == (algo == "sac")
    assert not (checkpoint / "replay_buffer.pkl").exists()
    assert len([p for p in (run_dir / "checkpoints").iterdir() if p.is_dir()]) == 2  # keep: 2

    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["algorithm"]["name"] == algo and saved["total_timesteps"] == 512
    assert saved["algorithm"]["hyperparameters"]["batch_size"] == TINY[algo]["hyperparameters"]["batch_size"]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["command"] and run["simreal_version"] and "git_commit" in run and run["device"] == "cpu"
    assert load_model(run_dir / "model.zip", algo).num_timesteps == 512

    found = tags(run_dir)
    scalars = set(found["scalars"])
    params = list(load_robot("hopper").parameters)
    expected = {"eval/nominal/mean_return", "eval/randomized/mean_return", "rollout/ep_rew_mean"}
    expected |= {f"dr/{p}/mean" for p in params}
    for target in ("mild", "moderate", "severe"):
        expected |= {f"eval/target/{target}/mean_return", f"sim2real/gap/{target}", f"sim2real/relative_gap/{target}"}
    assert expected <= scalars, expected - scalars
    assert any(tag.startswith("train/") for tag in scalars)
    assert {f"dr/{p}" for p in params} <= set(found["histograms"])
    assert "config/text_summary" in found["tensors"]


def test_default_run_name_and_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, "ppo", eval={"frequency": 0, "episodes": 1, "targets": ["mild"]})
    result = runner.invoke(app, ["train", str(config), "--seed", "7", "--set", "total_timesteps=256"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("hopper_ppo_7_")
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["seed"] == 7 and saved["total_timesteps"] == 256


def test_evaluate_json_schema_and_determinism(trained_run, tmp_path):
    first, second, other = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    for path, seed in ((first, 5), (second, 5), (other, 6)):
        result = runner.invoke(
            app, ["evaluate", str(trained_run), "--episodes", "3", "--seed", str(seed), "--json", str(path)]
        )
        assert result.exit_code == 0, result.output
    assert first.read_text() == second.read_text()
    report = json.loads(first.read_text())
    assert report["schema"] == "simreal.evaluate/1" and report["robot"] == "hopper" and report["episodes"] == 3
    assert set(report["source"]) == {"nominal", "randomized"}
    assert set(report["targets"]) == {"mild", "moderate", "severe"}
    for row in report["targets"].values():
        assert len(row["returns"]) == 3
        assert row["gap"] == pytest.approx(report["source"]["nominal"]["mean_return"] - row["mean_return"])
        low, high = row["gap_ci95"]
        assert low <= row["gap"] <= high
        assert row["relative_gap_ci95"][0] <= row["relative_gap"] <= row["relative_gap_ci95"][1]
    assert json.loads(other.read_text())["source"] != report["source"]
    one = runner.invoke(app, ["evaluate", str(trained_run / "best" / "model.zip"), "-t", "severe", "--episodes", "1"])
    assert one.exit_code == 0 and "target: severe" in one.stdout and "target: mild" not in one.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algorithm.hyperparameters.n_stepz=3", "algorithm.hyperparameters.n_stepz: unknown field"),
        ("total_timesteps=many", "total_timesteps: Input should be a valid integer"),
        ("env.n_envs=-1", "env.n_envs: Input should be greater than 0"),
        ("eval.episodes=0", "eval.episodes: Input should be greater than 0"),
        ("robot=spider", "robot: unknown robot 'spider'"),
        ("eval.targets=[brutal]", "eval.targets: eval.targets.0: unknown target 'brutal'"),
        (
            "randomization.ranges={torso_mass: [2, 1]}",
            "randomization.ranges: randomization.ranges.torso_mass: range low 2.0 > high 1.0",
        ),
        (
            "randomization.parameters=[torso_mass, wing_mass]",
            "randomization.parameters: randomization.parameters.1: unknown parameter 'wing_mass' for hopper",
        ),
        ("algorithm.network.activation=eval('x')", "algorithm.network.activation: Input should be"),
        ("algorithm.name=dqn", "algorithm.name: algorithm: Input tag 'dqn'"),
        (
            "randomization.schedule={kind: adr, thresholds: {low: 0.9, high: 0.5}}",
            "randomization.schedule: randomization.schedule.thresholds: low 0.9 > high 0.5",
        ),
        (
            "randomization.schedule={kind: adr, step: 0}",
            "randomization.schedule: randomization.schedule.step: Input should be greater than 0",
        ),
        (
            "randomization.schedule={kind: adr, limits: {friction: [1.1, 1.5]}}",
            "randomization.schedule: randomization.schedule.limits.friction: limits [1.1, 1.5] do not contain the "
            "nominal value 1.0",
        ),
        (
            "randomization.schedule={kind: adr, probability: 1.2}",
            "randomization.schedule: randomization.schedule.probability: Input should be less than or equal to 1",
        ),
        (
            "randomization.schedule={kind: curriculum, ramp_fraction: -1}",
            "randomization.schedule: randomization.schedule.ramp_fraction",
        ),
    ],
)
def test_bad_set_override_gives_one_line_naming_the_set_key(tmp_path, override, message):
    config = tiny_config(tmp_path, "ppo")
    result = runner.invoke(app, ["train", str(config), "--set", override, "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --set {message}"), lines
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env": {"n_envs": -1}}, "env.n_envs: Input should be greater than 0"),
        ({"randomization": {"parameters": ["wing_mass"]}}, "randomization.parameters.0: unknown parameter 'wing_mass'"),
        ({"randomization": {"ranges": {"wing_mass": [0.9, 1.1]}}}, "randomization.ranges.wing_mass: unknown parameter"),
        ({"eval": {"targets": ["brutal"]}}, "eval.targets.0: unknown target 'brutal'"),
    ],
)
def test_bad_config_file_gives_one_line_naming_the_file_and_field(tmp_path, changes, message):
    config = tiny_config(tmp_path, "ppo", **changes)
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {config}: {message}"), lines


def test_a_misspelled_config_name_lists_the_shipped_ones():
    result = runner.invoke(app, ["train", "hopper_ppo_drr"])
    assert result.exit_code == 2
    assert "unknown config 'hopper_ppo_drr'" in result.stderr and "hopper_ppo_dr," in result.stderr
    assert "transfer_hopper" not in result.stderr  # a pipeline is not something simreal train runs
    pipeline = runner.invoke(app, ["transfer", "transfer_hoper"])
    assert pipeline.exit_code == 2 and "(known: transfer_hopper, or a YAML file)" in pipeline.stderr


def test_bad_files_and_devices_give_one_line(tmp_path, trained_run):
    missing = runner.invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "nope.yaml: file not found" in missing.stderr
    corrupt = tmp_path / "model.zip"
    corrupt.write_bytes(b"not a zip at all")
    (tmp_path / "config.yaml").write_text((trained_run / "config.yaml").read_text())
    result = runner.invoke(app, ["evaluate", str(corrupt)])
    assert result.exit_code == 2 and "model.zip: holds pickles only" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    gone = runner.invoke(app, ["evaluate", str(tmp_path / "no_run")])
    assert gone.exit_code == 2 and "no such run directory or model file" in gone.stderr
    again = runner.invoke(app, ["train", str(tiny_config(tmp_path, "ppo")), "--run-dir", str(trained_run)])
    assert again.exit_code == 2 and "already holds a run" in again.stderr
    nothing = runner.invoke(app, ["train", "--resume", str(tmp_path / "x")])
    assert nothing.exit_code == 2 and "not a simreal run directory" in nothing.stderr
    import torch

    if not torch.cuda.is_available():
        cuda = runner.invoke(
            app, ["train", str(tiny_config(tmp_path, "ppo")), "--device", "cuda", "--run-dir", str(tmp_path / "c")]
        )
        assert cuda.exit_code == 2 and "cuda requested" in cuda.stderr


def test_adr_in_subprocess_workers_is_checkpointed_and_resumed(tmp_path):
    schedule = {
        "kind": "adr",
        "initial_width": 0.05,
        "step": 0.05,
        "probability": 1.0,
        "buffer_size": 1,
        "thresholds": {"low": -1.0e9, "high": -1.0e8, "relative": False},  # every judged boundary expands
    }
    config = tiny_config(
        tmp_path,
        "ppo",
        total_timesteps=256,
        env={"n_envs": 2, "vec_env": "subproc", "normalize": {"observations": True, "rewards": False}},
        randomization={"parameters": ["torso_mass", "friction"], "schedule": schedule},
        eval={"frequency": 0, "episodes": 1, "targets": ["mild"]},
    )
    run_dir = tmp_path / "run"
    first = runner.invoke(app, ["train", str(config), "--run-dir", str(run_dir), "--device", "cpu"])
    assert first.exit_code == 0, first.output
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    state = json.loads((run_dir / "checkpoints" / latest["checkpoint"] / "state.json").read_text())
    saved_high = state["schedule"]["bounds"]["torso_mass"][1]
    assert saved_high > 1.05  # boundary returns came back from the workers and moved the boundary

    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "total_timesteps=512"])
    assert resumed.exit_code == 0, resumed.output
    accumulator = EventAccumulator(str(run_dir / "tb"))
    accumulator.Reload()
    highs = [(e.step, e.value) for e in accumulator.Scalars("dr/range/torso_mass/high")]
    after = [value for step, value in highs if step >= 256]
    assert after and min(after) >= saved_high - 1e-9  # continued from the checkpoint, not from the start
    entropy = [e.value for e in accumulator.Scalars("dr/adr_entropy")]
    assert entropy[-1] > entropy[0]
    assert any(tag.startswith("dr/adr/torso_mass/") for tag in accumulator.Tags()["scalars"])


def test_a_checkpoint_interrupted_mid_write_leaves_the_latest_intact(tmp_path, monkeypatch):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    import simreal
    from simreal.runs import rundir
    from simreal.runs.algorithms import load_pickled_model as load_model

    venv = DummyVecEnv([lambda: simreal.make("hopper", nominal=True)])
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, policy_kwargs={"net_arch": [8]}, device="cpu")
    first = rundir.save_checkpoint(model, venv, tmp_path, {"streams": []}, keep=2)
    model.num_timesteps = 64

    def killed(model, venv, folder):
        (folder / "model.zip").parent.mkdir(parents=True, exist_ok=True)
        (folder / "model.zip").write_bytes(b"PK half written")
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(rundir, "save_model", killed)
    with pytest.raises(KeyboardInterrupt):
        rundir.save_checkpoint(model, venv, tmp_path, {"streams": []}, keep=2)
    assert rundir.resume_point(tmp_path).folder == first
    assert load_model(first / "model.zip", "ppo").num_timesteps == 0


def test_pruning_keeps_the_latest_and_drops_what_a_killed_run_left_past_it(tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    import simreal
    from simreal.runs import rundir

    venv = DummyVecEnv([lambda: simreal.make("hopper", nominal=True)])
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, policy_kwargs={"net_arch": [8]}, device="cpu")
    folder = tmp_path / "checkpoints"
    stale = folder / f"{999:012d}"  # complete, but latest.json never named it: the run was killed in between
    stale.mkdir(parents=True)
    for steps in (100, 200, 300):
        model.num_timesteps = steps
        rundir.save_checkpoint(model, venv, tmp_path, {"streams": []}, keep=2)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [f"{200:012d}", f"{300:012d}"]
    assert rundir.resume_point(tmp_path).folder.name == f"{300:012d}"
    again = {"streams": [], "again": True}
    rundir.save_checkpoint(model, venv, tmp_path, again, keep=2)  # the same step, saved again in place
    assert json.loads((rundir.resume_point(tmp_path).folder / "state.json").read_text())["again"] is True
