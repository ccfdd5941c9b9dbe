"""Online adaptation (UP-OSI): the dynamics input, the estimator's history, OSI training, and an adaptive policy
saved, loaded, evaluated, recorded with and run in the transfer pipeline; bad configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import simreal
from simreal.adaptation.osi import UniversalPolicy, errors, rollouts, train_osi
from simreal.cli import app
from simreal.envs.history import History
from simreal.envs.privileged import DynamicsInput
from simreal.runs.config import OSIConfig
from simreal.runs.policy import load_policy
from simreal.runs.setup import load_setup
from simreal.train.trainer import train
from simreal.transfer.config import TransferConfig
from simreal.transfer.pipeline import run_pipeline

runner = CliRunner()
NAMES = ["torso_mass", "thigh_joint_gain"]


def adaptive_config(folder: Path, **changes) -> Path:
    config = {
        "robot": "hopper",
        "seed": 1,
        "total_timesteps": 256,
        "randomization": {"parameters": NAMES, "ranges": {"thigh_joint_gain": [0.5, 1.5]}},
        "algorithm": {
            "name": "ppo",
            "hyperparameters": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
            "network": {"pi": [8], "vf": [8]},
        },
        "env": {"n_envs": 2},
        "eval": {"frequency": 256, "episodes": 1, "targets": ["mild"]},
        "checkpoint": {"frequency": 256, "keep": 1},
        "adaptation": {"kind": "uposi", "history": 4, "osi": {"hidden": [16], "iterations": 2, "episodes": 3}},
    }
    config.update(changes)
    path = folder / "adaptive.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("adaptive")
    train(load_setup(adaptive_config(folder)), folder / "run", device="cpu")
    return folder / "run"


def test_the_true_dynamics_input_is_the_episodes_log_multipliers():
    env = DynamicsInput(simreal.make("hopper", parameters=NAMES), NAMES)
    assert env.observation_space.shape == (11 + 2,)
    for seed in (0, 1):
        obs, info = env.reset(seed=seed)
        truth = np.log([info["dynamics"][name] for name in NAMES])
        assert np.allclose(obs[-2:], truth) and not np.allclose(truth, 0)
        obs, *_ = env.step(env.action_space.sample())
        assert np.allclose(obs[-2:], truth)  # constant within the episode


class Recorder:
    """An estimator that records what it is given and returns a fixed estimate."""

    history = 3

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        self.inputs.append(inputs.copy())
        return np.array([0.5, -0.5])


def test_the_estimator_reads_the_last_h_observations_and_actions_zeros_at_the_start():
    recorder = Recorder()
    env = DynamicsInput(simreal.make("hopper", parameters=NAMES), NAMES, recorder)
    plain = simreal.make("hopper", parameters=NAMES)
    obs, _ = env.reset(seed=4)
    raw, _ = plain.reset(seed=4)
    expected = History(3, 11, 3)
    assert np.allclose(recorder.inputs[-1], expected.start(raw))
    assert np.count_nonzero(recorder.inputs[-1][: 2 * 11]) == 0  # no observation before the first
    assert np.allclose(obs[-2:], [0.5, -0.5])
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, 3)
        obs, *_ = env.step(action)
        raw, *_ = plain.step(action)
        assert np.allclose(recorder.inputs[-1], expected.add(action, raw))
    last = recorder.inputs[-1]
    assert np.allclose(last[2 * 11 : 3 * 11], raw) and np.allclose(last[-3:], action)


def test_osi_training_reduces_its_error_on_held_out_rollouts(tmp_path):
    # the cart's actuator gain shows in every step (velocity change per unit of force): learnable from few episodes
    names = ["slider_gain", "gravity"]
    path = adaptive_config(
        tmp_path,
        robot="inverted_pendulum",
        randomization={"parameters": names, "ranges": {"slider_gain": [0.5, 1.5], "gravity": [0.5, 1.5]}},
        eval={"frequency": 0, "episodes": 1, "targets": []},
        adaptation={"kind": "uposi", "history": 4, "osi": {"hidden": [8], "iterations": 1, "episodes": 1, "epochs": 1}},
    )
    train(load_setup(path), tmp_path / "run", device="cpu")
    policy = load_policy(tmp_path / "run", true_dynamics=True)
    setup = policy.setup
    universal = UniversalPolicy(
        policy.model, policy.statistics, setup.spec, setup.ranges, setup.effects, setup.input_layout(), 4
    )
    settings = OSIConfig(hidden=[64, 64], iterations=2, episodes=100, epochs=80, batch_size=64)
    estimator, reports = train_osi(universal, settings, seed=0)
    assert len(reports) == 2 and reports[1]["samples"] > reports[0]["samples"]  # data aggregated over rounds
    held_out = rollouts(universal, episodes=30, seed=5000)
    seen = rollouts(universal, episodes=100, seed=0)  # the first round's episodes
    # knowing nothing: the training mean; the estimator must do much better on episodes it never saw
    guess = np.sqrt(np.mean((held_out.targets[:, 0] - seen.targets[:, 0].mean()) ** 2))
    assert errors(estimator, held_out)["slider_gain"]["log_rmse"] < 0.75 * guess


def test_an_adaptive_policy_saves_loads_evaluates_and_records(adaptive_run, tmp_path):
    assert (adaptive_run / "osi.pt").is_file()
    report = json.loads((adaptive_run / "osi.json").read_text())
    assert report["parameters"] == NAMES and len(report["rounds"]) == 2
    assert set(report["rounds"][-1]["held_out"]) == set(NAMES)
    policy = load_policy(adaptive_run)
    assert policy.dynamics_input.estimator is not None and policy.dynamics_input.names == tuple(NAMES)
    assert load_policy(adaptive_run, true_dynamics=True).dynamics_input.estimator is None
    for flags, source in (([], "estimated"), (["--true-dynamics"], "true")):
        out = tmp_path / f"eval_{source}.json"
        result = runner.invoke(
            app, ["evaluate", str(adaptive_run), "-t", "mild", "--episodes", "1", "--json", str(out), *flags]
        )
        assert result.exit_code == 0, result.output
        evaluated = json.loads(out.read_text())
        assert evaluated["dynamics_input"] == {"parameters": NAMES, "source": source}
        # the estimator's error against the target's true multipliers, per parameter
        error = evaluated["targets"]["mild"].get("estimator_error")
        assert (error is None) == (source == "true")
        if error is not None:
            assert set(error) == set(NAMES) and all(e >= 0 for e in error.values())
            assert "estimator error" in result.stdout
    result = runner.invoke(
        app,
        [
            "collect",
            str(adaptive_run),
            "--robot",
            "hopper",
            "--target",
            "mild",
            "--episodes",
            "1",
            "--out",
            str(tmp_path / "r.npz"),
        ],
    )
    assert result.exit_code == 0, result.output


def test_an_adaptive_policy_runs_inside_the_transfer_pipeline(adaptive_run, tmp_path):
    config = {
        "target": "mild",
        "episodes": 2,
        "source": {"run": str(adaptive_run)},
        "stages": {
            "sysid": {"enabled": False},
            "identified": {"enabled": False},
            "finetune": {"steps": 200, "eval_episodes": 1, "count_eval": False, "scratch_baseline": False},
            "oracle": {"enabled": False},
        },
    }
    result = run_pipeline(TransferConfig.model_validate(config), tmp_path / "out")
    assert [row["stage"] for row in result.report["stages"]] == ["zero_shot", "finetune"]
    # the fine-tuned adaptive policy keeps its estimator
    assert (tmp_path / "out" / "finetune" / "osi.pt").is_file()
    assert load_policy(tmp_path / "out" / "finetune").dynamics_input.estimator is not None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"adaptation": {"kind": "uposi", "parameters": ["gravity"]}}, "adaptation.parameters.0"),
        ({"adaptation": {"kind": "uposi"}, "randomization": {"enabled": False}}, "adaptation.kind"),
        ({"adaptation": {"kind": "uposi"}, "env": {"n_envs": 2, "history": 3}}, "adaptation.kind"),
        ({"adaptation": {"kind": "osi-only"}}, "adaptation.kind"),
        ({"adaptation": {"kind": "uposi", "history": 0}}, "adaptation.history"),
    ],
)
def test_bad_adaptation_configs_are_one_line_and_exit_2(tmp_path, changes, field):
    path = adaptive_config(tmp_path, **changes)
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert str(path) in result.stderr and field in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_estimator_error_on_a_target_is_measured_against_its_true_multipliers(adaptive_run):
    from simreal.envs.robots import load_target
    from simreal.evaluate.evaluator import TransferEvaluator

    policy = load_policy(adaptive_run, true_dynamics=True)
    spec = policy.setup.spec
    _, mild = load_target(spec, "mild")  # torso_mass 1.1; thigh_joint_gain nominal
    constant = Recorder()  # always estimates log-multipliers [0.5, -0.5]
    layout = policy.setup.input_layout("estimated", constant.history)
    evaluator = TransferEvaluator(spec, {"mild": mild}, 2, seed=0, layout=layout, estimator=constant)
    try:
        report = evaluator.evaluate(policy.model, policy.statistics)
    finally:
        evaluator.close()
    error = report.targets["mild"].estimator_error
    assert error["torso_mass"] == pytest.approx(abs(np.exp(0.5) / 1.1 - 1))
    assert error["thigh_joint_gain"] == pytest.approx(abs(np.exp(-0.5) - 1))


def rma_config(folder: Path, **changes) -> Path:
    names = ["slider_gain", "gravity"]
    rma = {"latent": 4, "encoder": [16], "channels": 16, "kernel": 2, "iterations": 4, "steps": 1500, "epochs": 20}
    return adaptive_config(
        folder,
        robot="inverted_pendulum",
        randomization={"parameters": names, "ranges": {"slider_gain": [0.5, 1.5], "gravity": [0.5, 1.5]}},
        eval={"frequency": 0, "episodes": 1, "targets": ["mild"]},
        adaptation={"kind": "rma", "history": 4, "rma": {**rma, "batch_size": 64}},
        **changes,
    )


@pytest.fixture(scope="module")
def rma_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rma")
    train(load_setup(rma_config(folder)), folder / "run", device="cpu")
    return folder / "run"


def test_the_rma_extractor_reads_x_e_and_the_history_in_their_places():
    import torch

    from simreal.adaptation.rma import RMAExtractor

    env = DynamicsInput(simreal.make("hopper", parameters=NAMES), NAMES, history=3)
    plain = simreal.make("hopper", parameters=NAMES)
    obs, info = env.reset(seed=2)
    raw, _ = plain.reset(seed=2)
    actions = [np.full(3, 0.1), np.full(3, -0.2)]
    for action in actions:
        obs, *_ = env.step(action)
        raw, *_ = plain.step(action)
    extractor = RMAExtractor(env.observation_space, obs_dim=11, act_dim=3, params=2, history=3, latent=4)
    x, e, history = extractor.parts(torch.as_tensor(obs[None], dtype=torch.float32))
    assert np.allclose(x[0].numpy(), raw, atol=1e-6)
    assert np.allclose(e[0].numpy(), np.log([info["dynamics"][n] for n in NAMES]), atol=1e-6)
    assert history.shape == (1, 14, 3)  # channels: observation and action; length: the 3 steps
    assert np.allclose(history[0, :11, -1].numpy(), raw, atol=1e-6)  # the newest observation last
    assert np.allclose(history[0, 11:, -1].numpy(), actions[-1]) and np.allclose(history[0, 11:, 0].numpy(), 0)
    assert extractor(torch.as_tensor(obs[None], dtype=torch.float32)).shape == (1, 11 + 4)


def test_the_rma_adaptation_module_learns_the_latent_on_policy(rma_run):
    rounds = json.loads((rma_run / "rma.json").read_text())["rounds"]
    # each round's error is measured on fresh rollouts, before fitting them: held out from every earlier fit
    assert len(rounds) == 4 and rounds[-1]["latent_error_before"] < 0.8 * rounds[0]["latent_error_before"]


def test_an_rma_policy_saves_loads_evaluates_and_runs_in_the_pipeline(rma_run, tmp_path):
    policy = load_policy(rma_run)
    assert policy.model.policy.features_extractor.is_adapting
    assert not load_policy(rma_run, true_dynamics=True).model.policy.features_extractor.is_adapting
    for flags, estimated in (([], True), (["--true-dynamics"], False)):
        out = tmp_path / f"eval_{estimated}.json"
        result = runner.invoke(
            app, ["evaluate", str(rma_run), "-t", "mild", "--episodes", "1", "--json", str(out), *flags]
        )
        assert result.exit_code == 0, result.output
        error = json.loads(out.read_text())["targets"]["mild"].get("estimator_error")
        assert (error is not None) == estimated and (not estimated or error["latent"] >= 0)
    recording = tmp_path / "r.npz"
    collected = runner.invoke(
        app,
        [
            "collect",
            str(rma_run),
            "--robot",
            "inverted_pendulum",
            "--target",
            "mild",
            "--episodes",
            "1",
            "--out",
            str(recording),
        ],
    )
    assert collected.exit_code == 0, collected.output
    config = {
        "target": "mild",
        "episodes": 2,
        "source": {"run": str(rma_run)},
        "stages": {
            "sysid": {"enabled": False},
            "identified": {"enabled": False},
            "finetune": {"steps": 200, "eval_episodes": 1, "count_eval": False, "strategy": "head"},
            "oracle": {"enabled": False},
        },
    }
    result = run_pipeline(TransferConfig.model_validate(config), tmp_path / "out")
    assert [row["stage"] for row in result.report["stages"]] == ["zero_shot", "scratch", "finetune"]
    # head fine-tuning left the adaptation module (the policy's bottom layer) as it was
    from simreal.runs.algorithms import load_pickled_model as load_model

    before = load_model(rma_run / "model.zip", "ppo").policy.features_extractor.adapter
    after = load_model(tmp_path / "out" / "finetune" / "model.zip", "ppo").policy.features_extractor.adapter
    assert all(
        np.array_equal(a.detach(), b.detach()) for a, b in zip(before.parameters(), after.parameters(), strict=True)
    )


def test_rma_is_for_ppo(tmp_path):
    sac = {"name": "sac", "hyperparameters": {"learning_starts": 10}, "network": {"pi": [8], "qf": [8]}}
    path = rma_config(tmp_path, algorithm=sac)
    result = runner.invoke(app, ["train", str(path), "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and "adaptation.kind" in result.stderr and "PPO" in result.stderr


def test_the_dynamics_input_is_normalized_with_the_full_training_range_not_running_statistics(adaptive_run):
    # under a curriculum the log-multipliers start at exactly 0: running statistics would divide by ~0 later
    policy = load_policy(adaptive_run)
    setup, statistics = policy.setup, policy.statistics
    size = statistics.observation_space.shape[0]
    pinned = setup.pinned(policy.layout)
    assert sorted(pinned) == list(range(size - len(NAMES), size))
    for index, name in zip(sorted(pinned), setup.adaptive, strict=True):
        low, high = np.log(setup.ranges[name].low), np.log(setup.ranges[name].high)
        assert statistics.obs_rms.mean[index] == pytest.approx((low + high) / 2)
        assert statistics.obs_rms.var[index] == pytest.approx((high - low) ** 2 / 12)
    # still pinned after more running updates, as seen by the policy
    observations = np.zeros((4, size))
    statistics.obs_rms.update(observations)
    normalized = statistics.normalize_obs(np.full((1, size), 0.1))
    index = sorted(pinned)[0]
    mean, var = pinned[index]
    assert normalized[0, index] == pytest.approx((0.1 - mean) / np.sqrt(var + statistics.epsilon), rel=1e-5)
