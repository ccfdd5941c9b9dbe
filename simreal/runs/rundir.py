"""The run directory: what a training run leaves behind, written atomically, and how to read it back.

Layout::

    <run_dir>/
      config.yaml            the resolved config (after --set)
      run.json               every start and resume: command line, versions, git commit, device, timesteps
      weights.pt, model.json final model: weights as torch state dicts, counters and spaces as JSON
      vecnormalize.npz       its normalization statistics as arrays
      model.zip              the same model as stable-baselines3 saves it (+ vecnormalize.pkl), for its users
      eval.json              the final evaluation
      best/                  best on nominal source: the model's files and eval.json (one folder, swapped)
      checkpoints/<steps>/   the model's files, replay_buffer.npz (SAC), state.json
      checkpoints/latest.json  which checkpoint is the latest complete one
      tb/                    TensorBoard event files
      osi.pt, osi.json       UP-OSI runs: the estimator (plain tensors) and its training rounds' errors
      rma.json               RMA runs: the adaptation module's training rounds' errors (the module is in model.zip)

simreal reads a model back from ``weights.pt``, ``model.json`` and ``vecnormalize.npz`` (rebuilt from
``config.yaml``, see :mod:`simreal.runs.model_files`), never from the pickles in ``model.zip`` and
``vecnormalize.pkl`` unless told to trust them; every file it reads must be a regular file inside the run.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal.envs.robots import robot_label
from simreal.errors import ConfigError, DataError, shown
from simreal.fileio import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    contained_file,
    open_regular,
    read_json,
    recover_dir,
    replace_dir,
    staging_dir,
)
from simreal.locks import LOCK
from simreal.runs import model_files
from simreal.runs.algorithms import VECNORMALIZE, model_file_problem
from simreal.runs.config import TrainConfig
from simreal.runs.config_files import load_config

CONFIG = "config.yaml"
RUN = "run.json"
MODEL = "model.zip"
EVAL = "eval.json"
#: Written into a wheel built from a git checkout (hatch_build.py): the commit it was built from.
BUILD_INFO = "_build_info.json"
#: stable-baselines3's replay buffer file: read (unpickled) only from a trusted checkpoint of an older run.
PICKLED_REPLAY_BUFFER = "replay_buffer.pkl"
BEST = "best"
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"


def default_run_name(config: TrainConfig, now: float | None = None) -> str:
    """``<robot>_<algo>_<seed>_<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{robot_label(config.robot)}_{config.algorithm.name}_{config.seed}_{stamp}"


def git_commit() -> dict[str, Any]:
    """``{"git_commit": sha}`` of the simreal checkout this code runs from (an editable install), else the commit a
    wheel built from a checkout recorded (``git_commit_note`` says so, and whether that checkout had uncommitted
    changes), else ``None`` and ``git_commit_note`` saying why there is none."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return _built_from()
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except FileNotFoundError:
        return {"git_commit": None, "git_commit_note": "git is not installed"}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"git_commit": None, "git_commit_note": f"git rev-parse failed ({type(exc).__name__})"}
    return {"git_commit": result.stdout.strip() or None}


def _built_from() -> dict[str, Any]:
    """The commit recorded when this installed package was built (``hatch_build.py``), if it was built from git."""
    record = Path(__file__).resolve().parents[1] / BUILD_INFO
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
        commit = str(info["git_commit"])
    except (OSError, ValueError, KeyError, TypeError):
        return {
            "git_commit": None,
            "git_commit_note": "simreal is installed from a package not built from a git checkout",
        }
    changes = "with uncommitted changes" if info.get("dirty") else "clean"
    return {"git_commit": commit, "git_commit_note": f"recorded when the installed package was built ({changes})"}


def write_config(run_dir: Path, config: TrainConfig) -> None:
    """Write ``config.yaml``: the resolved config."""
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def record_start(run_dir: Path, command: list[str] | None, device: str, num_timesteps: int) -> None:
    """Add a start (or resume) to ``run.json``: command line, versions, git commit, device, the timesteps it
    starts from."""
    from simreal import __version__

    previous = read_json(run_dir / RUN, default={})
    entry = {
        "command": command if command is not None else sys.argv,
        "simreal_version": __version__,
        **git_commit(),
        "device": device,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "start_timesteps": num_timesteps,
    }
    starts = [*previous.get("starts", []), entry]
    atomic_write_json(run_dir / RUN, {**entry, "num_timesteps": num_timesteps, "starts": starts})


def record_end(run_dir: Path, num_timesteps: int) -> None:
    """Write the timesteps the run reached, and when, into ``run.json`` and its latest start."""
    data = read_json(run_dir / RUN, default={})
    finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if data.get("starts"):
        data["starts"][-1].update(finished=finished, end_timesteps=num_timesteps)
    atomic_write_json(run_dir / RUN, {**data, "num_timesteps": num_timesteps, "finished": finished})


def saved_config(run_dir: Path) -> TrainConfig:
    """The resolved config a run was started with.

    Raises:
        DataError: no ``config.yaml``, or one that is not a valid config.
    """
    path = run_dir / CONFIG
    if not path.is_file() and run_dir.is_dir() and (not any(run_dir.iterdir()) or (run_dir / LOCK).exists()):
        raise DataError(
            f"{run_dir}: no {CONFIG}: a training stopped before it began left this folder, with nothing to resume; "
            "start that training again into this folder: a new run takes it over"
        )
    if not path.is_file():
        raise DataError(f"{run_dir}: not a simreal run directory (no {CONFIG})")
    try:
        return load_config(contained_file(run_dir, CONFIG))
    except ConfigError as exc:
        raise DataError(str(exc)) from None


def save_model(model: BaseAlgorithm, venv: VecEnv, folder: Path) -> None:
    """Save the model into ``folder``, each file atomically: simreal's own files (``weights.pt``, ``model.json``,
    ``vecnormalize.npz`` when the env is normalized) and stable-baselines3's (``model.zip``, ``vecnormalize.pkl``)."""
    folder.mkdir(parents=True, exist_ok=True)
    model_files.write_model_files(model, venv, folder)
    atomic_write(folder / MODEL, lambda tmp: model.save(tmp))
    if isinstance(venv, VecNormalize):
        atomic_write(folder / VECNORMALIZE, lambda tmp: venv.save(str(tmp)))


def save_best(model: BaseAlgorithm, venv: VecEnv, run_dir: Path, report: dict[str, Any]) -> Path:
    """Write ``best/`` as one folder renamed into place: the model, its statistics and its evaluation always
    belong together."""
    staged = staging_dir(run_dir / BEST)
    save_model(model, venv, staged)
    atomic_write_json(staged / EVAL, report)
    return replace_dir(staged, run_dir / BEST)


def save_checkpoint(model: BaseAlgorithm, venv: VecEnv, run_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """Write a complete checkpoint, then point ``latest.json`` at it; keep the newest ``keep``.

    The checkpoint is written into a temporary folder that is renamed once complete, and ``latest.json`` is replaced
    atomically afterwards, so a kill at any moment leaves the previous latest checkpoint intact. Pruning never
    removes the folder ``latest.json`` names.
    """
    folder = run_dir / CHECKPOINTS
    name = f"{model.num_timesteps:012d}"
    staged = staging_dir(folder / name)
    save_model(model, venv, staged)
    if isinstance(model, SAC):
        model_files.write_replay_buffer(model, staged / model_files.REPLAY)
    atomic_write_json(staged / "state.json", {**state, "num_timesteps": model.num_timesteps})
    final = replace_dir(staged, folder / name)
    atomic_write_json(folder / LATEST, {"checkpoint": name, "num_timesteps": model.num_timesteps})
    complete = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    # newer names than the latest are checkpoints a killed run wrote but never pointed latest.json at
    kept = [p for p in complete if p.name <= name][-keep:]
    for old in complete:
        if old not in kept:
            shutil.rmtree(old, ignore_errors=True)
    return final


@dataclass
class ResumePoint:
    """The checkpoint a resume starts from, and the newer ones it passed over.

    Attributes:
        folder: the newest intact checkpoint (``None``: there is none).
        passed_over: one line per checkpoint (or ``latest.json``) found damaged, newest first: what is wrong.
    """

    folder: Path | None
    passed_over: list[str] = field(default_factory=list)


def resume_point(run_dir: Path, trust_pickles: bool = False) -> ResumePoint:
    """The newest intact checkpoint of a run: the one ``latest.json`` names when it is intact, else the newest
    older one that is (see :func:`checkpoint_problem`), saying what was passed over and why.

    A ``latest.json`` that is damaged, or that names anything but a checkpoint folder of this run, is passed over
    too: then every complete checkpoint folder is a candidate. ``trust_pickles``: a checkpoint holding
    stable-baselines3's pickles only is a candidate too.
    """
    folder = run_dir / CHECKPOINTS
    passed: list[str] = []
    newest: str | None = None
    try:
        pointer = read_json(contained_file(folder, LATEST)) if (folder / LATEST).exists() else None
    except DataError as exc:
        pointer, passed = None, [str(exc)]
    if pointer is not None:
        name = pointer.get("checkpoint")
        if _is_checkpoint_name(name):
            newest = name
        else:
            passed.append(f"{folder / LATEST}: checkpoint: {shown(name)} is not a checkpoint of this run")
    elif not passed and not folder.is_dir():
        return ResumePoint(None)
    if newest is not None:
        recover_dir(folder / newest)
    names = sorted((p.name for p in folder.iterdir() if p.is_dir() and _is_checkpoint_name(p.name)), reverse=True)
    for name in names:
        if newest is not None and name > newest:
            continue  # written by a killed run that never pointed latest.json at it
        problem = checkpoint_problem(folder / name, trust_pickles)
        if problem is None:
            return ResumePoint(folder / name, passed)
        passed.append(f"{folder / name}: {problem}")
    if newest is not None and newest not in names:
        passed.insert(0, f"{folder / LATEST}: checkpoint: {newest} is missing")
    return ResumePoint(None, passed)


def _is_checkpoint_name(name: object) -> bool:
    """A checkpoint folder's name: its timesteps, 12 digits (never a path that could leave the run)."""
    return isinstance(name, str) and re.fullmatch(r"\d{12}", name) is not None


def checkpoint_problem(checkpoint: Path, trust_pickles: bool = False) -> str | None:
    """What is wrong with a checkpoint folder, or ``None`` when it is intact: a folder inside its run (not a link
    out of it) holding every file it needs, each whole and read without unpickling (the weights as plain tensors,
    ``model.json`` valid, the arrays readable, ``state.json`` an object with the env streams). With
    ``trust_pickles``, a checkpoint of stable-baselines3's pickles only is checked as those files (the zip's
    checksums and members, the pickles' end).
    """
    run = checkpoint.parent.parent
    if checkpoint.is_symlink() or not checkpoint.resolve().is_relative_to(run.resolve()):
        return f"leads out of the run (to {checkpoint.resolve()})"
    if model_files.has_model_files(checkpoint):
        problem = _model_files_problem(checkpoint)
    elif trust_pickles:
        problem = _pickles_problem(checkpoint)
    else:
        problem = "holds pickles only: trust_pickles lets a resume read it"
    if problem is not None:
        return problem
    try:
        state = read_json(contained_file(checkpoint, "state.json"))
    except DataError as exc:
        return f"state.json is damaged ({str(exc).split(': ', 1)[-1]})"
    if state is None or not isinstance(state.get("streams"), list) or not isinstance(state.get("num_timesteps"), int):
        return "state.json: no env streams or timesteps"
    return None


def _model_files_problem(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint's own files, checked without unpickling or loading them whole: ``model.json``
    validated, and ``weights.pt`` and the npz files (zip archives, as torch and numpy write them) whole by every
    member's checksum."""
    try:
        model_files.read_model_info(checkpoint)
    except DataError as exc:
        return str(exc).removeprefix(f"{checkpoint}/")
    for name in (model_files.WEIGHTS, model_files.STATISTICS, model_files.REPLAY):
        if name == model_files.WEIGHTS or os.path.lexists(checkpoint / name):
            problem = _archive_problem(checkpoint, name)
            if problem is not None:
                return problem
    return None


def _archive_problem(checkpoint: Path, name: str) -> str | None:
    """What is wrong with a zip archive of a checkpoint (a torch or npz file), by every member's checksum."""
    try:
        path = contained_file(checkpoint, name)
        with open_regular(path, DataError, limit=2**40) as handle, zipfile.ZipFile(handle) as archive:
            damaged = archive.testzip()
    except DataError as exc:
        return str(exc).removeprefix(f"{checkpoint}/")
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        return f"{name} is damaged ({type(exc).__name__})"
    return f"{name} is damaged (member {damaged})" if damaged is not None else None


def _pickles_problem(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint of stable-baselines3's pickles, checked without unpickling them."""
    model = checkpoint / MODEL
    if not model.is_file():
        return f"{MODEL} is missing"
    problem = model_file_problem(model)
    if problem is not None:
        return f"{MODEL}: {problem}"
    for name in (VECNORMALIZE, PICKLED_REPLAY_BUFFER):
        if (checkpoint / name).exists() and not _pickle_is_whole(checkpoint / name):
            return f"{name} is truncated"
    return None


def _pickle_is_whole(path: Path) -> bool:
    """A pickle ends with the STOP opcode; a truncated file almost never does (and a load would fail on it)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == pickle.STOP


def clean_leftovers(run_dir: Path) -> None:
    """Remove or put back what a killed write left in a run directory (temporary and set-aside folders)."""
    recover_dir(run_dir / BEST)
    folder = run_dir / CHECKPOINTS
    if folder.is_dir():
        for stale in folder.glob(".*.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)


def find_run_dir(model_path: Path) -> Path | None:
    """The run directory a model file belongs to: the nearest folder at or above it with a ``config.yaml``."""
    for folder in [model_path.parent, *model_path.parent.parents][:4]:
        if (folder / CONFIG).exists():
            return folder
    return None


def run_dir_of(source: Path) -> Path:
    """The run directory of a run directory or of a model file inside one (a loose model file: its folder)."""
    source = Path(source)
    return source if source.is_dir() else find_run_dir(source) or source.parent
