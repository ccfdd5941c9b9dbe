"""Run and policy folders are data: loading one never unpickles anything.

A run keeps its model as torch state dicts (``weights.pt``, read with ``weights_only=True``), counters as validated
JSON (``model.json``) and statistics as plain arrays (``vecnormalize.npz``); stable-baselines3's pickles are still
written beside them for its users, but simreal reads them only with ``--trust-pickles``. Folders crafted to run code
when loaded (a pickle in ``vecnormalize.pkl``, a payload in ``model.zip``'s data, a pickled object in
``weights.pt``) do nothing on ``evaluate``, ``export``, ``train --resume`` and ``finetune``: each of those runs the
CLI in its own process, as a user would, and checks that a marker file the payload would create never appears (so
do the cases whose behaviour is a process's: a pipe that would hang). The other refusals run the CLI in-process.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from simreal.cli import app
from simreal.runs.algorithms import load_pickled_model
from simreal.runs.model_files import read_model_info
from simreal.runs.policy import load_policy
from simreal.runs.setup import load_setup
from simreal.train.trainer import train
from tests.abuse_helpers import KillAt, Killed, one_error_line

TINY = {
    "robot": "inverted_pendulum",
    "seed": 3,
    "total_timesteps": 128,
    "algorithm": {
        "name": "ppo",
        "hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
        "network": {"pi": [8], "vf": [8]},
    },
    "env": {"n_envs": 1},
    "eval": {"frequency": 0, "episodes": 1, "targets": []},
    "checkpoint": {"frequency": 64, "keep": 2},
}


class _Payload:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _payload(marker: Path) -> bytes:
    return pickle.dumps(_Payload(f"touch {marker}"))


def _poison_zip_data(path: Path, marker: Path) -> None:
    """Put a pickle payload where stable-baselines3's zip keeps a cloudpickled object (the observation space)."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data["observation_space"][":serialized:"] = base64.b64encode(_payload(marker)).decode()
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def _poison(folder: Path, marker: Path) -> None:
    """A crafted model folder: both of stable-baselines3's files carry a payload."""
    (folder / "vecnormalize.pkl").write_bytes(_payload(marker))
    _poison_zip_data(folder / "model.zip", marker)


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simreal.cli", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (for cases whose behaviour is not a process's: no hang, no allocation to bound)."""
    result = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def one_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    return one_error_line(result.returncode, result.stdout, result.stderr, *expected)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny finished run, and the same run killed at 100 timesteps (checkpoints at 64 and 128 would be)."""
    folder = tmp_path_factory.mktemp("pickles")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    setup = load_setup(config)
    train(setup, folder / "whole", device="cpu")
    with pytest.raises(Killed):
        train(setup, folder / "killed", device="cpu", callbacks=[KillAt(100)])
    return {"config": config, "whole": folder / "whole", "killed": folder / "killed"}


def _copy(source: Path, folder: Path) -> Path:
    shutil.copytree(source, folder)
    return folder


def test_a_run_loads_from_its_own_files_exactly_as_stable_baselines3_saved_it(runs):
    policy = load_policy(runs["whole"])
    pickled = load_pickled_model(runs["whole"] / "model.zip", "ppo")
    ours, theirs = policy.model.policy.state_dict(), pickled.policy.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert policy.model.num_timesteps == pickled.num_timesteps == read_model_info(runs["whole"]).num_timesteps
    with open(runs["whole"] / "vecnormalize.pkl", "rb") as handle:
        statistics = pickle.load(handle)  # our own test's file: trusted
    assert policy.statistics is not None
    assert np.array_equal(policy.statistics.obs_rms.mean, statistics.obs_rms.mean)
    assert np.array_equal(policy.statistics.obs_rms.var, statistics.obs_rms.var)


@pytest.mark.parametrize("command", ["evaluate", "export", "resume", "finetune"])
def test_pickles_crafted_to_run_code_are_never_loaded(command, runs, tmp_path):
    marker = tmp_path / "marker"
    source = "killed" if command == "resume" else "whole"
    run = _copy(runs[source], tmp_path / "run")
    for folder in [run, *(p for p in (run / "checkpoints").iterdir() if p.is_dir())]:
        if (folder / "model.zip").exists():
            _poison(folder, marker)
    args = {
        "evaluate": ["evaluate", str(run), "--episodes", "1", "--target", "mild"],
        "export": ["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "export")],
        "resume": ["train", "--resume", str(run), "--device", "cpu"],
        "finetune": ["finetune", str(run), "--target", "mild", "--steps", "64", "--run-dir", str(tmp_path / "ft")],
    }[command]
    result = cli(*args)
    assert result.returncode == 0, result.stderr  # simreal's own files are whole: the command works
    assert not marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "export", "resume", "finetune"])
def test_a_run_whose_config_names_a_function_as_its_robot_runs_nothing(command, runs, tmp_path):
    marker = tmp_path / "marker"
    run = _copy(runs["killed" if command == "resume" else "whole"], tmp_path / "run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["robot"] = {"entry_point": "os:system", "kwargs": {"command": f"touch {marker}"}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    args = {
        "evaluate": ["evaluate", str(run), "--episodes", "1"],
        "export": ["export", str(run), "--format", "torchscript", "--out", str(tmp_path / "export")],
        "resume": ["train", "--resume", str(run), "--device", "cpu"],
        "finetune": ["finetune", str(run), "--target", "mild", "--steps", "64", "--run-dir", str(tmp_path / "ft")],
    }[command]
    one_line(invoke(*args), str(run / "config.yaml"), "entry_point", "not a gymnasium.Env subclass")
    assert not marker.exists() and not (tmp_path / "export").exists() and not (tmp_path / "ft").exists()


def test_a_pickle_only_run_is_refused_in_one_line_unless_trusted(runs, tmp_path):
    marker = tmp_path / "marker"
    run = _copy(runs["whole"], tmp_path / "run")
    for name in ("weights.pt", "model.json", "vecnormalize.npz"):
        (run / name).unlink()
    plain = _copy(run, tmp_path / "plain")  # stable-baselines3's own, unpoisoned
    _poison(run, marker)
    for command in (["evaluate", str(run)], ["export", str(run), "--out", str(tmp_path / "e")]):
        one_line(invoke(*command), str(run / "model.zip"), "holds pickles only", "--trust-pickles")
    one_line(invoke("finetune", str(run), "--target", "mild", "--steps", "64"), "holds pickles only")
    assert not marker.exists() and not (tmp_path / "e").exists()
    trusted = invoke("evaluate", str(plain), "--episodes", "1", "--target", "mild", "--trust-pickles")
    assert trusted.returncode == 0, trusted.stderr
    assert "--trust-pickles: will unpickle" in trusted.stderr  # one line says what the flag allowed


@pytest.mark.parametrize("command", ["robustness", "collect", "transfer", "resume"])
def test_every_command_that_loads_a_run_refuses_pickles_only_naming_the_flag(command, runs, tmp_path):
    marker = tmp_path / "marker"
    run = _copy(runs["killed" if command == "resume" else "whole"], tmp_path / "run")
    for folder in [run, *(p for p in (run / "checkpoints").iterdir() if p.is_dir())]:
        for name in ("weights.pt", "model.json", "vecnormalize.npz"):
            if (folder / name).exists():
                (folder / name).unlink()
        if (folder / "model.zip").exists():
            _poison(folder, marker)
    transfer = tmp_path / "transfer.yaml"
    transfer.write_text(yaml.safe_dump({"target": "mild", "source": {"run": str(run)}}))
    args = {
        "robustness": ["robustness", str(run), "--params", "pole_mass", "--grid", "2", "--out", str(tmp_path / "m")],
        "collect": ["collect", str(run), "--robot", "inverted_pendulum", "--out", str(tmp_path / "r.npz")],
        "transfer": ["transfer", str(transfer), "--out", str(tmp_path / "t")],
        "resume": ["train", "--resume", str(run), "--device", "cpu"],
    }[command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "holds pickles only" in result.stderr and "--trust-pickles" in result.stderr, result.stderr
    assert "Traceback" not in result.output and not marker.exists()
    assert not any((tmp_path / name).exists() for name in ("m", "r.npz", "t"))


@pytest.mark.parametrize("kind", ["nested", "fifo"])
def test_a_checkpoint_state_that_nests_too_deep_or_is_a_pipe_is_passed_over(kind, runs, tmp_path):
    run = _copy(runs["killed"], tmp_path / "run")
    (checkpoint,) = [p for p in (run / "checkpoints").iterdir() if p.is_dir()]
    state = checkpoint / "state.json"
    state.unlink()
    if kind == "nested":
        state.write_text("[" * 100_000 + "]" * 100_000)
    else:
        os.mkfifo(state)
    # the run's only checkpoint: one line naming it, at once (a pipe would hang a plain read)
    one_line(cli("train", "--resume", str(run), "--device", "cpu", timeout=120), "no intact checkpoint", "state.json")


def test_weights_that_are_a_pickled_object_are_one_line_and_run_nothing(runs, tmp_path):
    marker = tmp_path / "marker"
    run = _copy(runs["whole"], tmp_path / "run")
    torch.save({"policy": _Payload(f"touch {marker}")}, run / "weights.pt")
    one_line(invoke("evaluate", str(run)), str(run / "weights.pt"), "not a torch file of plain tensors")
    assert not marker.exists()


def test_statistics_that_hold_an_object_array_are_refused(runs, tmp_path):
    run = _copy(runs["whole"], tmp_path / "run")
    arrays = dict(np.load(run / "vecnormalize.npz"))
    arrays["obs_mean"] = np.array([_Payload("true")], dtype=object)
    with open(run / "vecnormalize.npz", "wb") as handle:
        np.savez(handle, **arrays)
    one_line(invoke("evaluate", str(run)), str(run / "vecnormalize.npz"), "not a readable .npz file", "Object arrays")


def _wrong_optimizer_state(run: Path) -> None:
    weights = torch.load(run / "weights.pt", weights_only=True)
    weights["policy.optimizer"] = torch.zeros(3)
    torch.save(weights, run / "weights.pt")


def _negative_variance(run: Path) -> None:
    arrays = dict(np.load(run / "vecnormalize.npz"))
    arrays["obs_var"] = -arrays["obs_var"]
    with open(run / "vecnormalize.npz", "wb") as handle:
        np.savez(handle, **arrays)


def _model_json_of_sac(run: Path) -> None:
    info = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**info, "algorithm": "sac"}))


@pytest.mark.parametrize(
    ("damage", "file", "expected"),
    [
        (_wrong_optimizer_state, "weights.pt", "weights that do not fit the model"),
        (_negative_variance, "vecnormalize.npz", "below 0"),
        (_model_json_of_sac, "model.json", "algorithm: sac"),
    ],
    ids=["optimizer state a tensor", "negative variance", "another algorithm"],
)
def test_model_files_that_parse_but_do_not_fit_the_run_are_one_line(damage, file, expected, runs, tmp_path):
    run = _copy(runs["whole"], tmp_path / "run")
    damage(run)
    one_line(invoke("evaluate", str(run)), str(run / file), expected)


def test_a_zip_beside_a_folders_own_model_is_not_passed_over_silently(runs, tmp_path):
    run = _copy(runs["whole"], tmp_path / "run")
    shutil.copy2(run / "model.zip", run / "other.zip")
    one_line(invoke("evaluate", str(run / "other.zip")), str(run / "other.zip"), "name the folder instead")


@pytest.mark.parametrize("name", ["weights.pt", "vecnormalize.npz", "model.json"])
def test_a_model_file_that_links_out_of_its_folder_is_refused(name, runs, tmp_path):
    run = _copy(runs["whole"], tmp_path / "run")
    outside = tmp_path / f"outside-{name}"
    shutil.copy2(run / name, outside)
    (run / name).unlink()
    (run / name).symlink_to(outside)
    one_line(invoke("evaluate", str(run)), str(run / name), "outside", "only files inside the folder")


def test_a_checkpoint_replaced_by_a_link_out_of_the_run_is_never_resumed_from(runs, tmp_path):
    run = _copy(runs["killed"], tmp_path / "run")
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())["checkpoint"]
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run / "checkpoints" / latest, elsewhere)
    (run / "checkpoints" / latest).symlink_to(elsewhere, target_is_directory=True)
    before = sorted(p.name for p in elsewhere.iterdir())
    # the killed run's only checkpoint: nothing else to resume from
    one_line(invoke("train", "--resume", str(run), "--device", "cpu"), "no intact checkpoint", "leads out of the run")
    assert sorted(p.name for p in elsewhere.iterdir()) == before


def test_a_folder_left_by_a_kill_before_its_config_is_taken_over_and_resume_says_so(runs, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".simreal.lock").write_text("")
    resumed = invoke("train", "--resume", str(folder))
    one_line(resumed, str(folder), "stopped before it began", "a new run takes it over")
    result = invoke("train", str(runs["config"]), "--run-dir", str(folder), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert (folder / "weights.pt").is_file() and read_model_info(folder).num_timesteps == 128


def test_sac_resumes_from_its_replay_buffer_arrays_exactly(tmp_path):
    sac = {
        **TINY,
        "total_timesteps": 160,
        "algorithm": {
            "name": "sac",
            "hyperparameters": {"learning_starts": 32, "batch_size": 16, "buffer_size": 1000},
            "network": {"pi": [8], "qf": [8]},
        },
        "checkpoint": {"frequency": 64, "keep": 2},
    }
    config = tmp_path / "sac.yaml"
    config.write_text(yaml.safe_dump(sac))
    setup = load_setup(config)
    train(setup, tmp_path / "whole", device="cpu")
    with pytest.raises(Killed):
        train(setup, tmp_path / "killed", device="cpu", callbacks=[KillAt(100)])
    assert (tmp_path / "killed" / "checkpoints" / "000000000064" / "replay_buffer.npz").is_file()
    train(setup, tmp_path / "killed", device="cpu", resume=True)
    a, b = (load_policy(tmp_path / run).model.policy.state_dict() for run in ("whole", "killed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_trusted_pickle_only_run_resumes_exactly(runs, tmp_path):
    run = _copy(runs["killed"], tmp_path / "run")
    for folder in [run, *(p for p in (run / "checkpoints").iterdir() if p.is_dir())]:
        for name in ("weights.pt", "model.json", "vecnormalize.npz"):
            if (folder / name).exists():
                (folder / name).unlink()
    result = CliRunner().invoke(app, ["train", "--resume", str(run), "--device", "cpu", "--trust-pickles"])
    assert result.exit_code == 0, result.output
    a, b = (load_policy(folder).model.policy.state_dict() for folder in (run, runs["whole"]))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the end of an uninterrupted run, and in simreal's own files
