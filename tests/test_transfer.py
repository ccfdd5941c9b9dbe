"""The transfer pipeline: every stage on a tiny budget, the report's fields and files, resuming after a kill, the
oracle as the better of its candidates, stage configs derived from the source config, the fraction of the gap
closed, and bad configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

import simreal.transfer.pipeline as pipeline
from simreal.cli import app
from simreal.errors import ConfigError
from simreal.evaluate.gap import fraction_closed
from simreal.runs.config import FixedScheduleConfig
from simreal.runs.config_files import ConfigSource, load_config
from simreal.runs.setup import load_setup
from simreal.train.trainer import train
from simreal.transfer.config import TransferConfig, load_transfer_config
from simreal.transfer.derive import derive_setup, updated
from simreal.transfer.pipeline import run_pipeline
from simreal.transfer.report import CANDIDATE_LABELS, markdown, write_report

runner = CliRunner()


class Killed(BaseException):
    """What a kill does to the pipeline: an exception no stage handles."""


ROWS = ("zero_shot", "sysid", "identified", "scratch", "finetune", "oracle")


def flat(data, prefix: str = "") -> dict:
    if isinstance(data, dict) and data:
        items = {}
        for key, value in data.items():
            items.update(flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return items
    return {prefix: data}


def differing(before: dict, after: dict) -> set[str]:
    """The dotted fields where two configs differ."""
    before, after = flat(before), flat(after)
    return {key for key in {*before, *after} if before.get(key) != after.get(key)}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("source")
    config = {
        "robot": "hopper",
        "seed": 3,
        "total_timesteps": 256,
        "algorithm": {
            "name": "ppo",
            "hyperparameters": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
            "network": {"pi": [8, 8], "vf": [8, 8]},
        },
        "env": {"n_envs": 2},
        "eval": {"frequency": 256, "episodes": 1, "targets": ["mild"]},
        "checkpoint": {"frequency": 256, "keep": 1},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    train(load_setup(folder / "config.yaml"), folder / "run", device="cpu")
    return folder / "run"


def tiny(source: Path, **stages) -> dict:
    """Every stage, on budgets of a few hundred steps."""
    config = {
        "target": "severe",
        "episodes": 3,
        "source": {"run": str(source)},
        "stages": {
            "sysid": {"episodes": 3, "params": ["torso_mass", "friction"], "budget": 40, "horizon": 5, "delay": True},
            "identified": {"timesteps": 256},
            "finetune": {"steps": 300, "eval_episodes": 1, "count_eval": False, "eval_every": 150},
            "oracle": {"timesteps": 256},
        },
    }
    for name, changes in stages.items():
        config["stages"][name] = {**config["stages"].get(name, {}), **changes}
    return config


def test_every_stage_writes_the_report(source, tmp_path):
    path = tmp_path / "transfer.yaml"
    path.write_text(yaml.safe_dump(tiny(source)))
    result = runner.invoke(app, ["transfer", str(path), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "(reference)" in result.stdout and "finetune" in result.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["complete"]
    rows = {row["stage"]: row for row in report["stages"]}
    assert list(rows) == ["zero_shot", "sysid", "identified", "scratch", "finetune", "oracle"]
    for name in ("zero_shot", "identified", "scratch", "finetune", "oracle"):
        row = rows[name]
        low, high = row["mean_return_ci95"]
        assert low <= row["mean_return"] <= high
        assert row["gap"] == pytest.approx(row["source_nominal_return"] - row["mean_return"])
        assert {"relative_gap", "relative_gap_ci95", "target_steps_total", "seconds"} <= set(row)
        # a fraction, or undefined with the reason; the references are 0 and 1 by definition
        assert (row["fraction_closed"] is None) == bool(row["fraction_undefined"])
        if name in ("zero_shot", "oracle"):
            assert row["fraction_closed"] == (0.0 if name == "zero_shot" else 1.0)
        evaluation = json.loads((tmp_path / "out" / "evaluations" / f"{name}.json").read_text())
        assert list(evaluation["targets"]) == ["severe"] and evaluation["episodes"] == 3
    recorded = rows["sysid"]["target_steps"]
    assert recorded > 0 and rows["identified"]["target_steps_total"] == recorded
    assert rows["finetune"]["target_steps_total"] == recorded + rows["finetune"]["target_steps"]
    assert 0 < rows["finetune"]["target_steps"] <= 300 and rows["scratch"]["target_steps"] <= 300
    assert rows["oracle"]["target_steps"] == 256
    # the oracle: the better of its two candidates, each evaluated on the same episodes as every stage
    oracle = rows["oracle"]
    candidates = oracle["candidates"]
    assert set(candidates) == {"finetuned", "scratch"} and oracle["winner"] in candidates
    loser = oracle["won_by"]["runner_up"]
    assert {oracle["winner"], loser} == {"finetuned", "scratch"}
    assert candidates[oracle["winner"]]["mean_return"] == oracle["mean_return"] >= candidates[loser]["mean_return"]
    difference = candidates[oracle["winner"]]["mean_return"] - candidates[loser]["mean_return"]
    assert oracle["won_by"]["difference"] == pytest.approx(difference)
    for name, candidate in candidates.items():
        assert candidate["target_steps"] == 256 and candidate["policy"] == str(tmp_path / "out" / "oracle" / name)
        evaluation = json.loads((tmp_path / "out" / "evaluations" / f"oracle_{name}.json").read_text())
        assert evaluation["targets"]["severe"]["mean_return"] == candidate["mean_return"]
    chosen = json.loads((tmp_path / "out" / "evaluations" / f"oracle_{oracle['winner']}.json").read_text())
    assert json.loads((tmp_path / "out" / "evaluations" / "oracle.json").read_text()) == chosen
    assert isinstance(report["fractions_meaningful"], bool)
    # the candidates' configs: the source's (fine-tuned), the source's recipe with the pipeline's seed (scratch)
    source_config = yaml.safe_load((source / "config.yaml").read_text())
    finetuned = yaml.safe_load((tmp_path / "out" / "oracle" / "finetuned" / "config.yaml").read_text())
    scratch = yaml.safe_load((tmp_path / "out" / "oracle" / "scratch" / "config.yaml").read_text())
    assert differing(source_config, finetuned) == set() and differing(source_config, scratch) == {"seed"}
    assert (
        json.loads((tmp_path / "out" / "oracle" / "finetuned" / "finetune.json").read_text())["settings"]["strategy"]
        == "full"
    )
    assert rows["finetune"]["against_scratch"]["transfer"] in ("negative", "positive", "inconclusive")
    assert "dynamics_gap" in rows["sysid"]
    # the identified simulator's training used the identified ranges and delay, and did not look at the target
    identified = yaml.safe_load((tmp_path / "out" / "identified" / "config.yaml").read_text())
    sysid = json.loads((tmp_path / "out" / "sysid" / "sysid.json").read_text())
    for name, entry in sysid["parameters"].items():  # an unidentifiable one keeps the source's range
        if entry["identifiable"]:
            assert identified["randomization"]["ranges"][name] == pytest.approx(entry["range"])
        else:
            assert name not in identified["randomization"]["ranges"]
    assert identified["randomization"]["effects"]["action_delay_steps"] == sysid["action_delay_steps"]
    assert identified["eval"]["targets"] == [] and identified["total_timesteps"] == 256
    # derived from the source config: the same but for what the identified simulator changes
    changed = differing(source_config, identified)
    intended = ("randomization.", "total_timesteps", "seed", "eval.targets")
    assert changed and all(key.startswith(intended) for key in changed)
    assert {key for key in changed if key.startswith("randomization.")} <= {
        "randomization.parameters",
        "randomization.ranges",
        "randomization.schedule.kind",
        "randomization.schedule.initial_fraction",
        "randomization.schedule.ramp_fraction",
        "randomization.schedule.mode",
        "randomization.schedule.steps",
        "randomization.effects.action_delay_steps",
        "randomization.effects.obs_noise_std",
        *(f"randomization.ranges.{name}" for name in ("torso_mass", "friction")),
    }
    assert identified["randomization"]["schedule"] == {"kind": "fixed"} and identified["seed"] == 0
    for name in ("returns.png", "curves.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| fine-tuned on the target |" in markdown and "fraction of gap closed" in markdown
    assert f"| {oracle['label']} |" in markdown and "the better of its candidates on the target" in markdown
    assert f"ahead by {oracle['won_by']['difference']:+.1f}" in markdown
    accumulator = EventAccumulator(str(tmp_path / "out" / "tb"), size_guidance={"scalars": 0})
    accumulator.Reload()
    assert len(accumulator.Scalars("pipeline/target_return")) == 5


def test_a_killed_pipeline_continues_from_the_last_finished_stage(source, tmp_path, monkeypatch):
    config = TransferConfig.model_validate(tiny(source, identified={"mode": "retrain"}))
    real_finetune, calls = pipeline.finetune, []

    def killed(start, target, settings, folder, **kwargs):
        calls.append(Path(folder).name)
        if Path(folder).name == "finetune" and calls.count("finetune") == 1:
            (Path(folder) / "partial").mkdir(parents=True)  # what a killed stage leaves
            raise Killed
        return real_finetune(start, target, settings, folder, **kwargs)

    monkeypatch.setattr(pipeline, "finetune", killed)
    with pytest.raises(Killed):
        run_pipeline(config, tmp_path / "out")
    state = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert list(state["stages"]) == ["source", "zero_shot", "sysid", "identified", "scratch"]
    recording = (tmp_path / "out" / "sysid" / "recording.npz").stat().st_mtime_ns

    collected = []
    monkeypatch.setattr(pipeline, "collect", lambda *a, **k: collected.append(a))
    calls.clear()
    calls.append("finetune")  # the killed attempt
    result = run_pipeline(config, tmp_path / "out")
    # finished stages did not run again; the oracle trained its two candidates
    assert calls == ["finetune", "finetune", "finetuned", "scratch"] and not collected
    assert (tmp_path / "out" / "sysid" / "recording.npz").stat().st_mtime_ns == recording
    assert not (tmp_path / "out" / "finetune" / "partial").exists()
    assert result.report["complete"] and [row["stage"] for row in result.report["stages"]] == list(ROWS)


def oracle_only(source: Path, oracle: dict | None = None) -> TransferConfig:
    """Zero-shot and the oracle (default: its two candidates, 128 target steps each)."""
    config = tiny(source, sysid={"enabled": False}, identified={"enabled": False}, finetune={"enabled": False})
    config["stages"]["oracle"] = oracle if oracle is not None else {"timesteps": 128}
    return TransferConfig.model_validate(config)


def rig_returns(monkeypatch, rigged: dict[str, list[float]]) -> None:
    """The oracle candidates' target returns, set: the candidate whose returns are higher is the better one."""
    real = pipeline.evaluate_run

    def evaluate_run(policy, *args, **kwargs):
        report = real(policy, *args, **kwargs)
        policy = Path(policy)
        if policy.parent.name == "oracle" and policy.name in rigged:
            (row,) = report["targets"].values()
            returns = rigged[policy.name]
            row.update(
                returns=returns, mean_return=float(np.mean(returns)), mean_return_ci95=[min(returns), max(returns)]
            )
        return report

    monkeypatch.setattr(pipeline, "evaluate_run", evaluate_run)


@pytest.mark.parametrize("better", ["finetuned", "scratch"])
def test_the_oracle_is_the_better_of_its_candidates(source, tmp_path, monkeypatch, better):
    worse = "scratch" if better == "finetuned" else "finetuned"
    rig_returns(monkeypatch, {better: [900.0, 1000.0, 1100.0], worse: [100.0, 200.0, 300.0]})
    result = run_pipeline(oracle_only(source), tmp_path / "out")
    state = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    record = state["stages"]["oracle"]
    assert record["winner"] == better and record["policy"] == str(tmp_path / "out" / "oracle" / better)
    assert record["evaluation"]["mean_return"] == 1000.0 and "partial" not in state
    won_by = record["won_by"]
    assert won_by["runner_up"] == worse and won_by["difference"] == pytest.approx(800.0)
    low, high = won_by["difference_ci95"]
    assert 0 < low < 800.0 < high
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report == result.report
    row = {row["stage"]: row for row in report["stages"]}["oracle"]
    assert row["winner"] == better and row["won_by"] == won_by and row["mean_return"] == 1000.0
    assert row["candidates"][worse]["mean_return"] == 200.0 and row["candidates"][worse]["mean_return_ci95"] == [
        100.0,
        300.0,
    ]
    assert report["fractions_meaningful"] is True  # 900 and more, far above the tiny policy's zero-shot return
    text = (tmp_path / "out" / "report.md").read_text()
    assert f"Oracle: {CANDIDATE_LABELS[better]} ({better}), 1000.0 [900, 1100], the better of its candidates" in text
    assert f"ahead by +800.0 [{low:.1f}, {high:.1f}] of {CANDIDATE_LABELS[worse]} ({worse}), 200.0 [100, 300]." in text
    assert "not meaningful" not in text
    zero_shot = json.loads((tmp_path / "out" / "evaluations" / "zero_shot.json").read_text())
    assert zero_shot["targets"]["severe"]["returns"] != [100.0, 200.0, 300.0]  # other stages are measured as they are


def test_a_killed_oracle_does_not_train_a_finished_candidate_again(source, tmp_path, monkeypatch):
    config = oracle_only(source)
    real_finetune, calls, kill = pipeline.finetune, [], {"scratch"}

    def killed(start, target, settings, folder, **kwargs):
        calls.append(Path(folder).name)
        if Path(folder).name in kill:
            kill.clear()  # the first attempt only
            raise Killed
        return real_finetune(start, target, settings, folder, **kwargs)

    monkeypatch.setattr(pipeline, "finetune", killed)
    with pytest.raises(Killed):
        run_pipeline(config, tmp_path / "out")
    state = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert "oracle" not in state["stages"] and list(state["partial"]["oracle"]) == ["finetuned"]
    model = (tmp_path / "out" / "oracle" / "finetuned" / "model.zip").stat().st_mtime_ns

    calls.clear()
    events = []
    result = run_pipeline(config, tmp_path / "out", on_stage=lambda stage, event: events.append((stage, event)))
    assert calls == ["scratch"]  # the finished candidate was not trained again
    assert ("oracle.finetuned", "finished before") in events and ("oracle.scratch", "done") in events
    assert (tmp_path / "out" / "oracle" / "finetuned" / "model.zip").stat().st_mtime_ns == model
    state = json.loads((tmp_path / "out" / "pipeline.json").read_text())
    assert "partial" not in state and set(state["stages"]["oracle"]["candidates"]) == {"finetuned", "scratch"}
    assert result.report["complete"] and [row["stage"] for row in result.report["stages"]] == ["zero_shot", "oracle"]


def test_one_candidate_or_an_existing_run_is_the_oracle(source, tmp_path):
    result = run_pipeline(oracle_only(source, {"timesteps": 128, "candidates": ["scratch"]}), tmp_path / "one")
    row = {row["stage"]: row for row in result.report["stages"]}["oracle"]
    assert row["winner"] == "scratch" and row["won_by"] is None and list(row["candidates"]) == ["scratch"]
    assert not (tmp_path / "one" / "oracle" / "finetuned").exists()
    assert "a fresh policy trained from scratch on the target (scratch)" in (tmp_path / "one" / "report.md").read_text()
    # an existing run: nothing trained, the run is the oracle
    reused = oracle_only(source, {"run": str(tmp_path / "one" / "oracle" / "scratch")})
    result = run_pipeline(reused, tmp_path / "reused")
    row = {row["stage"]: row for row in result.report["stages"]}["oracle"]
    assert row["winner"] == "run" and row["target_steps"] == 128 and not (tmp_path / "reused" / "oracle").exists()


def oracle_report(tmp_path: Path, zero: list[float], oracle: list[float]) -> dict:
    """The report of a pipeline whose zero-shot and oracle stages returned these episode returns."""

    def evaluation(returns: list[float]) -> dict:
        mean = float(np.mean(returns))
        return {
            "mean_return": mean,
            "mean_return_ci95": [min(returns), max(returns)],
            "returns": returns,
            "gap": 2000.0 - mean,
            "gap_ci95": [0.0, 0.0],
            "relative_gap": (2000.0 - mean) / 2000.0,
            "relative_gap_ci95": [0.0, 0.0],
            "source_nominal_return": 2000.0,
        }

    candidates = {
        "finetuned": {"policy": "f", "target_steps": 100, "evaluation": evaluation(oracle), "seconds": 1.0},
        "scratch": {"policy": "s", "target_steps": 100, "evaluation": evaluation([x - 50 for x in oracle])},
    }
    stages = {
        "source": {"policy": "src", "target_steps": 0},
        "zero_shot": {"policy": "src", "target_steps": 0, "evaluation": evaluation(zero)},
        "oracle": {
            "policy": "f",
            "target_steps": 100,
            "evaluation": evaluation(oracle),
            "winner": "finetuned",
            "won_by": {"runner_up": "scratch", "difference": 50.0, "difference_ci95": [40.0, 60.0]},
            "candidates": candidates,
        },
    }
    config = TransferConfig.model_validate({"target": "severe", "source": {"run": "src"}, "episodes": 3})
    return write_report(config, tmp_path, {"stages": stages})


def test_fractions_against_an_oracle_not_above_zero_shot_are_said_to_be_not_meaningful(tmp_path):
    report = oracle_report(tmp_path, zero=[400.0, 500.0, 600.0], oracle=[550.0, 650.0, 750.0])
    assert report["fractions_meaningful"] is False
    text = (tmp_path / "report.md").read_text()
    assert (
        "The oracle is not the best achievable here: its interval [550, 750] does not lie above zero-shot's "
        "[400, 600], so the fractions of the gap closed are not meaningful" in text
    )
    assert "| oracle: the sim policy fine-tuned on the target |" in text
    assert (
        "ahead by +50.0 [40.0, 60.0] of a fresh policy trained from scratch on the target (scratch), 600.0 [500, 700]."
        in text
    )
    clear = oracle_report(tmp_path, zero=[400.0, 500.0, 600.0], oracle=[900.0, 1000.0, 1100.0])
    assert clear["fractions_meaningful"] is True and "not meaningful" not in markdown(clear)


def test_derived_stage_configs_equal_the_source_config_but_for_their_changes(tmp_path):
    base = load_config("hopper_ppo_dr")
    changes = {
        "randomization": {"ranges": {"torso_mass": [0.8, 1.2]}, "schedule": FixedScheduleConfig()},
        "algorithm": {"hyperparameters": {"learning_rate": 1e-4}},
        "seed": 7,
    }
    setup = derive_setup(base, changes, "src/config.yaml", {"seed": "t.yaml: seed"}, "t.yaml: stages.identified")
    assert differing(base.model_dump(mode="json"), setup.config.model_dump(mode="json")) == {
        "randomization.ranges",
        "randomization.ranges.torso_mass",
        "randomization.schedule.kind",
        "randomization.schedule.initial_fraction",
        "randomization.schedule.ramp_fraction",
        "randomization.schedule.mode",
        "randomization.schedule.steps",
        "algorithm.hyperparameters.learning_rate",
        "seed",
    }
    assert setup.ranges["torso_mass"].low == 0.8 and setup.config.algorithm.hyperparameters.n_steps == 256
    assert base.seed == 0 and base.randomization.schedule.kind == "curriculum"  # the source config is untouched
    assert updated(base, {}) == base
    # a bad derived value is caught as in a file, naming where it came from
    with pytest.raises(ConfigError, match=r"^t\.yaml: stages\.identified\.timesteps: .*greater than 0"):
        derive_setup(
            base, {"total_timesteps": 0}, "src", {"total_timesteps": "t.yaml: stages.identified.timesteps"}, "t"
        )
    with pytest.raises(ConfigError, match=r"^t\.yaml: stages\.identified: randomization\.ranges: .*torso_mas"):
        derive_setup(
            base, {"randomization": {"ranges": {"torso_mas": [0.8, 1.2]}}}, "src", {}, "t.yaml: stages.identified"
        )
    # a field the stage does not change is named in the source config's file
    one_step = updated(base, {"algorithm": {"hyperparameters": {"n_steps": 1}}})
    with pytest.raises(ConfigError, match=r"^src/config\.yaml: algorithm\.hyperparameters\.n_steps: n_steps \*"):
        derive_setup(one_step, {"env": {"n_envs": 1}}, ConfigSource("src/config.yaml"), {}, "t")


def test_fraction_closed_is_defined_only_with_a_clear_oracle_margin():
    rng = np.random.default_rng(0)
    zero, stage, oracle = rng.normal(100, 10, 20), rng.normal(550, 10, 20), rng.normal(1000, 10, 20)
    closed = fraction_closed(zero, stage, oracle, rng)
    assert closed.value == pytest.approx((stage.mean() - zero.mean()) / (oracle.mean() - zero.mean()))
    assert closed.ci[0] < closed.value < closed.ci[1] and closed.ci[1] - closed.ci[0] < 0.1
    unclear = fraction_closed(zero, stage, rng.normal(102, 10, 20), rng)
    assert unclear.value is None and unclear.ci is None and "interval" in unclear.reason


def test_the_shipped_transfer_config_validates():
    config = load_transfer_config("transfer_hopper")
    assert config.target == "severe" and config.source.run == "policies/hopper_ppo_dr"
    assert all(getattr(config.stages, name).enabled for name in ("zero_shot", "sysid", "identified", "finetune"))
    assert config.stages.oracle.enabled


def test_a_dumped_transfer_config_validates_again_to_the_same_config():
    config = load_transfer_config("transfer_hopper")
    assert TransferConfig.model_validate(config.model_dump(mode="json")) == config
    assert config.stages.finetune.settings(seed=3, final_episodes=7).seed == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": {}}, "source"),
        ({"source": {"run": "a", "config": "hopper_ppo_dr"}}, "source"),
        ({"stages": {"sysid": {"enabled": False}}}, "identified"),
        ({"stages": {"finetune": {"strategy": "everything"}}}, "stages.finetune.strategy"),
        ({"stages": {"finetune": {"seed": 3}}}, "seed"),
        ({"stages": {"oracle": {"timesteps": 0}}}, "stages.oracle.timesteps"),
        ({"stages": {"oracle": {"candidates": []}}}, "stages.oracle.candidates"),
        ({"stages": {"oracle": {"candidates": ["finetuned", "best"]}}}, "stages.oracle.candidates.1"),
        ({"stages": {"oracle": {"candidates": ["scratch", "scratch"]}}}, "stages.oracle.candidates"),
        ({"stages": {"oracle": {"candidates": ["scratch"], "lr_scale": 0.5}}}, "stages.oracle.lr_scale"),
        ({"stages": {"oracle": {"lr_scale": 0}}}, "stages.oracle.lr_scale"),
        ({"stages": {"oracle": {"run": "runs/o", "timesteps": 1000}}}, "stages.oracle.timesteps"),
        ({"stages": {"oracle": {"run": "runs/o", "candidates": ["scratch"]}}}, "stages.oracle.candidates"),
        ({"stages": {"oracle": {"best_of": 3}}}, "stages.oracle.best_of"),
        ({"stagez": {}}, "stagez"),
        ({"episodes": 1}, "episodes"),
    ],
)
def test_bad_transfer_configs_are_one_line_and_exit_2(tmp_path, change, field):
    data = {"target": "severe", "source": {"run": "runs/x"}, **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["transfer", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert str(path) in result.stderr and field in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_bad_oracle_override_or_source_override_is_one_line_and_exit_2(source, tmp_path):
    path = tmp_path / "transfer.yaml"
    path.write_text(yaml.safe_dump({"target": "severe", "source": {"run": str(source)}}))
    result = runner.invoke(app, ["transfer", str(path), "--set", "stages.oracle.candidates=[best]"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    expected = "--set stages.oracle.candidates: stages.oracle.candidates.0: Input should be 'finetuned' or 'scratch'"
    assert result.stderr.strip() == f"error: {expected}"
    # a source to train whose override is bad: named by the pipeline config's file and field
    config = {"target": "severe", "source": {"config": str(source / "config.yaml"), "overrides": ["total_timesteps=0"]}}
    path.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["transfer", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    expected = f"error: {path}: source.overrides: total_timesteps: Input should be greater than 0"
    assert result.stderr.strip().splitlines() == ["source: start", expected]


def test_a_source_that_is_not_a_run_or_another_pipelines_folder_is_one_line_and_exit_2(source, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"target": "severe", "source": {"run": str(tmp_path / "nothing")}}))
    result = runner.invoke(app, ["transfer", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "nothing" in result.stderr
    # a folder holding a pipeline with another config is not mixed with this one
    other = TransferConfig.model_validate({"target": "severe", "source": {"run": str(source)}})
    (tmp_path / "used").mkdir()
    finished = {"source": {"policy": str(source), "target_steps": 0, "trained": False}}
    state = {"schema": pipeline.SCHEMA, "config": {**other.model_dump(mode="json"), "seed": 9}, "stages": finished}
    (tmp_path / "used" / "pipeline.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="seed differs"):
        run_pipeline(other, tmp_path / "used")
    with pytest.raises(ConfigError, match="run it with simreal transfer"):
        load_setup("transfer_hopper")


def test_a_pipeline_can_train_its_own_source_first(source, tmp_path):
    config = {
        "target": "mild",
        "episodes": 2,
        "source": {"config": str(source / "config.yaml"), "overrides": ["total_timesteps=128"]},
        "stages": {
            "sysid": {"enabled": False},
            "identified": {"enabled": False},
            "finetune": {"enabled": False},
            "oracle": {"timesteps": 128},
        },
    }
    result = run_pipeline(TransferConfig.model_validate(config), tmp_path / "out")
    assert [row["stage"] for row in result.report["stages"]] == ["zero_shot", "oracle"]
    trained = yaml.safe_load((tmp_path / "out" / "source" / "config.yaml").read_text())
    assert trained["total_timesteps"] == 128 and trained["seed"] == 0  # the pipeline's seed
    assert json.loads((tmp_path / "out" / "source" / "run.json").read_text())["num_timesteps"] == 128
    assert result.report["complete"] and result.report["source"] == str(tmp_path / "out" / "source")
