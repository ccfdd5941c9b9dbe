"""Training that holds across the range: the asymmetric actor-critic (the critic reads the privileged inputs, the
actor does not; saved policies act where nothing privileged exists) and the weakest-region objective in a run; bad
settings are one line."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from simreal.cli import app
from simreal.envs.factory import make_env
from simreal.envs.privileged import PrivilegedInput
from simreal.envs.vector import EnvFactory, vectorize
from simreal.runs.algorithms import new_model
from simreal.runs.asymmetric import AsymmetricActorCriticPolicy, AsymmetricSACPolicy
from simreal.runs.policy import load_policy
from simreal.runs.setup import resolve
from tests.test_training import tags, tiny_config

runner = CliRunner()


def _setup(tmp_path, algo: str, **changes):
    from simreal.runs.config_files import load_config

    changes.setdefault("algorithm", {})
    path = tiny_config(tmp_path, algo)
    data = yaml.safe_load(path.read_text())
    data["algorithm"]["privileged_critic"] = True
    data["randomization"] = {"effects": {"action_delay_steps": [0, 2], "obs_noise_std": [0.0, 0.02]}}
    path.write_text(yaml.safe_dump(data))
    return resolve(load_config(path))


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_the_critic_reads_the_privileged_inputs_and_the_actor_does_not(tmp_path, algo):
    setup = _setup(tmp_path, algo)
    privileged = setup.privileged
    # every randomized parameter and both drawn effects
    assert privileged.names[-2:] == ("action_delay_steps", "obs_noise_std") and privileged.size == 14
    venv = vectorize(EnvFactory(setup.spec, setup.ranges, dynamics_input=setup.training_input), 1, seed=0)
    model = new_model(setup.config, venv, "cpu", setup.input_layout())
    total = venv.observation_space.shape[0]
    assert total == 11 + privileged.size
    policy = model.policy
    obs = np.random.default_rng(0).normal(size=(5, total))
    changed = obs.copy()
    changed[:, -privileged.size :] += 1.5  # only the privileged part
    actions = model.predict(obs, deterministic=True)[0]
    np.testing.assert_array_equal(actions, model.predict(changed, deterministic=True)[0])
    with torch.no_grad():
        if algo == "ppo":
            assert isinstance(policy, AsymmetricActorCriticPolicy)
            assert policy.mlp_extractor.policy_net[0].in_features == 11
            assert policy.mlp_extractor.value_net[0].in_features == total
            before = policy.predict_values(torch.as_tensor(obs, dtype=torch.float32))
            after = policy.predict_values(torch.as_tensor(changed, dtype=torch.float32))
        else:
            assert isinstance(policy, AsymmetricSACPolicy)
            assert policy.actor.latent_pi[0].in_features == 11
            assert policy.critic.q_networks[0][0].in_features == total + 3
            act = torch.as_tensor(actions, dtype=torch.float32)
            before = policy.critic(torch.as_tensor(obs, dtype=torch.float32), act)[0]
            after = policy.critic(torch.as_tensor(changed, dtype=torch.float32), act)[0]
    assert not torch.allclose(before, after)
    venv.close()


def test_training_envs_carry_the_standardized_truth_and_others_zeros(tmp_path):
    setup = _setup(tmp_path, "ppo")
    privileged = setup.privileged
    env = make_env(setup.spec, setup.ranges, dynamics_input=setup.training_input)
    obs, info = env.reset(seed=4)
    truth = [np.log(info["dynamics"][n]) if n in info["dynamics"] else info["effects"][n] for n in privileged.names]
    expected = (np.array(truth) - np.array(privileged.mean)) / np.sqrt(privileged.variance)
    np.testing.assert_allclose(obs[-privileged.size :], expected)
    assert np.all(np.abs(expected) < 2.0)  # the fixed statistics span the training range
    padded = make_env(setup.spec, setup.ranges, dynamics_input=setup.dynamics_input)
    obs, _ = padded.reset(seed=4)
    np.testing.assert_array_equal(obs[-privileged.size :], 0.0)


def test_padding_reads_nothing_from_the_env():
    """On a target or a robot the privileged part is padding: any env with a flat Box works, even a plain
    gymnasium one whose reset info holds no dynamics."""
    from simreal.envs.privileged import PrivilegedSpec

    spec = PrivilegedSpec(("friction",), (0.0,), (1.0,))
    env = PrivilegedInput(gym.make("Pendulum-v1"), spec)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs[-1] == 0.0
    with pytest.raises(ValueError, match="needs a simreal env"):
        PrivilegedInput(gym.make("Pendulum-v1"), spec.read()).reset(seed=0)


@pytest.fixture(scope="module")
def asymmetric_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("asymmetric")
    path = tiny_config(tmp_path, "ppo", eval={"frequency": 0, "episodes": 1, "targets": ["mild"]})
    data = yaml.safe_load(path.read_text())
    data["algorithm"]["privileged_critic"] = True
    path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return run_dir


def test_a_saved_asymmetric_policy_is_evaluated_fine_tuned_and_recorded_without_privileged_inputs(
    asymmetric_run, tmp_path
):
    saved = yaml.safe_load((asymmetric_run / "config.yaml").read_text())
    assert saved["algorithm"]["privileged_critic"] is True  # the switch is saved with the run
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["evaluate", str(asymmetric_run), "--episodes", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["dynamics_input"]["privileged_critic"]["read"] is False
    assert np.isfinite(document["targets"]["mild"]["mean_return"])
    # the policy's actions on a target do not depend on what stands in the privileged part
    policy = load_policy(asymmetric_run)
    size = policy.dynamics_input.privileged.size
    env = make_env(policy.setup.spec, fixed={"friction": 0.7}, dynamics_input=policy.dynamics_input)
    obs, _ = env.reset(seed=0)
    other = obs.copy()
    other[-size:] = 3.0
    normalize = policy.statistics.normalize_obs
    np.testing.assert_array_equal(
        policy.model.predict(normalize(obs), deterministic=True)[0],
        policy.model.predict(normalize(other), deterministic=True)[0],
    )
    record = tmp_path / "recording.npz"
    result = runner.invoke(
        app,
        [
            "collect",
            str(asymmetric_run),
            "--robot",
            "hopper",
            "--target",
            "mild",
            "--episodes",
            "1",
            "--out",
            str(record),
        ],
    )
    assert result.exit_code == 0, result.output
    finetuned = tmp_path / "finetuned"
    result = runner.invoke(
        app,
        ["finetune", str(asymmetric_run), "--target", "mild", "--steps", "128", "--final-episodes", "1"]
        + ["--eval-every", "128", "--eval-episodes", "1", "--run-dir", str(finetuned), "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert (finetuned / "model.zip").exists()
    # a fresh policy on the target is a plain one: nothing privileged there
    scratch = tmp_path / "scratch"
    result = runner.invoke(
        app,
        ["finetune", str(asymmetric_run), "--target", "mild", "--steps", "128", "--final-episodes", "1"]
        + [
            "--eval-every",
            "128",
            "--eval-episodes",
            "1",
            "--from-scratch",
            "--run-dir",
            str(scratch),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((scratch / "config.yaml").read_text())["algorithm"]["privileged_critic"] is False
    assert load_policy(scratch).dynamics_input is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"randomization": {"enabled": False}}, "algorithm.privileged_critic: nothing is privileged"),
        ({"adaptation": {"kind": "uposi"}}, "algorithm.privileged_critic: a uposi policy already sees"),
    ],
)
def test_bad_privileged_critic_settings_are_one_line_naming_the_field(tmp_path, changes, message):
    path = tiny_config(tmp_path, "ppo", **changes)
    data = yaml.safe_load(path.read_text())
    data["algorithm"]["privileged_critic"] = True
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_weakest_region_run_logs_and_checkpoints_its_bins(tmp_path):
    path = tiny_config(tmp_path, "ppo", robust={"method": "weakest", "bins": 3, "window": 4})
    # 512 steps of a fresh policy: short episodes, so every bin hears several
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    scalars = tags(run_dir)["scalars"]
    assert {"dr/weakest/friction/center", "dr/weakest/friction/focus"} <= set(scalars)
    state = json.loads(next((run_dir / "checkpoints").glob("*/state.json")).read_text())
    assert set(state["schedule"]["weakest"]) <= set(state["schedule"]["returns"])
    assert sum(len(b) for b in state["schedule"]["returns"]["friction"]) > 0  # episodes heard, per bin
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["robust"]["method"] == "weakest"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"robust": {"method": "weakest", "probability": 0}}, "robust.probability: Input should be greater than 0"),
        ({"robust": {"method": "weakest", "probability": 1.5}}, "robust.probability: Input should be less than"),
        ({"robust": {"method": "weakest", "bins": 1}}, "robust.bins: Input should be greater than or equal to 2"),
        ({"robust": {"method": "epsilon"}}, "robust.method: Input should be 'none' or 'weakest'"),
        (
            {"robust": {"method": "weakest"}, "randomization": {"schedule": {"kind": "adr"}}},
            "robust.method: works with the fixed and curriculum schedules",
        ),
        (
            {"robust": {"method": "weakest"}, "randomization": {"enabled": False}},
            "robust.method: needs randomized dynamics",
        ),
    ],
)
def test_bad_robust_objective_settings_are_one_line_naming_the_field(tmp_path, changes, message):
    path = tiny_config(tmp_path, "ppo", **changes)
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_resumed_weakest_region_run_keeps_the_bins_it_had_heard(tmp_path):
    path = tiny_config(
        tmp_path,
        "ppo",
        total_timesteps=256,
        robust={"method": "weakest", "bins": 3, "window": 40},
        eval={"frequency": 0, "episodes": 1, "targets": ["mild"]},
    )
    run_dir = tmp_path / "run"
    assert runner.invoke(app, ["train", str(path), "--run-dir", str(run_dir), "--device", "cpu"]).exit_code == 0

    def bins() -> list[list[float]]:
        latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
        state = json.loads((run_dir / "checkpoints" / latest["checkpoint"] / "state.json").read_text())
        return state["schedule"]["returns"]["friction"]

    before = bins()
    assert sum(map(len, before)) > 0
    resumed = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", "total_timesteps=512"])
    assert resumed.exit_code == 0, resumed.output
    after = bins()
    # the resumed run added to the checkpoint's bins instead of starting them over (no bin is full yet)
    assert sum(map(len, after)) > sum(map(len, before))
    assert all(new[: len(old)] == old for old, new in zip(before, after, strict=True))
