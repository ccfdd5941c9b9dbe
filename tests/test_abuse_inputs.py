"""Inputs that broke simreal, each now one line naming the file and the field (and the bound, where there is one),
exit status 2, before anything is written: files that are not files (a named pipe that hangs, ``/dev/zero`` that
never ends), files too big or nested too deep, seeds and sizes past what the libraries underneath allocate or
accept, grids too big to start, Ray's device and address, sysid's parameter names and episode order, a recording
that would be replaced, a transfer's source that is not there.

What a process does (a hang, an allocation, Ray's retries) is run in a subprocess with a timeout, and with a limit
on its memory where the failure was an allocation: a regression fails the test instead of hanging it or exhausting
the machine."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from simreal.cli import app
from simreal.fileio import MAX_DEPTH
from simreal.runs.config import MAX_ENVS, MAX_LAYER_WIDTH, MAX_SEED
from simreal.runs.setup import load_setup
from simreal.sysid.collect import collect
from simreal.sysid.identify import identify
from simreal.sysid.trajectories import Trajectories, load_trajectories, save_trajectories
from simreal.tools.grid import MAX_POINTS
from simreal.tools.sweep import MAX_JOBS
from simreal.train.trainer import train
from tests.abuse_helpers import one_error_line

runner = CliRunner()

TINY = {
    "robot": "inverted_pendulum",
    "seed": 3,
    "total_timesteps": 64,
    "algorithm": {
        "name": "ppo",
        "hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
        "network": {"pi": [8], "vf": [8]},
    },
    "env": {"n_envs": 1},
    "eval": {"frequency": 0, "episodes": 1, "targets": ["mild"]},
    "checkpoint": {"frequency": 0, "keep": 1},
}
#: The address space a subprocess may map: torch and MuJoCo import well inside it; the allocations these inputs
#: caused (hundreds of gigabytes) do not fit.
MEMORY = 4 << 30
#: Nested far past MAX_DEPTH: what raised RecursionError.
DEEP = 100_000


def tiny(folder: Path, name: str = "tiny.yaml", **changes: object) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def refused(args: list[str], *expected: str) -> str:
    """Run the CLI in this process; assert exit status 2 and one error line holding every ``expected`` text."""
    result = runner.invoke(app, args)
    return one_error_line(result.exit_code, result.stdout, result.stderr, *expected)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def refused_process(args: list[str], *expected: str, cwd: Path, memory: bool = True, timeout: float = 60) -> str:
    """Run the CLI in a subprocess (with a timeout, and a memory limit unless ``memory`` is false); assert exit
    status 2 and one error line holding every ``expected`` text."""
    result = subprocess.run(
        [sys.executable, "-m", "simreal.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory if memory else None,
        env={**os.environ, "COLUMNS": "400"},  # one error line stays one line
    )
    return one_error_line(result.returncode, result.stdout, result.stderr, *expected)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained run."""
    folder = tmp_path_factory.mktemp("inputs")
    train(load_setup(tiny(folder)), folder / "run", device="cpu")
    return folder / "run"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """Six random episodes of the pendulum at known dynamics."""
    path = tmp_path_factory.mktemp("recording") / "recording.npz"
    save_trajectories(collect("random", "inverted_pendulum", {"parameters": {"pole_mass": 1.3}}, 6, seed=0), path)
    return path


def fifo(folder: Path, name: str) -> Path:
    path = folder / name
    os.mkfifo(path)
    return path


def written(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- input files: regular files, under a size limit, nested at most MAX_DEPTH levels --------------------------------


@pytest.mark.parametrize(
    ("command", "bad"),
    [
        ("train", "fifo"),  # hung forever
        ("train", "zero"),  # MemoryError
        ("target", "zero"),
        ("target", "fifo"),
        ("sysid", "fifo"),
    ],
)
def test_a_pipe_or_a_device_as_an_input_file_is_refused_at_once(command, bad, tmp_path):
    path = fifo(tmp_path, "input.yaml" if command != "sysid" else "input.npz") if bad == "fifo" else Path("/dev/zero")
    kind = "a named pipe (FIFO)" if bad == "fifo" else "a character device"
    args = {
        "train": ["train", str(path), "--run-dir", str(tmp_path / "run")],
        "target": ["collect", "random", "--robot", "inverted_pendulum", "--target", str(path), "--out", "out.npz"],
        "sysid": ["sysid", str(path), "--robot", "inverted_pendulum", "--out", "out.yaml"],
    }[command]
    before = written(tmp_path)
    refused_process(args, str(path), kind, cwd=tmp_path)
    assert written(tmp_path) == before


def test_an_input_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    config = tiny(tmp_path)
    with open(config, "r+b") as handle:
        handle.truncate(17 * 2**20)  # sparse: 17 MiB that cost nothing to write
    refused(["train", str(config), "--run-dir", str(tmp_path / "run")], str(config), "over the 16 MiB limit")
    assert not (tmp_path / "run").exists()


def deep_yaml(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["config", "robot", "block"])
def test_yaml_nested_too_deep_is_refused_before_it_is_parsed(where, tmp_path):
    if where == "config":
        path = tiny(tmp_path, randomization={"parameters": None})
        path.write_text(path.read_text() + f"extra: {deep_yaml(DEEP)}\n")
        args = ["train", str(path), "--run-dir", str(tmp_path / "run")]
    elif where == "robot":
        path = tmp_path / "robot.yaml"
        path.write_text(f"base: inverted_pendulum\nparameters: {deep_yaml(DEEP)}\n")
        args = ["collect", "random", "--robot", str(path), "--out", str(tmp_path / "out.npz")]
    else:  # nested by indentation, no bracket at all
        path = tiny(tmp_path)
        path.write_text(path.read_text() + "".join(f"{' ' * i}k{i}:\n" for i in range(MAX_DEPTH + 10)))
        args = ["train", str(path), "--run-dir", str(tmp_path / "run")]
    before = written(tmp_path)
    refused(args, str(path), f"nested deeper than {MAX_DEPTH} levels")
    assert written(tmp_path) == before


def test_yaml_aliases_nested_too_deep_once_expanded_are_refused(tmp_path):
    # each anchor nests the one before 90 levels down: 5 x 90 levels, though no single node is written that deep
    lines = ["a0: &a0 " + "[" * 90 + "1" + "]" * 90]
    lines += [f"a{i}: &a{i} " + "[" * 90 + f"*a{i - 1}" + "]" * 90 for i in range(1, 5)]
    path = tiny(tmp_path)
    path.write_text(path.read_text() + "\n".join(lines) + "\n")
    refused(["train", str(path), "--run-dir", str(tmp_path / "run")], str(path), "nested deeper than", "aliases")
    assert not (tmp_path / "run").exists()


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["npz meta", "csv meta"])
def test_a_recording_whose_meta_nests_too_deep_is_refused(where, recording, tmp_path):
    data = load_trajectories(recording)
    if where == "npz meta":
        path = tmp_path / "deep.npz"
        arrays = {name: getattr(data, name) for name in ("episode", "step", "observations", "actions")}
        np.savez(path, meta=np.array(deep_json(DEEP)), **arrays)
        field = "meta"
    else:
        path = tmp_path / "deep.csv"
        save_trajectories(data, path)
        lines = path.read_text().splitlines()
        path.write_text("\n".join(["# simreal: " + deep_json(DEEP), *lines[1:]]) + "\n")
        field = "line 1"
    refused(["sysid", str(path), "--robot", "inverted_pendulum", "--out", str(tmp_path / "out.yaml")], str(path), field)
    assert not (tmp_path / "out.yaml").exists()


def test_a_recording_whose_arrays_declare_more_than_the_limit_is_refused_before_they_are_allocated(tmp_path):
    # a few bytes of file whose header declares 800 GB of observations: numpy allocates what a header declares
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 100)})
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("episode.npy", _npy(np.zeros(3, dtype=np.int64)))
        archive.writestr("observations.npy", header.getvalue() + bytes(64))
    args = ["sysid", str(path), "--robot", "inverted_pendulum", "--out", "out.yaml"]
    refused_process(args, str(path), "observations", "over the limit", cwd=tmp_path)
    assert not (tmp_path / "out.yaml").exists()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_a_pipeline_state_nested_too_deep_is_refused_before_its_folder_is_held(run, tmp_path):
    config = tmp_path / "transfer.yaml"
    config.write_text(yaml.safe_dump({"kind": "transfer", "target": "mild", "source": {"run": str(run)}}))
    out = tmp_path / "pipeline"
    out.mkdir()
    (out / "pipeline.json").write_text(deep_json(DEEP))
    refused(["transfer", str(config), "--out", str(out)], str(out / "pipeline.json"), f"deeper than {MAX_DEPTH}")
    assert written(out) == ["pipeline.json"]  # no lock file, no stage


# -- schema bounds: seeds, envs and networks bounded before a run folder exists --------------------------------------


@pytest.mark.parametrize(
    ("how", "bound"),
    [
        ({"config": {"seed": 2**70}}, str(MAX_SEED)),
        ({"args": ["--seed", str(10**30)]}, str(MAX_SEED)),
    ],
    ids=["config seed", "--seed"],
)
def test_a_seed_past_what_numpy_takes_is_refused_before_the_run_folder(how, bound, tmp_path):
    config = tiny(tmp_path, **how.get("config", {}))
    args = ["train", str(config), "--run-dir", str(tmp_path / "run"), *how.get("args", [])]
    field = "--seed" if "args" in how else f"{config}: seed"
    refused(args, field, bound)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("changes", "field", "bound"),
    [
        ({"env": {"n_envs": 1_000_000}}, "env.n_envs", str(MAX_ENVS)),
        ({"algorithm": {**TINY["algorithm"], "network": {"pi": [200_000, 200_000]}}}, "network.pi", "8192"),
        (
            {"algorithm": {**TINY["algorithm"], "hyperparameters": {"n_steps": 100_000}}, "env": {"n_envs": 4096}},
            "algorithm.hyperparameters.n_steps",
            "33554432",
        ),
        (
            {"algorithm": {"name": "sac", "hyperparameters": {"buffer_size": 10**13}}},
            "algorithm.hyperparameters.buffer_size",
            "33554432",
        ),
    ],
    ids=["n_envs", "network.pi", "rollout", "replay buffer"],
)
def test_sizes_that_fail_on_allocation_are_refused_by_the_schema(changes, field, bound, tmp_path):
    assert str(MAX_LAYER_WIDTH) == "8192"
    config = tiny(tmp_path, **changes)
    refused_process(["train", str(config), "--run-dir", "run"], str(config), field, bound, cwd=tmp_path)
    assert not (tmp_path / "run").exists()


# -- grids: bounded before anything is allocated, planned, or started -----------------------------------------------


def test_a_robustness_grid_past_its_bound_is_refused_before_the_policy_loads(run, tmp_path):
    out = tmp_path / "map"
    args = ["robustness", str(run), "--params", "pole_mass", "--grid", "1000000000", "--out", str(out)]
    refused_process(args, "--grid", str(MAX_POINTS), cwd=tmp_path)
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (
            [
                "--grid",
                "algorithm.hyperparameters.learning_rate=" + ",".join(f"{k}e-5" for k in range(1, 1001)),
                "--grid",
                "algorithm.hyperparameters.n_epochs=" + ",".join(str(k) for k in range(1, 1001)),
            ],
            "--grid",
        ),
        (["--seeds", "1000000000"], "--seeds"),
    ],
    ids=["10^6 grid points", "10^9 seeds"],
)
def test_a_sweep_past_its_job_bound_is_refused_at_once(options, field, tmp_path):
    config = tiny(tmp_path)
    started = time.perf_counter()
    refused_process(["sweep", str(config), "--out", "sweep", *options], field, str(MAX_JOBS), cwd=tmp_path)
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "sweep").exists()


def test_an_unknown_sweep_device_is_refused_before_ray_starts(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", never)
    refused(
        ["sweep", str(tiny(tmp_path)), "--out", str(tmp_path / "sweep"), "--device", "banana"], "--device", "banana"
    )
    assert not (tmp_path / "sweep").exists()


def test_a_ray_address_that_does_not_answer_is_refused_within_seconds(tmp_path):
    pytest.importorskip("ray")
    started = time.perf_counter()
    args = ["sweep", str(tiny(tmp_path)), "--out", "sweep", "--address", "127.0.0.1:1"]
    refused_process(args, "--address", "127.0.0.1:1", cwd=tmp_path, memory=False)
    assert time.perf_counter() - started < 30
    assert not (tmp_path / "sweep").exists()


# -- sysid: names, episode order, recordings never replaced unasked -------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["sysid", "{data}", "--robot", "inverted_pendulum", "--params", ",,,"],
        ["sysid", "{data}", "--robot", "inverted_pendulum", "--params", "pole_mass,,cart_mass"],
        ["robustness", "{run}", "--params", "pole_mass,"],
    ],
    ids=["sysid ,,,", "sysid a,,b", "robustness a,"],
)
def test_empty_parameter_names_are_refused_not_read_as_all(args, recording, run, tmp_path):
    args = [arg.format(data=recording, run=run) for arg in args]
    refused([*args, "--out", str(tmp_path / "out")], "--params", "an empty name")
    assert not (tmp_path / "out").exists()


def relabelled(data: Trajectories, how: str) -> Trajectories:
    """The same recording with its episode ids in descending order, or its rows (all of them) in reverse."""
    if how == "descending ids":
        return dataclasses.replace(data, episode=1000 - 7 * data.episode)
    order = np.arange(len(data))[::-1]
    arrays = {
        name: getattr(data, name)[order]
        for name in ("episode", "step", "observations", "actions", "rewards", "terminated", "truncated", "qpos", "qvel")
    }
    return dataclasses.replace(data, **arrays)


@pytest.mark.parametrize("how", ["descending ids", "reversed rows"])
def test_sysid_takes_episode_ids_and_rows_in_any_order(how, recording, tmp_path):
    original = load_trajectories(recording)
    path = tmp_path / "relabelled.npz"
    save_trajectories(relabelled(original, how), path)
    shuffled = load_trajectories(path, "inverted_pendulum")
    if how == "descending ids":
        assert np.array_equal(shuffled.observations, original.observations)
    else:  # the last episode first, each episode's rows as recorded
        expected = np.concatenate([original.observations[rows] for rows in original.episode_rows()[::-1]])
        assert np.array_equal(shuffled.observations, expected)
    for step in np.split(shuffled.step, np.flatnonzero(np.diff(shuffled.episode)) + 1):
        assert np.array_equal(step, np.arange(len(step)))  # each episode's rows together, in step order
    options = {"horizon": 3, "budget": 40, "seed": 0, "holdout": None}
    fits = [identify(data, "inverted_pendulum", ["pole_mass"], **options) for data in (original, shuffled)]
    first, second = (fit.as_dict()["parameters"]["pole_mass"] for fit in fits)
    if how == "descending ids":  # the same episodes in the same order: the same fit
        assert first["estimate"] == pytest.approx(second["estimate"], rel=1e-12)
        assert first["interval"] == pytest.approx(second["interval"], rel=1e-9)
    else:  # the episodes come last first (another one held out): a fit as good
        assert second["estimate"] == pytest.approx(1.3, rel=0.05)


def test_collect_never_replaces_a_recording_unless_asked(tmp_path):
    out = tmp_path / "recording.npz"
    out.write_bytes(b"hours of a real robot")
    args = ["collect", "random", "--robot", "inverted_pendulum", "--episodes", "1", "--out", str(out)]
    refused(args, str(out), "already exists", "--overwrite")
    assert out.read_bytes() == b"hours of a real robot"
    assert written(tmp_path) == ["recording.npz"]
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert len(load_trajectories(out).episodes) == 1


# -- transfer: a source that is not there names the config and the field -------------------------------------------


@pytest.mark.parametrize(
    ("source", "field"),
    [({"run": "no/such/run"}, "source.run"), ({"config": "no_such_config.yaml"}, "source.config")],
    ids=["source.run", "source.config"],
)
def test_a_transfer_source_that_is_not_there_names_the_config_and_the_field(source, field, tmp_path):
    config = tmp_path / "transfer.yaml"
    config.write_text(json.dumps({"kind": "transfer", "target": "mild", "source": source}))
    out = tmp_path / "pipeline"
    refused(["transfer", str(config), "--out", str(out)], f"{config}: {field}: ", next(iter(source.values())))
    assert not out.exists()
