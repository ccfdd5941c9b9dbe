"""Fine-tuning on a target: what each strategy freezes, progressive unfreezing, L2-SP, fresh optimizer state and
per-layer rates, normalization carried over, SAC's warm-up, the budget, the report, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from simreal.cli import app
from simreal.runs.algorithms import load_pickled_model as load_model
from simreal.runs.policy import load_policy
from simreal.runs.setup import load_setup
from simreal.train.trainer import train
from simreal.transfer.config import FinetuneSettings
from simreal.transfer.finetune import finetune
from simreal.transfer.layers import fresh_optimizers, policy_layers, set_trainable

runner = CliRunner()

SOURCE = {
    "ppo": {
        "name": "ppo",
        "hyperparameters": {"n_steps": 64, "batch_size": 64, "n_epochs": 2, "linear_lr_decay": True},
        "network": {"pi": [8, 8], "vf": [8, 8]},
    },
    # learning_starts past the fine-tuning budget: a fine-tuned SAC that kept it would never learn on the target
    "sac": {
        "name": "sac",
        "hyperparameters": {"learning_starts": 5000, "buffer_size": 2000, "batch_size": 32},
        "network": {"pi": [8, 8], "qf": [8, 8]},
    },
}


@pytest.fixture(scope="module", params=["ppo", "sac"])
def source(request, tmp_path_factory) -> Path:
    """A tiny sim-trained run with two hidden layers per network (three layers per tower)."""
    folder = tmp_path_factory.mktemp(f"source_{request.param}")
    config = {
        "robot": "hopper",
        "seed": 3,
        "total_timesteps": 256,
        "algorithm": SOURCE[request.param],
        "env": {"n_envs": 2, "normalize": {"observations": True, "rewards": True}},
        "eval": {"frequency": 256, "episodes": 1, "targets": ["mild"]},
        "checkpoint": {"frequency": 256, "keep": 1},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    train(load_setup(path), folder / "run", device="cpu")
    return folder / "run"


def settings(**changes) -> FinetuneSettings:
    values = {"steps": 300, "eval_episodes": 1, "final_episodes": 2, "count_eval": False, "eval_every": 100}
    return FinetuneSettings(**{**values, **changes})


def weights(path: Path, algo: str) -> dict[str, dict[int, list[np.ndarray]]]:
    """Each layer's weights by name, from a saved model."""
    model = load_model(path / "model.zip", algo)
    return {layer.name: [p.detach().numpy().copy() for p in layer.parameters] for layer in policy_layers(model)}


def changed(before: dict, after: dict) -> set[str]:
    return {
        name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name], strict=True))
    }


def algo_of(run: Path) -> str:
    return yaml.safe_load((run / "config.yaml").read_text())["algorithm"]["name"]


@pytest.mark.parametrize(
    ("strategy", "extra", "trained_depths"),
    [("full", {}, {0, 1, 2}), ("head", {}, {0}), ("partial", {"trainable_layers": 2}, {0, 1})],
)
def test_each_strategy_trains_exactly_its_layers(source, tmp_path, strategy, extra, trained_depths):
    algo = algo_of(source)
    result = finetune(source, "severe", settings(strategy=strategy, **extra), tmp_path / "ft")
    before, after = weights(source, algo), weights(tmp_path / "ft", algo)
    depths = {layer.name: layer.depth for layer in policy_layers(load_model(source / "model.zip", algo))}
    assert changed(before, after) == {name for name, d in depths.items() if d in trained_depths}
    # requires_grad says the same as the weights
    trainable = set(result.report["trainable_schedule"][0]["trainable"])
    assert trainable == {name for name, d in depths.items() if d in trained_depths}


def test_requires_grad_follows_the_trainable_set(source):
    model = load_model(source / "model.zip", algo_of(source))
    layers = policy_layers(model)
    set_trainable(layers, 2)
    for layer in layers:
        assert all(p.requires_grad == (layer.depth < 2) for p in layer.parameters), layer.name
    set_trainable(layers, None)
    assert all(p.requires_grad for layer in layers for p in layer.parameters)


def test_progressive_unfreezes_from_the_top_on_schedule(source, tmp_path):
    algo = algo_of(source)
    result = finetune(source, "severe", settings(strategy="progressive", steps=600), tmp_path / "ft")
    schedule = result.report["trainable_schedule"]
    # three layers per tower: the heads from the start, one more layer down at each third of the budget
    assert [len(stage["trainable"]) // len(schedule[0]["trainable"]) for stage in schedule] == [1, 2, 3]
    assert schedule[0]["target_steps"] == 0
    assert 200 <= schedule[1]["target_steps"] < 210 and 400 <= schedule[2]["target_steps"] < 410
    assert all(name.endswith(".head") for name in schedule[0]["trainable"])
    # the bottom layers were unfrozen for the last third, and trained then
    assert changed(weights(source, algo), weights(tmp_path / "ft", algo)) == set(schedule[2]["trainable"])


def test_l2sp_pulls_toward_the_starting_weights(source, tmp_path):
    distances = []
    for alpha in (0.0, 50.0):
        result = finetune(source, "severe", settings(lr_scale=3.0, l2sp=alpha), tmp_path / f"alpha_{alpha}")
        distances.append(result.report["l2sp_distance"])
    assert distances[0] > 0 and distances[1] < 0.8 * distances[0]


def test_a_layer_unfrozen_later_starts_with_fresh_optimizer_state(source):
    algo = algo_of(source)
    policy = load_policy(source)
    model = load_model(source / "model.zip", algo, env=_target_env(policy), for_training=True)
    model.learning_starts = 0
    layers = policy_layers(model)
    fresh_optimizers(model)
    optimizers = _optimizers(model)
    assert all(not optimizer.state for optimizer in optimizers)  # the source run's moments are gone
    set_trainable(layers, 1)
    model.learn(128)
    frozen = [p for layer in layers if layer.depth > 0 for p in layer.parameters]
    heads = [p for layer in layers if layer.depth == 0 for p in layer.parameters]
    state = {id(p): s for optimizer in optimizers for p, s in optimizer.state.items()}
    assert all(id(p) not in state for p in frozen)
    head_updates = int(state[id(heads[0])]["step"])
    set_trainable(layers, None)
    model.learn(128, reset_num_timesteps=False)
    state = {id(p): s for optimizer in optimizers for p, s in optimizer.state.items()}
    assert 0 < int(state[id(frozen[0])]["step"]) < int(state[id(heads[0])]["step"]) - head_updates + 1


def test_layer_rates_survive_the_learning_rate_schedule(source):
    policy = load_policy(source)
    model = load_model(source / "model.zip", algo_of(source), env=_target_env(policy), for_training=True)
    model.learning_starts = 0
    fresh_optimizers(model, layer_decay=2.0)
    model.learn(128)
    rate = model.lr_schedule(model._current_progress_remaining)
    depths = {layer.name: layer.depth for layer in policy_layers(model)}
    for optimizer in _optimizers(model):
        for group in optimizer.param_groups:
            if group["name"] in depths:
                assert group["lr"] == pytest.approx(rate * 2.0 ** -depths[group["name"]])


def test_normalization_statistics_carry_over_frozen_or_updating(source, tmp_path):
    start = np.load(source / "vecnormalize.npz")["obs_mean"]
    for update in (False, True):
        finetune(source, "severe", settings(update_normalization=update), tmp_path / f"u{update}")
        mean = np.load(tmp_path / f"u{update}" / "vecnormalize.npz")["obs_mean"]
        assert np.array_equal(mean, start) != update


@pytest.mark.parametrize("steps", [301, 2600])
def test_the_budget_is_never_exceeded(source, tmp_path, steps):
    result = finetune(source, "severe", settings(steps=steps, count_eval=True, eval_every=500), tmp_path / "ft")
    budget = result.report["budget"]
    assert budget["used"] == budget["train_steps"] + budget["eval_steps"] <= steps
    assert budget["train_steps"] > steps - 2 - (budget["eval_steps"] + 1000 if budget["eval_steps"] else 0)
    assert all(point["target_steps"] <= steps for point in result.report["curve"])
    if steps == 2600:
        assert budget["eval_steps"] > 0  # some curve evaluations fitted and were counted
    else:
        assert budget["eval_steps"] == 0 and result.report["curve_evaluations_skipped"] > 0


def test_report_and_tensorboard_hold_the_curve_forgetting_and_the_schedule_restart(source, tmp_path):
    algo = algo_of(source)
    result = finetune(source, "severe", settings(steps=400, lr_scale=0.5), tmp_path / "ft")
    report = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert report == json.loads(json.dumps(result.report))
    assert [p["target_steps"] for p in report["curve"]][:2] == [0, 100]
    forgetting = report["forgetting"]
    drop = forgetting["source_before"]["mean_return"] - forgetting["source_after"]["mean_return"]
    assert forgetting["drop"] == pytest.approx(drop)
    assert load_model(tmp_path / "ft" / "model.zip", algo).num_timesteps == report["budget"]["train_steps"]
    accumulator = EventAccumulator(str(tmp_path / "ft" / "tb"), size_guidance={"scalars": 0})
    accumulator.Reload()
    steps = [event.step for event in accumulator.Scalars("transfer/target_return")]
    assert steps == [p["target_steps"] for p in report["curve"]]
    if algo == "ppo":
        # the schedule restarted over the fine-tuning budget: linear decay from 0.5 x the source rate, first
        # applied after one rollout of 2 envs x 64 steps
        first = accumulator.Scalars("train/learning_rate")[0]
        assert first.value == pytest.approx(3e-4 * 0.5 * (1 - 128 / 400), rel=1e-4)


def test_from_scratch_baseline_and_negative_transfer_verdict(source, tmp_path):
    base = ["finetune", str(source), "--target", "severe", "--steps", "300", "--final-episodes", "2"]
    base += ["--eval-episodes", "1", "--device", "cpu"]
    scratch = runner.invoke(app, [*base, "--from-scratch", "--run-dir", str(tmp_path / "scratch")])
    assert scratch.exit_code == 0, scratch.output
    tuned = runner.invoke(app, [*base, "--strategy", "head", "--baseline", str(tmp_path / "scratch"), "--run-dir",
                                str(tmp_path / "head")])  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    report = json.loads((tmp_path / "head" / "finetune.json").read_text())
    against = report["against_scratch"]
    scratch_report = json.loads((tmp_path / "scratch" / "finetune.json").read_text())
    assert against["difference"] == pytest.approx(
        report["final"]["mean_return"] - scratch_report["final"]["mean_return"]
    )
    low, high = against["difference_ci95"]
    assert against["transfer"] == ("negative" if high < 0 else "positive" if low > 0 else "inconclusive")
    assert "forgetting" not in scratch_report
    # the fine-tuned run is a run like any other
    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "head"), "--episodes", "1", "--target", "mild"])
    assert evaluated.exit_code == 0, evaluated.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--strategy", "freeze-all"], "strategy"),
        (["--steps", "0"], "steps"),
        (["--l2sp", "-1"], "l2sp"),
        (["--from-scratch", "--l2sp", "0.1"], "l2sp"),
        (["--target", "nowhere"], "nowhere"),
    ],
)
def test_bad_finetune_input_is_one_line_and_exit_2(source, tmp_path, arguments, message):
    command = ["finetune", str(source), "--target", "severe", "--steps", "100", "--run-dir", str(tmp_path / "x")]
    result = runner.invoke(app, [*command, *arguments])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_run_that_is_not_a_run_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    for run in (tmp_path / "empty", tmp_path / "missing"):
        result = runner.invoke(app, ["finetune", str(run), "--target", "severe", "--steps", "100"])
        assert result.exit_code == 2 and str(run) in result.stderr


def _target_env(policy):
    from simreal.envs.robots import load_target
    from simreal.envs.vector import EnvFactory, vectorize
    from simreal.runs.algorithms import load_statistics

    _, target = load_target(policy.setup.spec, "severe")
    venv = vectorize(EnvFactory(policy.setup.spec, fixed=target.parameters, effects=target.effects), 2, 0)
    return load_statistics(policy.path.parent, venv)


def _optimizers(model) -> list[torch.optim.Optimizer]:
    if hasattr(model.policy, "actor"):
        return [model.policy.actor.optimizer, model.policy.critic.optimizer]
    return [model.policy.optimizer]


def test_a_warm_started_sac_acts_from_the_first_step_on_target_data_only(source):
    from simreal.runs.algorithms import warm_start

    if algo_of(source) != "sac":
        pytest.skip("SAC only")
    policy = load_policy(source)
    venv = _target_env(policy).venv
    model = warm_start(source / "model.zip", policy.setup.config, venv, "cpu", policy.setup.input_layout())
    assert model.learning_starts == 0 and model.num_timesteps == 0
    assert model.replay_buffer.size() == 0  # the buffer is not in the model file: no simulation data mixed in
    before = [p.detach().clone() for p in model.actor.parameters()]
    model.learn(64, reset_num_timesteps=True)
    assert model.replay_buffer.size() * model.n_envs == 64
    assert any(not torch.equal(a, b) for a, b in zip(before, model.actor.parameters(), strict=True))
