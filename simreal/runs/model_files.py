"""A trained model's files that simreal reads back, none of them a pickle: the weights as torch state dicts
(``weights.pt``, read with ``weights_only=True``), the counters a model carries between trainings as validated JSON
(``model.json``), the normalization statistics as arrays (``vecnormalize.npz``) and, in an off-policy checkpoint, the
replay buffer as arrays (``replay_buffer.npz``).

The model itself is rebuilt from the run's config (:func:`simreal.runs.algorithms.new_model`) and these files are
loaded into it. stable-baselines3's own files (``model.zip``, ``vecnormalize.pkl``) are still written beside them,
for stable-baselines3 users, but simreal never unpickles them unless told to trust them (``trust_pickles``).

Every file read here must be a regular file inside its folder once symlinks are resolved: a run or a policy folder
that was downloaded cannot make simreal read a file elsewhere on the machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, ValidationError
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal import compat
from simreal.envs.spec import format_validation_error
from simreal.envs.vector import PinnedVecNormalize
from simreal.errors import DataError, shown
from simreal.fileio import (
    MAX_TEXT_BYTES,
    atomic_write,
    atomic_write_json,
    contained_file,
    open_regular,
    read_json,
    read_npz,
)
from simreal.runs.config import StrictModel

WEIGHTS = "weights.pt"
MODEL_INFO = "model.json"
STATISTICS = "vecnormalize.npz"
REPLAY = "replay_buffer.npz"
SCHEMA = "simreal.model/1"

#: The most episodes of returns ``model.json`` keeps (stable-baselines3's logging window is 100).
MAX_EPISODE_INFOS = 10_000


class EpisodeInfo(StrictModel):
    """One finished episode as stable-baselines3's logging window keeps it: return, length, wall time."""

    r: float
    l: int  # noqa: E741 - stable-baselines3's Monitor names it so
    t: float


class ModelInfo(StrictModel):
    """``model.json``: what a model carries between trainings beside its weights, and the spaces it was built for.

    Attributes:
        schema_: the format's version (``simreal.model/1``).
        algorithm: ``ppo`` or ``sac``.
        num_timesteps: environment steps trained.
        n_updates: gradient updates made (stable-baselines3's ``_n_updates``).
        episode_num: episodes finished (off-policy algorithms count them).
        observation_shape, action_shape: the spaces' shapes.
        episodes: the latest finished episodes (the logging window), oldest first.
    """

    schema_: Literal["simreal.model/1"] = Field(alias="schema")
    algorithm: Literal["ppo", "sac"]
    num_timesteps: int = Field(ge=0, le=2**62)
    n_updates: int = Field(ge=0, le=2**62)
    episode_num: int = Field(ge=0, le=2**62)
    observation_shape: tuple[int, ...] = Field(max_length=8)
    action_shape: tuple[int, ...] = Field(max_length=8)
    episodes: list[EpisodeInfo] = Field(default_factory=list, max_length=MAX_EPISODE_INFOS)


def has_model_files(folder: Path) -> bool:
    """Whether ``folder`` holds a model in simreal's own files (else, at most stable-baselines3's pickles)."""
    return os.path.lexists(folder / WEIGHTS) or os.path.lexists(folder / MODEL_INFO)


def write_model_files(model: BaseAlgorithm, venv: VecEnv, folder: Path) -> None:
    """Write ``weights.pt``, ``model.json`` and, when ``venv`` is normalized, ``vecnormalize.npz`` into ``folder``,
    each atomically."""
    weights = {**model.get_parameters(), **{name: tensor.detach().cpu() for name, tensor in _variables(model)}}
    atomic_write(folder / WEIGHTS, lambda tmp: torch.save(weights, tmp))
    atomic_write_json(folder / MODEL_INFO, model_info(model).model_dump(mode="json", by_alias=True))
    if isinstance(venv, VecNormalize):
        write_statistics(venv, folder / STATISTICS)


def model_info(model: BaseAlgorithm) -> ModelInfo:
    """The ``model.json`` of ``model``."""
    name = type(model).__name__.lower()
    episodes = [{key: info[key] for key in ("r", "l", "t")} for info in (model.ep_info_buffer or [])]
    return ModelInfo.model_validate(
        {
            "schema": SCHEMA,
            "algorithm": name,
            "num_timesteps": model.num_timesteps,
            "n_updates": compat.update_count(model),
            "episode_num": compat.episode_count(model),
            "observation_shape": tuple(model.observation_space.shape or ()),
            "action_shape": tuple(model.action_space.shape or ()),
            "episodes": episodes[-MAX_EPISODE_INFOS:],
        }
    )


def read_model_info(folder: Path) -> ModelInfo:
    """Read and validate ``model.json``.

    Raises:
        DataError: missing, outside the folder, not JSON, or a field missing or wrong (named).
    """
    path = contained_file(folder, MODEL_INFO)
    data = read_json(path)
    try:
        return ModelInfo.model_validate(data)
    except ValidationError as exc:
        raise DataError(format_validation_error(folder / MODEL_INFO, exc)) from None


def load_weights(model: BaseAlgorithm, folder: Path, info: ModelInfo) -> None:
    """Load ``weights.pt`` into ``model`` (built from the run's config) and give it ``model.json``'s counters.

    Raises:
        DataError: the file is not a torch file of plain tensors, or its weights do not fit the model (what is
            missing, extra or of another shape is named).
    """
    path = contained_file(folder, WEIGHTS)
    where = folder / WEIGHTS
    if info.algorithm != type(model).__name__.lower():
        trained = type(model).__name__.lower()
        raise DataError(f"{folder / MODEL_INFO}: algorithm: {info.algorithm}, the run's config trains {trained}")
    shapes = (tuple(model.observation_space.shape or ()), tuple(model.action_space.shape or ()))
    if shapes != (info.observation_shape, info.action_shape):
        saved = (info.observation_shape, info.action_shape)
        raise DataError(f"{folder / MODEL_INFO}: observation_shape/action_shape: {saved}, the config builds {shapes}")
    weights = _read_torch(path, where, _bound(model))
    expected_states = list(model.get_parameters())
    expected_variables = [name for name, _ in _variables(model)]
    expected = {*expected_states, *expected_variables}
    if not isinstance(weights, dict) or set(weights) != expected:
        found = sorted(map(str, weights)) if isinstance(weights, dict) else type(weights).__name__
        raise DataError(f"{where}: holds {shown(found)}, a {info.algorithm.upper()} model {sorted(expected)}")
    try:
        model.set_parameters({name: weights[name] for name in expected_states}, exact_match=True)
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # a module's state dict of another shape, an optimizer's state of another form
        raise DataError(f"{where}: weights that do not fit the model ({shown(str(exc), 300)})") from None
    for name, tensor in _variables(model):
        saved = weights[name]
        if not isinstance(saved, torch.Tensor) or saved.shape != tensor.shape:
            raise DataError(f"{where}: {name}: not a tensor of shape {tuple(tensor.shape)}")
        tensor.data.copy_(saved.to(tensor.device))
    model.num_timesteps = info.num_timesteps
    compat.set_counts(model, info.n_updates, info.episode_num)
    compat.set_episode_infos(model, [episode.model_dump() for episode in info.episodes])


def _read_torch(path: Path, where: Path, limit: int) -> Any:
    """A torch file of plain tensors (``weights_only``: a pickled object is an error here), at most ``limit`` bytes."""
    with open_regular(path, DataError, limit) as handle:
        try:
            return torch.load(handle, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch's restricted unpickler raises many types on a file it refuses
            raise DataError(f"{where}: not a torch file of plain tensors ({type(exc).__name__})") from None


def _bound(model: BaseAlgorithm) -> int:
    """The most bytes a model's weights file may hold: its parameters with an optimizer's two moments each, twice
    over, plus room for the containers (a file declaring more is not this model's)."""
    parameters = sum(p.numel() * p.element_size() for p in model.policy.parameters())
    return 8 * parameters + 16 * 2**20


def _variables(model: BaseAlgorithm) -> list[tuple[str, torch.Tensor]]:
    """The tensors a model keeps outside its modules' state dicts (SAC's entropy coefficient)."""
    return [(name, tensor) for name, tensor in compat.torch_variables(model).items() if tensor is not None]


# -- normalization statistics ---------------------------------------------------------------------------------------

_SETTINGS = ("clip_obs", "clip_reward", "gamma", "epsilon")
_SWITCHES = ("norm_obs", "norm_reward", "training")


def write_statistics(venv: VecNormalize, path: Path) -> None:
    """Write a VecNormalize's statistics and settings as plain arrays (``np.savez``, no object arrays)."""
    obs_rms = _observation_statistics(venv)
    arrays: dict[str, Any] = {
        "obs_mean": np.asarray(obs_rms.mean, dtype=np.float64),
        "obs_var": np.asarray(obs_rms.var, dtype=np.float64),
        "obs_count": np.asarray(obs_rms.count, dtype=np.float64),
        "ret_mean": np.asarray(venv.ret_rms.mean, dtype=np.float64),
        "ret_var": np.asarray(venv.ret_rms.var, dtype=np.float64),
        "ret_count": np.asarray(venv.ret_rms.count, dtype=np.float64),
    }
    arrays.update({name: np.asarray(float(getattr(venv, name))) for name in _SETTINGS})
    arrays.update({name: np.asarray(bool(getattr(venv, name))) for name in _SWITCHES})
    pinned = venv.pinned if isinstance(venv, PinnedVecNormalize) else {}
    arrays["pinned_index"] = np.asarray(sorted(pinned), dtype=np.int64)
    arrays["pinned_stats"] = np.asarray([pinned[i] for i in sorted(pinned)], dtype=np.float64).reshape(-1, 2)
    _write_arrays(path, arrays)


def _write_arrays(path: Path, arrays: dict[str, Any]) -> None:
    """An npz of plain arrays, written atomically (``allow_pickle`` off: an object array is an error here)."""

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)

    atomic_write(path, save)


def read_statistics(folder: Path, venv: VecEnv) -> VecNormalize:
    """``venv`` wrapped in the statistics of ``folder``'s ``vecnormalize.npz`` (a pinned one as it was saved).

    Raises:
        DataError: the file is missing, outside the folder, not an npz of plain arrays, or does not fit the env.
    """
    where = folder / STATISTICS
    arrays = read_npz(contained_file(folder, STATISTICS), DataError, MAX_TEXT_BYTES)
    size = int(np.prod(venv.observation_space.shape or ()))
    shapes = {"obs_mean": (size,), "obs_var": (size,), "obs_count": (), "ret_mean": (), "ret_var": (), "ret_count": ()}
    shapes.update({name: () for name in (*_SETTINGS, *_SWITCHES)})
    index = arrays.get("pinned_index")
    if index is None or index.ndim != 1 or index.dtype.kind not in "iu":
        raise DataError(f"{where}: pinned_index: missing, or not a list of observation indices")
    shapes["pinned_stats"] = (len(index), 2)
    for name, shape in shapes.items():
        if name not in arrays:
            raise DataError(f"{where}: {name}: missing")
        if arrays[name].shape != shape and not (shape == (size,) and arrays[name].size == size):
            raise DataError(f"{where}: {name}: shape {arrays[name].shape}, the env's observation needs {shape}")
        if not _finite(arrays[name]):
            raise DataError(f"{where}: {name}: not finite numbers")
    variances = (arrays["obs_var"], arrays["ret_var"], arrays["pinned_stats"][:, 1])
    if any(np.any(variance < 0) for variance in variances) or arrays["obs_count"] < 0 or arrays["ret_count"] < 0:
        raise DataError(f"{where}: obs_var/ret_var/pinned_stats/counts: a variance or a count below 0")
    if len(index) and (index.min() < 0 or index.max() >= size):
        raise DataError(f"{where}: pinned_index: not observation indices below {size}")
    stats = arrays["pinned_stats"]
    kwargs: dict[str, Any] = {name: float(arrays[name]) for name in _SETTINGS}
    kwargs.update({name: bool(arrays[name]) for name in _SWITCHES})
    pinned = {int(i): (float(mean), float(var)) for i, (mean, var) in zip(index, stats, strict=True)}
    wrapped = PinnedVecNormalize(venv, pinned, **kwargs) if pinned else VecNormalize(venv, **kwargs)
    obs_rms = _observation_statistics(wrapped)
    obs_rms.mean = arrays["obs_mean"].reshape(obs_rms.mean.shape).astype(np.float64)
    obs_rms.var = arrays["obs_var"].reshape(obs_rms.var.shape).astype(np.float64)
    obs_rms.count = float(arrays["obs_count"])
    wrapped.ret_rms.mean = np.asarray(arrays["ret_mean"], dtype=np.float64)
    wrapped.ret_rms.var = np.asarray(arrays["ret_var"], dtype=np.float64)
    wrapped.ret_rms.count = float(arrays["ret_count"])
    if isinstance(wrapped, PinnedVecNormalize):
        wrapped._pin(obs_rms)
    return wrapped


def _finite(array: np.ndarray) -> bool:
    """Numbers (booleans, integers, floats), every one finite."""
    return array.dtype.kind in "fbiu" and bool(np.all(np.isfinite(array)))


def _observation_statistics(venv: VecNormalize) -> RunningMeanStd:
    """The running statistics of a flat observation (simreal's envs have no dict observations)."""
    if not isinstance(venv.obs_rms, RunningMeanStd):
        raise TypeError("simreal normalizes flat observations only, not dict ones")
    return venv.obs_rms


# -- an off-policy checkpoint's replay buffer -------------------------------------------------------------------------

_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def write_replay_buffer(model: OffPolicyAlgorithm, path: Path) -> None:
    """Write the replay buffer's arrays and position (``np.save`` format: plain arrays, no pickles)."""
    buffer = model.replay_buffer
    if buffer is None:
        return
    arrays: dict[str, Any] = {
        name: getattr(buffer, name) for name in _BUFFER_ARRAYS if getattr(buffer, name, None) is not None
    }
    arrays["position"] = np.asarray([buffer.pos, int(buffer.full)], dtype=np.int64)
    _write_arrays(path, arrays)


def read_replay_buffer(model: OffPolicyAlgorithm, folder: Path) -> None:
    """Fill ``model``'s replay buffer from ``folder``'s ``replay_buffer.npz``.

    Raises:
        DataError: the file is not an npz of plain arrays, or its arrays do not fit the model's buffer.
    """
    where = folder / REPLAY
    buffer = model.replay_buffer
    if buffer is None:
        raise DataError(f"{where}: the model has no replay buffer to fill")
    expected = sum(getattr(buffer, name).nbytes for name in _BUFFER_ARRAYS if getattr(buffer, name, None) is not None)
    arrays = read_npz(contained_file(folder, REPLAY), DataError, expected + 2**20)
    for name in _BUFFER_ARRAYS:
        current = getattr(buffer, name, None)
        if current is None:
            continue
        if name not in arrays or arrays[name].shape != current.shape:
            found = arrays[name].shape if name in arrays else "missing"
            raise DataError(f"{where}: {name}: {found}, the config's buffer is {current.shape}")
        if not _finite(arrays[name]):
            raise DataError(f"{where}: {name}: not finite numbers")
        current[...] = arrays[name]
    position = arrays.get("position")
    if position is None or position.shape != (2,) or position.dtype.kind not in "iu":
        raise DataError(f"{where}: position: missing, or not the integers [pos, full]")
    if not 0 <= int(position[0]) < max(buffer.buffer_size, 1):
        raise DataError(f"{where}: position: {int(position[0])} is not inside the buffer of {buffer.buffer_size}")
    buffer.pos, buffer.full = int(position[0]), bool(position[1])
