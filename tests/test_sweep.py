"""Sweeps on local Ray: two jobs, one of which fails; the failure is reported and does not stop the other; a re-run
skips the finished job; the aggregate over seeds; bad grids and configs before anything runs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from simreal.cli import app
from simreal.errors import ConfigError
from simreal.tools.sweep import aggregate, parse_grid, plan_sweep, run_job

runner = CliRunner()

TINY = {
    "robot": "inverted_pendulum",
    "seed": 0,
    "total_timesteps": 128,
    "algorithm": {"name": "ppo", "hyperparameters": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}},
    "env": {"n_envs": 2},
    "eval": {"frequency": 0, "episodes": 1, "targets": ["mild"]},
    "checkpoint": {"frequency": 0},
}


def sweep(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1"}
    command = [sys.executable, "-m", "simreal.cli", "sweep", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "algorithm": {**TINY["algorithm"], "network": {"pi": [8], "vf": [8]}}}))
    return path


def test_a_failed_job_is_reported_the_other_finishes_and_a_rerun_skips_it(config, tmp_path):
    out = tmp_path / "sweep"
    # seed 1's job cannot create its run directory: a file is in the way
    blocker = out / "config" / "seed_1" / "run"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    first = sweep(str(config), "--seeds", "2", "--episodes", "2", "--out", str(out))
    assert first.returncode == 1, first.stderr
    assert "failed  config seed 1" in first.stderr and "a file is in the way" in first.stderr
    assert "done  config seed 0" in first.stderr
    assert "1 of 2 jobs finished" in first.stdout and "Traceback" not in first.stdout
    assert (out / "config" / "seed_1" / "error.txt").read_text().startswith("StorageError")
    result = json.loads((out / "config" / "seed_0" / "result.json").read_text())
    assert set(result["rows"]) == {"nominal", "randomized", "target: mild", "target: moderate", "target: severe"}
    assert all(len(returns) == 2 for returns in result["rows"].values())
    with open(out / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["env"] for r in rows} == set(result["rows"])
    assert all(r["seeds"] == "1" for r in rows)
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"

    blocker.unlink()
    second = sweep(str(config), "--seeds", "2", "--episodes", "2", "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert "skipped  config seed 0" in second.stderr and "done  config seed 1" in second.stderr
    assert not (out / "config" / "seed_1" / "error.txt").exists()
    # seed 0 was not run again: its result is the same file
    assert json.loads((out / "config" / "seed_0" / "result.json").read_text()) == result
    with open(out / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        assert row["seeds"] == "2" and float(row["ci_low"]) <= float(row["mean_return"]) <= float(row["ci_high"])
        means = [float(m) for m in row["per_seed"].split()]
        assert float(row["mean_return"]) == pytest.approx(sum(means) / 2)


def test_a_grid_is_every_combination_with_every_seed(config, tmp_path):
    grid = parse_grid(["algorithm.hyperparameters.learning_rate=0.001,0.01", "algorithm.network.pi=[8],[4,4]"])
    assert grid["algorithm.network.pi"] == ["[8]", "[4,4]"]
    jobs = plan_sweep(str(config), tmp_path, [3, 4], grid)
    assert len(jobs) == 8 and len({job.folder for job in jobs}) == 8
    assert {job.seed for job in jobs} == {3, 4}
    assert "seed=3" in jobs[0].overrides and "algorithm.network.pi=[4,4]" in jobs[1 * 2 + 1].overrides
    assert aggregate(jobs) == []  # nothing finished yet


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--grid", "algorithm.hyperparameters.learning_rate"], "--grid: 'algorithm.hyperparameters.learning_rate'"),
        (["--grid", "env.n_envs=2,0"], "env.n_envs=0: --set env.n_envs"),
        (["--set", "robot=octopus"], "--set robot"),
    ],
)
def test_bad_grids_and_configs_are_one_line_before_anything_runs(config, tmp_path, options, message):
    result = runner.invoke(app, ["sweep", str(config), "--seeds", "1", *options, "--out", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s").exists()


def test_parse_grid_rejects_a_key_given_twice():
    with pytest.raises(ConfigError, match="grid: seed: given twice"):
        parse_grid(["seed=1,2", "seed=3"])


def test_a_transfer_config_sweeps_transfer_jobs(tmp_path):
    config = tmp_path / "transfer.yaml"
    config.write_text(
        yaml.safe_dump({"kind": "transfer", "target": "severe", "source": {"run": "policies/hopper_ppo_dr"}})
    )
    jobs = plan_sweep(str(config), tmp_path / "out", [0, 1], parse_grid(["stages.finetune.steps=1000,2000"]))
    assert {job.kind for job in jobs} == {"transfer"} and len(jobs) == 4
    assert "stages.finetune.steps=2000" in jobs[-1].overrides and "seed=1" in jobs[-1].overrides
    with pytest.raises(ConfigError, match="stages.finetune.steps=-5"):
        plan_sweep(str(config), tmp_path / "out", [0], parse_grid(["stages.finetune.steps=-5"]))


def test_a_transfer_job_reports_each_stages_episode_returns(trained_run, tmp_path):
    off = {"enabled": False}
    config = tmp_path / "transfer.yaml"
    stages = {"sysid": off, "identified": off, "finetune": off, "oracle": off}
    config.write_text(
        yaml.safe_dump({"kind": "transfer", "target": "mild", "episodes": 3, "source": {"run": str(trained_run)},
                        "stages": stages})
    )  # fmt: skip
    (job,) = plan_sweep(str(config), tmp_path / "out", [0])
    assert run_job(job)["status"] == "done"
    result = json.loads((Path(job.folder) / "result.json").read_text())
    assert result["kind"] == "transfer" and list(result["rows"]) == ["zero_shot"]
    assert len(result["rows"]["zero_shot"]) == 3
    (row,) = aggregate([job])
    assert row["env"] == "zero_shot" and row["seeds"] == 1
