"""simreal used as a hostile user would: two writers in one folder, damaged checkpoints and model files, paths that
leave their folder, files that are not what they claim, a file system that says no, signals, and a kill during
every write a training makes. Each case either works (a resume that passes over what is damaged, and says so) or is
refused in one line naming the file and the field, exit status 2, with nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

import simreal.fileio as fileio
from simreal.cli import app
from simreal.locks import LOCK, hold
from simreal.runs.algorithms import load_pickled_model as load_model
from simreal.runs.setup import load_setup, resume_setup
from simreal.sysid.collect import collect
from simreal.sysid.trajectories import save_trajectories
from simreal.train.trainer import train
from tests.abuse_helpers import KillAt, Killed, one_error_line

runner = CliRunner()

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
    "eval": {"frequency": 64, "episodes": 1, "targets": ["mild"]},
    "checkpoint": {"frequency": 32, "keep": 3},
}


def tiny(tmp_path: Path, name: str = "tiny.yaml", **changes) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def refused(args: list[str], *expected: str) -> str:
    """Run the CLI in this process; assert one error line naming every ``expected`` text, exit status 2."""
    result = runner.invoke(app, args)
    return one_error_line(result.exit_code, result.stdout, result.stderr, *expected)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_model(run_dir / "model.zip", "ppo").policy.state_dict()


def same_weights(a: Path, b: Path) -> bool:
    first, second = weights(a), weights(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted tiny run, and the same run killed at 100 timesteps (checkpoints at 32, 64 and 96)."""
    folder = tmp_path_factory.mktemp("abuse")
    config = tiny(folder)
    setup = load_setup(config)
    train(setup, folder / "whole", device="cpu")
    with pytest.raises(Killed):
        train(setup, folder / "killed", device="cpu", callbacks=[KillAt(100)])
    return {"config": config, "whole": folder / "whole", "killed": folder / "killed"}


@pytest.fixture
def killed(runs, tmp_path):
    """A copy of the killed run, to damage."""
    copy = tmp_path / "killed"
    shutil.copytree(runs["killed"], copy)
    return copy


def start_training(config: Path, run_dir: Path, until: Path) -> subprocess.Popen:
    """``simreal train`` in another process, returned once ``until`` exists."""
    process = subprocess.Popen(
        [sys.executable, "-m", "simreal.cli", "train", str(config), "--run-dir", str(run_dir), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while not until.exists() and time.time() < deadline:
        time.sleep(0.02)
    return process


class Holder:
    """Another process holding a folder's lock, as a second simreal command would."""

    def __init__(self, folder: Path) -> None:
        code = (
            "import sys, time\nfrom simreal.locks import hold\n"
            "with hold(sys.argv[1]):\n print('held', flush=True)\n time.sleep(120)"
        )
        self.process = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "held"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


# -- two writers, one folder ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "finetune", "transfer", "sweep"])
def test_a_folder_another_process_holds_is_refused_and_left_alone(command, runs, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    holder = Holder(folder)
    try:
        transfer = tmp_path / "transfer.yaml"
        transfer.write_text(yaml.safe_dump({"target": "mild", "source": {"run": str(runs["whole"])}}))
        args = {
            "train": ["train", str(runs["config"]), "--run-dir", str(folder)],
            "finetune": ["finetune", str(runs["whole"]), "--target", "mild", "--steps", "64", "--run-dir", str(folder)],
            "transfer": ["transfer", str(transfer), "--out", str(folder)],
            "sweep": ["sweep", str(runs["config"]), "--seeds", "1", "--out", str(folder)],
        }[command]
        refused(args, str(folder), "in use by another simreal process")
        assert [p.name for p in folder.iterdir()] == [LOCK]  # nothing written
    finally:
        holder.kill()


def test_a_lock_left_by_a_killed_process_never_blocks_the_resume(killed):
    holder = Holder(killed)
    holder.kill()  # kill -9 while holding: the kernel drops the lock with the process
    assert (killed / LOCK).exists()
    result = runner.invoke(app, ["train", "--resume", str(killed), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    with hold(killed):  # and nothing holds it after the resume either
        pass


def test_two_trainings_started_together_one_is_refused_the_other_keeps_its_results(tmp_path):
    config = tiny(tmp_path, total_timesteps=2048, eval={"frequency": 0, "episodes": 1, "targets": []})
    folder = tmp_path / "run"
    first = start_training(config, folder, until=folder / "run.json")
    refused(["train", str(config), "--run-dir", str(folder), "--seed", "9"], "in use by another simreal process")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    run = json.loads((folder / "run.json").read_text())
    assert len(run["starts"]) == 1 and run["num_timesteps"] == 2048
    assert yaml.safe_load((folder / "config.yaml").read_text())["seed"] == 3
    assert json.loads((folder / "eval.json").read_text())["num_timesteps"] == 2048
    assert load_model(folder / "model.zip", "ppo").num_timesteps == 2048


# -- damaged checkpoints and model files ----------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zip_without_data(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("policy.pth", b"not weights")


DAMAGE = {
    "truncated weights.pt": lambda c: _truncate(c / "000000000096" / "weights.pt"),
    "model.json not JSON": lambda c: (c / "000000000096" / "model.json").write_text("{"),
    "truncated vecnormalize.npz": lambda c: _truncate(c / "000000000096" / "vecnormalize.npz"),
    "state.json not an object": lambda c: (c / "000000000096" / "state.json").write_text("[1, 2]"),
    "state.json not JSON": lambda c: (c / "000000000096" / "state.json").write_text('{"streams": ['),
    "latest.json not JSON": lambda c: (c / "latest.json").write_text("{"),
    "latest.json a list": lambda c: (c / "latest.json").write_text("[]"),
    "latest.json leaves the run": lambda c: (c / "latest.json").write_text(
        json.dumps({"checkpoint": "../../whole/checkpoints/000000000128", "num_timesteps": 128})
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_resume_passes_over_a_damaged_checkpoint_says_so_and_ends_where_an_uninterrupted_run_does(damage, runs, killed):
    DAMAGE[damage](killed / "checkpoints")
    result = runner.invoke(app, ["train", "--resume", str(killed), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "passed over" in result.stderr and "Traceback" not in result.output
    # a damaged 96 is passed over for 64; a damaged pointer still finds 96, this run's own newest checkpoint
    start = 96 if damage.startswith("latest.json") else 64
    assert f"resumed at {start} timesteps" in result.stdout
    assert same_weights(killed, runs["whole"])  # the run ends exactly where the uninterrupted one did


def test_a_run_whose_every_checkpoint_is_damaged_is_one_line(killed):
    for checkpoint in (killed / "checkpoints").glob("0*"):
        _truncate(checkpoint / "weights.pt")
    refused(["train", "--resume", str(killed)], str(killed), "no intact checkpoint", "weights.pt")


def _an_npz(path: Path) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, observations=np.zeros((3, 4)))


MODEL_FILES = {
    "truncated": _truncate,
    "a zip of other data": _zip_without_data,
    "an npz": _an_npz,
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("not a model"),
}


@pytest.mark.parametrize("kind", list(MODEL_FILES))
def test_a_damaged_or_foreign_model_file_is_one_line(kind, runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs["whole"], run)
    MODEL_FILES[kind](run / "weights.pt")
    refused(["evaluate", str(run), "--episodes", "2"], str(run / "weights.pt"), "not a torch file of plain tensors")


# -- paths that leave their folder ------------------------------------------------------------------------------------


def test_a_robot_name_that_leads_out_of_envs_is_refused(tmp_path):
    outside = tmp_path / "evil.yaml"
    outside.write_text((Path(__file__).parents[1] / "envs" / "hopper.yaml").read_text())
    name = os.path.relpath(outside.with_suffix(""), Path(__file__).parents[1] / "envs")
    config = tiny(tmp_path, robot=name)
    refused(["train", str(config)], str(config), "robot", "unknown robot")
    refused(["collect", "random", "--robot", name, "--out", str(tmp_path / "d.npz")], "unknown robot")


def test_a_pipeline_state_that_points_outside_its_folder_is_refused(runs, tmp_path):
    config = tmp_path / "transfer.yaml"
    config.write_text(yaml.safe_dump({"target": "mild", "source": {"run": str(runs["whole"])}}))
    out = tmp_path / "out"
    from simreal.transfer.config import load_transfer_config
    from simreal.transfer.pipeline import SCHEMA, STATE

    wanted = load_transfer_config(str(config)).model_dump(mode="json")
    stages = {"source": {"policy": str(runs["whole"])}, "zero_shot": {"policy": str(tmp_path / "elsewhere")}}
    out.mkdir()
    (out / STATE).write_text(json.dumps({"schema": SCHEMA, "config": wanted, "stages": stages}))
    refused(["transfer", str(config), "--out", str(out)], str(out / STATE), "stages.zero_shot.policy", "is outside")


def test_an_unknown_target_writes_nothing_and_the_corrected_config_runs_in_the_same_folder(runs, tmp_path):
    from simreal.transfer.config import load_transfer_config
    from simreal.transfer.pipeline import SCHEMA, STATE, _state

    config = tmp_path / "transfer.yaml"
    config.write_text(yaml.safe_dump({"target": "mild", "source": {"run": str(runs["whole"])}}))
    out = tmp_path / "out"
    wrong = ["transfer", str(config), "--out", str(out), "--set", "target=nowhere"]
    refused(wrong, "--set target: unknown target 'nowhere' for inverted_pendulum")
    assert not out.exists()
    # a folder left by a pipeline that never began a stage takes the corrected config (nothing to mix)
    out.mkdir()
    stale = load_transfer_config(str(config), ["seed=7"]).model_dump(mode="json")
    (out / STATE).write_text(json.dumps({"schema": SCHEMA, "config": stale, "stages": {}}))
    corrected = load_transfer_config(str(config))
    assert _state(corrected, out)["config"] == corrected.model_dump(mode="json")


# -- files that are not what they claim -------------------------------------------------------------------------------


def test_yaml_that_is_not_utf8_or_has_a_key_twice_or_an_alias_bomb_is_one_line(tmp_path):
    config = tiny(tmp_path)
    text = config.read_text()
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(text.encode() + "# caf\xe9\n".encode("latin-1"))
    refused(["train", str(bad)], str(bad), "not UTF-8 text")
    twice = tmp_path / "twice.yaml"
    twice.write_text(text + "robot: hopper\n")
    refused(["train", str(twice)], str(twice), "duplicate key 'robot'", "line")
    nested = tmp_path / "nested.yaml"
    nested.write_text(text + "randomization:\n  ranges:\n    pole_mass: [0.9, 1.1]\n    pole_mass: [0.5, 2.0]\n")
    refused(["train", str(nested)], str(nested), "duplicate key 'pole_mass'")
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(text + "randomization:\n  ranges:\n" + "".join(f"    {line}\n" for line in levels))
    started = time.perf_counter()
    line = refused(["train", str(bomb)], str(bomb), "aliases are expanded")
    assert len(line) < 300 and time.perf_counter() - started < 30
    robot = tmp_path / "robot.yaml"
    robot.write_bytes(b"gym_id: InvertedPendulum-v5\n# \xff\n")
    refused(["train", str(tiny(tmp_path, "r.yaml", robot=str(robot)))], str(robot), "not UTF-8 text")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    data = collect("random", "inverted_pendulum", episodes=3, seed=0)
    path = tmp_path_factory.mktemp("data") / "good.npz"
    save_trajectories(data, path)
    save_trajectories(data, path.with_suffix(".csv"))
    return path


def _npz(source: Path, target: Path, **changes) -> None:
    with np.load(source) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update(changes)
    np.savez(target, **arrays)


def _csv_header(source: Path, target: Path, rename: dict[str, str]) -> None:
    lines = source.with_suffix(".csv").read_text().splitlines()
    header = lines[1].split(",")
    lines[1] = ",".join(rename.get(name, name) for name in header)
    target.write_text("\n".join(lines) + "\n")


DATA = {
    "episode a scalar": ("npz", {"episode": np.array(3)}, "episode: expected one value per step"),
    "episode strings": ("npz", {"episode": np.array(["a"] * 5)}, "episode: expected numbers"),
    "observations strings": ("npz", {"observations": np.array([["x"] * 4] * 5)}, "observations: expected numbers"),
    "meta a list": ("npz", {"meta": json.dumps([1, 2])}, "meta: expected a JSON object"),
    "meta.dynamics a string": ("npz", {"meta": json.dumps({"dynamics": {"pole_mass": "heavy"}})}, "meta.dynamics"),
    "a column twice": ("csv", {"obs_1": "obs_0"}, "column 'obs_0' appears more than once"),
    "a column missing": ("csv", {"obs_1": "obs_9"}, "column obs_1 is missing"),
}


@pytest.mark.parametrize("case", list(DATA))
def test_recorded_data_that_is_not_what_it_claims_is_one_line_naming_the_field(case, recording, tmp_path):
    kind, change, message = DATA[case]
    path = tmp_path / f"bad.{kind}"
    if kind == "npz":
        _npz(recording, path, **change)
    else:
        _csv_header(recording, path, change)
    refused(["sysid", str(path), "--robot", "inverted_pendulum"], str(path), message)


def test_an_npy_array_named_npz_and_a_horizon_past_every_episode_name_the_file(recording, tmp_path):
    fake = tmp_path / "array.npz"
    with open(fake, "wb") as handle:
        np.save(handle, np.zeros(3))
    refused(["sysid", str(fake), "--robot", "inverted_pendulum"], str(fake), "not an .npz archive")
    refused(["sysid", str(recording), "--robot", "inverted_pendulum", "--horizon", "5000"], str(recording), "horizon")


# -- the file system says no ------------------------------------------------------------------------------------------


def test_an_output_in_the_way_is_one_line_before_any_work(runs, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    folder = tmp_path / "a_folder"
    folder.mkdir()
    refused(["train", str(runs["config"]), "--run-dir", str(blocker)], str(blocker), "a file is in the way")
    refused(["evaluate", str(runs["whole"]), "--json", str(folder)], str(folder), "a folder is in the way")
    transfer = tmp_path / "transfer.yaml"
    transfer.write_text(yaml.safe_dump({"target": "mild", "source": {"run": str(runs["whole"])}}))
    refused(["transfer", str(transfer), "--out", str(blocker)], str(blocker), "a file is in the way")
    video = tmp_path / "video.gif"
    video.mkdir()
    refused(["record", str(runs["whole"]), "--out", str(video)], str(video), "a folder is in the way")
    refused(["record", str(runs["whole"]), "--out", str(tmp_path / "v.gif"), "--size", "0x0"], "--size")
    assert blocker.read_text() == "in the way" and not any(folder.iterdir()) and not any(video.iterdir())


@pytest.mark.parametrize("errno_name", ["EROFS", "ENOSPC", "EACCES"])
def test_a_file_system_that_refuses_writes_is_one_line_naming_the_path(errno_name, runs, tmp_path, monkeypatch):
    import errno

    number = getattr(errno, errno_name)
    run_dir = tmp_path / "run"

    def refuse(fd: int) -> None:
        raise OSError(number, os.strerror(number))

    monkeypatch.setattr(fileio.os, "fsync", refuse)  # every write of the suite flushes before its rename
    refused(["train", str(runs["config"]), "--run-dir", str(run_dir)], str(run_dir), os.strerror(number))
    assert not [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]  # no half-written file left


# -- signals ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_saves_a_checkpoint_and_says_where_to_resume(name, code, tmp_path):
    config = tiny(tmp_path, total_timesteps=100_000, eval={"frequency": 0, "episodes": 1, "targets": []})
    run_dir = tmp_path / "run"
    process = start_training(config, run_dir, until=run_dir / "checkpoints" / "latest.json")
    process.send_signal(getattr(signal, name))
    assert process.wait(timeout=60) == code
    stderr = process.stderr.read()
    saved = json.loads((run_dir / "checkpoints" / "latest.json").read_text())["num_timesteps"]
    assert f"stopped by {name} at {saved} timesteps" in stderr and f"simreal train --resume {run_dir}" in stderr
    result = runner.invoke(app, ["train", "--resume", str(run_dir), "--set", f"total_timesteps={saved + 32}"])
    assert result.exit_code == 0 and f"resumed at {saved} timesteps" in result.stdout, result.output


# -- a kill during every write ----------------------------------------------------------------------------------------


def test_a_kill_during_any_write_then_resume_ends_where_an_uninterrupted_run_does(runs, tmp_path, monkeypatch):
    """A kill (here: a ``BaseException`` no code catches, raised where the file would be renamed into place, the
    temporary file left behind as kill -9 leaves it) at each of the training's writes in turn; then the resume
    (or, killed before ``config.yaml`` exists, the same command again) must end with the uninterrupted run's
    weights and evaluation."""
    setup = load_setup(runs["config"])
    real = os.replace
    writes: list[str] = []

    def counting(source, target):
        writes.append(Path(target).name)
        return real(source, target)

    monkeypatch.setattr(fileio.os, "replace", counting)
    train(setup, tmp_path / "counted", device="cpu")
    assert len(writes) > 20
    expected = json.loads((runs["whole"] / "eval.json").read_text())["source"]
    for k, name in enumerate(writes):
        run_dir = tmp_path / f"kill_{k}"
        calls = iter(range(10**6))

        def killing(source, target, k=k, calls=calls):
            if next(calls) == k:
                if Path(source).is_file():  # what a kill -9 leaves: the temporary file, never renamed
                    shutil.copy(source, f"{source}.left")
                raise Killed
            return real(source, target)

        monkeypatch.setattr(fileio.os, "replace", killing)
        with pytest.raises(Killed):
            train(setup, run_dir, device="cpu")
        monkeypatch.setattr(fileio.os, "replace", real)
        if (run_dir / "config.yaml").exists():
            train(resume_setup(run_dir), run_dir, device="cpu", resume=True)
        else:
            train(setup, run_dir, device="cpu")
        assert same_weights(run_dir, runs["whole"]), (k, name)
        assert json.loads((run_dir / "eval.json").read_text())["source"] == expected, (k, name)
