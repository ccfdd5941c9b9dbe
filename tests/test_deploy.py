"""Exported policies and the deploy -> record -> identify loop: actions equal simreal's to 2e-5 over 1000 steps on a
target for every kind of policy, in both formats; a manifest that does not fit the env, a truncated artifact or one
of another robot is one line and exit 2; the loop from export to a trained identified simulator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from simreal.cli import app
from simreal.deploy.deploy import deploy
from simreal.deploy.export import action_difference, export_policy
from simreal.runs.policy import load_policy
from simreal.sysid.collect import collect
from simreal.sysid.trajectories import load_trajectories
from tests.test_training import tiny_config

runner = CliRunner()
POLICIES = Path(__file__).resolve().parent.parent / "policies"
SHIPPED = {"ppo": "hopper_ppo_dr", "uposi": "hopper_ppo_uposi", "rma": "hopper_ppo_rma", "privileged": "hopper_ppo_adr"}


def train_tiny(folder: Path, algo: str, **changes) -> Path:
    config = tiny_config(folder, algo, eval={"frequency": 0, "episodes": 1, "targets": []}, **changes)
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(folder / "run"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return folder / "run"


@pytest.fixture(scope="module")
def policies(tmp_path_factory) -> dict[str, Path]:
    """Every kind: the shipped PPO, UP-OSI, RMA and privileged-critic policies, and a tiny SAC and history policy."""
    made = {kind: POLICIES / name for kind, name in SHIPPED.items()}
    made["sac"] = train_tiny(tmp_path_factory.mktemp("sac"), "sac")
    made["history"] = train_tiny(tmp_path_factory.mktemp("history"), "ppo", env={"n_envs": 2, "history": 3})
    return made


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize("kind", ["ppo", "sac", "history", "uposi", "rma", "privileged"])
def test_the_exported_policy_acts_as_simreal_does(policies, tmp_path, kind, format):
    manifest = export_policy(policies[kind], format, tmp_path / "export")
    data = json.loads(manifest.read_text())
    assert data["format"] == format and (tmp_path / "export" / data["file"]).is_file()
    assert data["input"]["size"] == load_policy(policies[kind]).layout.size
    # ONNX runs in float64, simreal in torch's float32: their difference is torch's own rounding, which depends on
    # the CPU's kernels (hopper_ppo_dr: 6.5e-6 on one Intel machine, 1.3e-5 on another); TorchScript is exact
    assert action_difference(policies[kind], tmp_path / "export", "severe", 1000) <= (2e-5 if format == "onnx" else 0)


def cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simreal.cli", *arguments], capture_output=True, text=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "hopper"
    export_policy(POLICIES / "hopper_ppo_dr", "torchscript", folder)
    return folder


def test_an_env_that_does_not_fit_the_manifest_is_one_line_naming_the_field(exported):
    result = cli("deploy", str(exported), "--env", "InvertedPendulum-v5")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "manifest.json" in result.stderr and "observation.size" in result.stderr
    result = cli("deploy", str(exported), "--env", "no-such-env")
    assert result.returncode == 2 and "no-such-env" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("damage", ["truncated", "another robot", "manifest field"])
def test_a_damaged_export_is_one_line(exported, tmp_path, damage):
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    if damage == "truncated":
        data = (copy / "policy.pt").read_bytes()
        (copy / "policy.pt").write_bytes(data[: len(data) // 2])
    elif damage == "another robot":
        export_policy(POLICIES / "halfcheetah_ppo_dr", "torchscript", tmp_path / "cheetah")
        shutil.copy(tmp_path / "cheetah" / "policy.pt", copy / "policy.pt")
    else:
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["state_size"] = "many"
        (copy / "manifest.json").write_text(json.dumps(manifest))
    result = cli("deploy", str(copy), "--env", "severe")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(copy) in result.stderr and "Traceback" not in result.stderr
    if damage == "manifest field":
        assert "state_size" in result.stderr


def test_deploy_records_what_collect_records_and_the_loop_closes(exported, tmp_path):
    """export -> deploy on a target -> sysid on the recording -> the identified YAML trains."""
    recording = tmp_path / "robot.npz"
    made = deploy(exported, "severe", episodes=2, seed=5, out=recording)
    assert made.path == recording and len(made.returns) == 2
    data = load_trajectories(recording, "hopper")
    reference = collect(POLICIES / "hopper_ppo_dr", "hopper", "severe", episodes=2, seed=5)
    np.testing.assert_allclose(data.actions, reference.actions, atol=1e-6)  # TorchScript: simreal's own actions
    np.testing.assert_allclose(data.observations, reference.observations, atol=1e-6)
    assert data.meta["target"]["name"] == "severe" and data.meta["source"] == "simulator"
    identified = tmp_path / "identified.yaml"
    arguments = ["--robot", "hopper", "--params", "friction", "--budget", "40", "--out", str(identified)]
    result = runner.invoke(app, ["sysid", str(recording), *arguments])
    assert result.exit_code == 0, result.output
    assert "friction" in yaml.safe_load(identified.read_text())["parameters"]
    tuned = tmp_path / "tuned"
    arguments = ["--steps", "256", "--eval-every", "100000", "--final-episodes", "1", "--run-dir", str(tuned)]
    result = runner.invoke(app, ["finetune", str(POLICIES / "hopper_ppo_dr"), "--target", str(identified), *arguments])
    assert result.exit_code == 0, result.output
    assert json.loads((tuned / "finetune.json").read_text())["budget"]["used"] >= 256
