"""The transfer pipeline: every stage on a tiny budget, the report's fields and files, resuming after a kill, the
fraction of the gap closed, and bad configs."""

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
from simreal.runs.setup import load_setup
from simreal.train.trainer import train
from simreal.transfer.config import TransferConfig, load_transfer_config
from simreal.transfer.pipeline import run_pipeline

runner = CliRunner()


class Killed(BaseException):
    """What a kill does to the pipeline: an exception no stage handles."""


ROWS = ("zero_shot", "sysid", "identified", "scratch", "finetune", "oracle")


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
    assert rows["finetune"]["against_scratch"]["transfer"] in ("negative", "positive", "inconclusive")
    assert "dynamics_gap" in rows["sysid"]
    # the identified simulator's training used the identified ranges and delay, and did not look at the target
    identified = yaml.safe_load((tmp_path / "out" / "identified" / "config.yaml").read_text())
    sysid = json.loads((tmp_path / "out" / "sysid" / "sysid.json").read_text())
    assert identified["randomization"]["ranges"]["torso_mass"] == pytest.approx(
        sysid["parameters"]["torso_mass"]["range"]
    )
    assert identified["randomization"]["effects"]["action_delay_steps"] == sysid["action_delay_steps"]
    assert identified["eval"]["targets"] == [] and identified["total_timesteps"] == 256
    for name in ("returns.png", "curves.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| fine-tuned on the target |" in markdown and "fraction of gap closed" in markdown
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
    assert calls == ["finetune", "finetune", "oracle"] and not collected  # finished stages did not run again
    assert (tmp_path / "out" / "sysid" / "recording.npz").stat().st_mtime_ns == recording
    assert not (tmp_path / "out" / "finetune" / "partial").exists()
    assert result.report["complete"] and [row["stage"] for row in result.report["stages"]] == list(ROWS)


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


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"source": {}}, "source"),
        ({"source": {"run": "a", "config": "hopper_ppo_dr"}}, "source"),
        ({"stages": {"sysid": {"enabled": False}}}, "identified"),
        ({"stages": {"finetune": {"strategy": "everything"}}}, "stages.finetune.strategy"),
        ({"stages": {"finetune": {"seed": 3}}}, "seed"),
        ({"stages": {"oracle": {"timesteps": 0}}}, "stages.oracle.timesteps"),
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


def test_a_source_that_is_not_a_run_or_another_pipelines_folder_is_one_line_and_exit_2(source, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"target": "severe", "source": {"run": str(tmp_path / "nothing")}}))
    result = runner.invoke(app, ["transfer", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "nothing" in result.stderr
    # a folder holding a pipeline with another config is not mixed with this one
    other = TransferConfig.model_validate({"target": "severe", "source": {"run": str(source)}})
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "pipeline.json").write_text(
        json.dumps({"schema": pipeline.SCHEMA, "config": {**other.model_dump(mode="json"), "seed": 9}, "stages": {}})
    )
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
