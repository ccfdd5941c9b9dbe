"""The run directory: what a training run leaves behind, written atomically, and how to load it back.

Layout::

    <run_dir>/
      config.yaml            the resolved config (after --set)
      run.json               command line, simreal version, git commit, device, start time
      model.zip              final model            + vecnormalize.pkl beside it
      best/model.zip         best on nominal source + vecnormalize.pkl beside it
      checkpoints/<steps>/   model.zip, vecnormalize.pkl, replay_buffer.pkl (SAC), state.json
      checkpoints/latest.json  which checkpoint is the latest complete one
      tb/                    TensorBoard event files
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal.config import TrainConfig
from simreal.errors import ConfigError, DataError
from simreal.fileio import atomic_write, atomic_write_json, atomic_write_text

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
MODEL = "model.zip"
VECNORMALIZE = "vecnormalize.pkl"
REPLAY_BUFFER = "replay_buffer.pkl"


def default_run_name(config: TrainConfig, now: float | None = None) -> str:
    """``<robot>_<algo>_<seed>_<timestamp>``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{config.robot}_{config.algorithm.name}_{config.seed}_{stamp}"


def git_commit() -> str | None:
    """The commit of the simreal checkout this code runs from, when it is one."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def write_run_metadata(run_dir: Path, config: TrainConfig, command: list[str] | None, device: str) -> None:
    """Write ``config.yaml`` and ``run.json`` (``run.json`` keeps a history of every start and resume)."""
    from simreal import __version__

    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    previous = read_json(run_dir / "run.json", default={})
    entry = {
        "command": command if command is not None else sys.argv,
        "simreal_version": __version__,
        "git_commit": git_commit(),
        "device": device,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    starts = [*previous.get("starts", []), entry]
    atomic_write_json(run_dir / "run.json", {**entry, "starts": starts})


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it does not exist."""
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None


def saved_config(run_dir: Path) -> TrainConfig:
    """The resolved config a run was started with."""
    from simreal.config import load_config

    path = run_dir / "config.yaml"
    if not path.exists():
        raise DataError(f"{run_dir}: not a simreal run directory (no config.yaml)")
    try:
        return load_config(path)
    except ConfigError as exc:
        raise DataError(str(exc)) from None


def save_model(model: BaseAlgorithm, venv: VecEnv, folder: Path) -> None:
    """Save ``model.zip`` and, when the env is normalized, ``vecnormalize.pkl`` into ``folder``, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / MODEL, lambda tmp: model.save(tmp))
    if isinstance(venv, VecNormalize):
        atomic_write(folder / VECNORMALIZE, lambda tmp: venv.save(tmp))


def save_checkpoint(model: BaseAlgorithm, venv: VecEnv, run_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """Write a complete checkpoint, then point ``latest.json`` at it; keep the newest ``keep``.

    The checkpoint is written into a temporary folder that is renamed once complete, and ``latest.json`` is replaced
    atomically afterwards, so a kill at any moment leaves the previous latest checkpoint intact.
    """
    folder = run_dir / "checkpoints"
    name = f"{model.num_timesteps:012d}"
    tmp = folder / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, venv, tmp)
    if isinstance(model, SAC):
        model.save_replay_buffer(tmp / REPLAY_BUFFER)
    atomic_write_json(tmp / "state.json", {**state, "num_timesteps": model.num_timesteps})
    for path in tmp.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    final = folder / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_json(folder / "latest.json", {"checkpoint": name, "num_timesteps": model.num_timesteps})
    for old in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The latest complete checkpoint folder, or ``None``."""
    pointer = read_json(run_dir / "checkpoints" / "latest.json")
    if pointer is None:
        return None
    folder = run_dir / "checkpoints" / str(pointer.get("checkpoint", ""))
    if not (folder / MODEL).exists():
        raise DataError(f"{run_dir / 'checkpoints' / 'latest.json'}: checkpoint: {folder.name} is missing")
    return folder


def load_model(path: Path, algorithm: str, env: VecEnv | None = None, device: str = "auto") -> BaseAlgorithm:
    """Load a stable-baselines3 model file.

    Raises:
        DataError: the file is missing or is not a model of this algorithm.
    """
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    try:
        return ALGORITHMS[algorithm].load(path, env=env, device=device)
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, pickle.UnpicklingError, RuntimeError) as exc:
        raise DataError(f"{path}: not a readable {algorithm.upper()} model ({type(exc).__name__}: {exc})") from None


def load_vecnormalize(path: Path, venv: VecEnv) -> VecNormalize:
    """Load VecNormalize statistics around ``venv``.

    Raises:
        DataError: the file is corrupt or does not fit the env.
    """
    try:
        return VecNormalize.load(str(path), venv)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, AssertionError, AttributeError) as exc:
        raise DataError(f"{path}: not readable VecNormalize statistics for this env ({exc})") from None


def find_run_dir(model_path: Path) -> Path | None:
    """The run directory a model file belongs to: the nearest folder at or above it with a ``config.yaml``."""
    for folder in [model_path.parent, *model_path.parent.parents][:4]:
        if (folder / "config.yaml").exists():
            return folder
    return None
