"""Recorded trajectories: the data system identification learns from, in ``.npz`` or ``.csv``.

One row per control step ``t`` of an episode:

* ``episode`` (int): the episode the step belongs to; ``step`` (int): its index inside the episode;
* ``observations`` (obs_dim): what the robot observed before acting; ``actions`` (act_dim): the command sent;
* ``rewards``; ``terminated``, ``truncated``: what the step returned;
* optional ``qpos`` (nq), ``qvel`` (nv): the full MuJoCo state before acting, when the source is a simulator.

``.npz`` holds those arrays by name plus ``meta``, a JSON string (robot, source, target and its true parameters
when known). ``.csv`` has a header ``episode,step,obs_0,...,act_0,...,reward,terminated,truncated[,qpos_0,...,
qvel_0,...]`` and the same JSON on a first line starting ``# simreal:``.

Rows may come in any order and episode ids may be any integers: a recording's rows are put in order when it is
built, each episode's rows together (episodes in the order they first appear) and by ``step``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simreal.envs.robots import load_robot
from simreal.envs.spec import RobotSpec
from simreal.errors import DataError, shown
from simreal.fileio import atomic_write, parse_json, read_npz, read_text

REQUIRED = ("episode", "observations", "actions")
#: With no ``holdout`` given, this fraction of the episodes is held out, once there are at least
#: ``HOLDOUT_MIN_EPISODES``.
HOLDOUT_FRACTION = 5
HOLDOUT_MIN_EPISODES = 5
#: The largest recording file read (``.npz`` or ``.csv``), and the most bytes an ``.npz``'s arrays may hold once
#: uncompressed: an hour of a robot at 100 Hz is tens of megabytes; far more is a file that would exhaust memory.
MAX_RECORDING_BYTES = 2**30


def episode_rows(episode: np.ndarray) -> list[np.ndarray]:
    """The row indices of each episode, episodes in order of first appearance (the one way rows are grouped), each
    episode's rows in the order they come."""
    _, first, inverse, counts = np.unique(episode, return_index=True, return_inverse=True, return_counts=True)
    by_id = np.split(np.argsort(inverse.ravel(), kind="stable"), np.cumsum(counts)[:-1])
    return [by_id[i] for i in np.argsort(first, kind="stable")]


def row_order(episode: np.ndarray, step: np.ndarray) -> np.ndarray | None:
    """The order that puts each episode's rows together (episodes in order of first appearance) and by ``step``;
    ``None`` when the rows are in that order already."""
    if len(episode) == 0:
        return None
    _, first, inverse = np.unique(episode, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    order = np.lexsort((step, rank[inverse.ravel()]))
    return None if np.array_equal(order, np.arange(len(order))) else order


@dataclass
class Trajectories:
    """Recorded steps (see the module docstring for the fields)."""

    episode: np.ndarray
    step: np.ndarray
    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    qpos: np.ndarray | None = None
    qvel: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: the file it was read from (``None``: recorded in this process), to name in errors
    path: str | None = None

    def __post_init__(self) -> None:
        if (self.qpos is None) != (self.qvel is None):
            raise ValueError("Trajectories: qpos and qvel come together or not at all")
        order = row_order(self.episode, self.step)
        if order is not None:  # episode ids in any order, rows in any order: put in order once, here
            for name in ("episode", "step", "observations", "actions", "rewards", "terminated", "truncated"):
                setattr(self, name, getattr(self, name)[order])
            if self.qpos is not None and self.qvel is not None:
                self.qpos, self.qvel = self.qpos[order], self.qvel[order]

    def __len__(self) -> int:
        return len(self.episode)

    @property
    def states(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The recorded MuJoCo states, ``(qpos, qvel)`` (``None``: not recorded)."""
        return None if self.qpos is None or self.qvel is None else (self.qpos, self.qvel)

    @property
    def episodes(self) -> list[int]:
        """Episode ids in order of first appearance."""
        return [int(self.episode[rows[0]]) for rows in episode_rows(self.episode)]

    def episode_rows(self) -> list[np.ndarray]:
        """The row indices of each episode (see :func:`episode_rows`)."""
        return episode_rows(self.episode)

    def select(self, episodes: list[int]) -> Trajectories:
        """The steps of some episodes only."""
        keep = np.isin(self.episode, episodes)
        pick = lambda a: None if a is None else a[keep]  # noqa: E731
        return Trajectories(
            self.episode[keep],
            step=self.step[keep],
            observations=self.observations[keep],
            actions=self.actions[keep],
            rewards=self.rewards[keep],
            terminated=self.terminated[keep],
            truncated=self.truncated[keep],
            qpos=pick(self.qpos),
            qvel=pick(self.qvel),
            meta=dict(self.meta),
            path=self.path,
        )


def split_holdout(data: Trajectories, holdout: int | None = None) -> tuple[Trajectories, Trajectories | None]:
    """Split a recording into the episodes to fit and the last ``holdout`` episodes, held out to score the fit.

    Args:
        data: the recording.
        holdout: episodes to hold out; default: a fifth of them (rounded down) when there are at least 5, else none.

    Raises:
        DataError: ``holdout`` leaves no episode to fit.
    """
    episodes = data.episodes
    if holdout is None:
        holdout = len(episodes) // HOLDOUT_FRACTION if len(episodes) >= HOLDOUT_MIN_EPISODES else 0
    if holdout >= len(episodes):
        raise DataError(f"holdout: {holdout} leaves no episode to fit ({len(episodes)} recorded)")
    if holdout == 0:
        return data, None
    cut = len(episodes) - holdout
    return data.select(episodes[:cut]), data.select(episodes[cut:])


def refuse_existing(path: str | os.PathLike[str]) -> None:
    """Raise :class:`DataError` when ``path`` exists (a file, a folder or a link): a recording is never replaced
    unless asked."""
    if os.path.lexists(path):
        raise DataError(f"{path}: already exists: a recording is replaced only with overwrite=True")


def save_trajectories(data: Trajectories, path: str | os.PathLike[str]) -> Path:
    """Write ``.npz`` or ``.csv`` (by suffix), atomically, replacing what is there (see :func:`refuse_existing`
    to check first)."""
    path = Path(path)
    if path.suffix == ".npz":
        arrays: dict[str, Any] = {"meta": json.dumps(data.meta), **as_arrays(data)}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
    elif path.suffix == ".csv":

        def write(tmp: Path) -> None:
            tmp.write_text(_to_csv(data), encoding="utf-8")
    else:
        raise DataError(f"{path}: unknown data format (use .npz or .csv)")
    return atomic_write(path, write)


def as_arrays(data: Trajectories) -> dict[str, np.ndarray]:
    """The recording's arrays by their file names (``qpos``/``qvel`` only when recorded)."""
    arrays = {
        "episode": data.episode,
        "step": data.step,
        "observations": data.observations,
        "actions": data.actions,
        "rewards": data.rewards,
        "terminated": data.terminated,
        "truncated": data.truncated,
    }
    if data.states is not None:
        arrays.update(qpos=data.states[0], qvel=data.states[1])
    return arrays


def _to_csv(data: Trajectories) -> str:
    buffer = io.StringIO()
    buffer.write("# simreal: " + json.dumps(data.meta) + "\n")
    columns = ["episode", "step"]
    columns += [f"obs_{i}" for i in range(data.observations.shape[1])]
    columns += [f"act_{i}" for i in range(data.actions.shape[1])]
    columns += ["reward", "terminated", "truncated"]
    states = data.states
    if states is not None:
        columns += [f"qpos_{i}" for i in range(states[0].shape[1])] + [f"qvel_{i}" for i in range(states[1].shape[1])]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    parts = [
        data.episode[:, None],
        data.step[:, None],
        data.observations,
        data.actions,
        data.rewards[:, None],
        data.terminated[:, None].astype(int),
        data.truncated[:, None].astype(int),
    ]
    if states is not None:
        parts += list(states)
    for row in np.hstack([np.asarray(p, dtype=np.float64) for p in parts]):
        writer.writerow([repr(float(v)) for v in row])
    return buffer.getvalue()


def load_trajectories(path: str | os.PathLike[str], robot: str | RobotSpec | None = None) -> Trajectories:
    """Read and check a ``.npz`` or ``.csv`` recording.

    Args:
        path: the file.
        robot: when given, observation and action sizes are checked against it.

    Raises:
        DataError: missing file or arrays, not a regular file or over :data:`MAX_RECORDING_BYTES`, mismatched
            lengths, NaN or inf, a step twice in one episode, sizes that do not fit the robot; the message names the
            file and the field.
    """
    path = Path(path)
    if path.suffix == ".npz":
        arrays, meta = _read_npz(path)
    elif path.suffix == ".csv":
        arrays, meta = _read_csv(path)
    else:
        raise DataError(f"{path}: unknown data format (use .npz or .csv)")
    data = _checked(path, arrays, meta)
    if robot is not None:
        _check_robot(path, data, robot if isinstance(robot, RobotSpec) else load_robot(robot))
    return data


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = read_npz(path, DataError, MAX_RECORDING_BYTES)
    meta_text = arrays.pop("meta", None)
    meta = parse_json(str(meta_text), f"{path}: meta") if meta_text is not None else {}
    return arrays, meta


def _read_csv(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    meta: dict[str, Any] = {}
    lines = read_text(path, DataError, MAX_RECORDING_BYTES).splitlines()
    if lines and lines[0].startswith("# simreal:"):
        meta = parse_json(lines[0].removeprefix("# simreal:"), f"{path}: line 1: the '# simreal:' metadata")
        lines = lines[1:]
    rows = list(csv.reader(lines))
    if not rows:
        raise DataError(f"{path}: no header row")
    header, body = rows[0], rows[1:]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: header: column {repeated[0]!r} appears more than once")
    try:
        table = np.array([[float(v) for v in row] for row in body], dtype=np.float64).reshape(len(body), -1)
    except ValueError as exc:
        raise DataError(f"{path}: a value is not a number ({exc})") from None
    if table.shape[1] != len(header) and len(body):
        raise DataError(f"{path}: rows have {table.shape[1]} values for {len(header)} columns")

    def columns(prefix: str) -> np.ndarray | None:
        index = [i for i, name in enumerate(header) if name.startswith(prefix) and name[len(prefix) :].isdigit()]
        index.sort(key=lambda i: int(header[i][len(prefix) :]))
        numbers = [int(header[i][len(prefix) :]) for i in index]
        if numbers != list(range(len(numbers))):
            gap = next(n for n in range(len(numbers) + 1) if n not in numbers)
            raise DataError(f"{path}: header: column {prefix}{gap} is missing ({prefix}0 to {prefix}N, each once)")
        return table[:, index] if index else None

    arrays: dict[str, np.ndarray] = {}
    for name, column in (
        ("episode", "episode"),
        ("step", "step"),
        ("rewards", "reward"),
        ("terminated", "terminated"),
        ("truncated", "truncated"),
    ):
        if column in header:
            arrays[name] = table[:, header.index(column)]
    for name, prefix in (("observations", "obs_"), ("actions", "act_"), ("qpos", "qpos_"), ("qvel", "qvel_")):
        values = columns(prefix)
        if values is not None:
            arrays[name] = values
    return arrays, meta


#: Arrays with one value per step, and arrays with a row of values per step.
PER_STEP = ("episode", "step", "rewards", "terminated", "truncated")
PER_STEP_ROWS = ("observations", "actions", "qpos", "qvel")


def _checked(path: Path, arrays: dict[str, np.ndarray], meta: Any) -> Trajectories:
    for name in REQUIRED:
        if name not in arrays:
            raise DataError(f"{path}: {name}: missing")
    for name, values in arrays.items():
        if values.dtype.kind not in "biuf":
            raise DataError(f"{path}: {name}: expected numbers, got {values.dtype} values")
        wanted = 1 if name in PER_STEP else 2 if name in PER_STEP_ROWS else values.ndim
        if values.ndim != wanted:
            shape = "one value per step" if wanted == 1 else "a 2-D array (rows x values)"
            raise DataError(f"{path}: {name}: expected {shape}, got shape {values.shape}")
    _check_meta(path, meta)
    n = len(arrays["episode"])
    if n == 0:
        raise DataError(f"{path}: episode: no steps recorded")
    if not np.array_equal(arrays["episode"], np.round(arrays["episode"])):
        raise DataError(f"{path}: episode: expected whole numbers")
    for name, values in arrays.items():
        if len(values) != n:
            raise DataError(f"{path}: {name}: {len(values)} rows, but episode has {n}")
        if values.dtype.kind in "fc" and not np.isfinite(values).all():
            row = int(np.argwhere(~np.isfinite(values.reshape(n, -1)))[0][0])
            raise DataError(f"{path}: {name}: NaN or inf at row {row}")
    if ("qpos" in arrays) != ("qvel" in arrays):
        raise DataError(f"{path}: {'qvel' if 'qpos' in arrays else 'qpos'}: missing (qpos and qvel come together)")
    episode = arrays["episode"].astype(np.int64)
    step = arrays["step"].astype(np.int64) if "step" in arrays else _steps_within(episode)
    _check_steps(path, episode, step)
    flags = {name: arrays.get(name, np.zeros(n)).astype(bool) for name in ("terminated", "truncated")}
    return Trajectories(
        episode=episode,
        step=step,
        observations=arrays["observations"].astype(np.float64),
        actions=arrays["actions"].astype(np.float64),
        rewards=arrays.get("rewards", np.zeros(n)).astype(np.float64),
        terminated=flags["terminated"],
        truncated=flags["truncated"],
        qpos=arrays["qpos"].astype(np.float64) if "qpos" in arrays else None,
        qvel=arrays["qvel"].astype(np.float64) if "qvel" in arrays else None,
        meta=meta,
        path=str(path),
    )


def _check_meta(path: Path, meta: Any) -> None:
    """``meta`` is a JSON object; its ``dynamics``, when there, maps parameter names to numbers."""
    if not isinstance(meta, dict):
        raise DataError(f"{path}: meta: expected a JSON object, got {type(meta).__name__}")
    dynamics = meta.get("dynamics")
    if dynamics is None:
        return
    if not isinstance(dynamics, dict):
        raise DataError(f"{path}: meta.dynamics: expected an object of parameter -> number")
    for name, value in dynamics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise DataError(f"{path}: meta.dynamics.{name}: expected a finite number, got {shown(value)}")


def _check_steps(path: Path, episode: np.ndarray, step: np.ndarray) -> None:
    """No step appears twice in one episode (rows are put in order by step)."""
    order = np.lexsort((step, episode))
    same = (np.diff(episode[order]) == 0) & (np.diff(step[order]) == 0)
    if same.any():
        row = order[int(np.argmax(same)) + 1]
        raise DataError(f"{path}: step: episode {episode[row]} has step {step[row]} twice (row {row})")


def _steps_within(episode: np.ndarray) -> np.ndarray:
    steps = np.zeros(len(episode), dtype=np.int64)
    for rows in episode_rows(episode):
        steps[rows] = np.arange(len(rows))
    return steps


def _check_robot(path: Path, data: Trajectories, spec: RobotSpec) -> None:
    from simreal.envs.mujoco_base import box_space, make_base_env, mujoco_env

    env = make_base_env(spec)
    try:
        obs_dim = box_space(env.observation_space).shape[0]
        act_dim = box_space(env.action_space).shape[0]
        nq, nv = mujoco_env(env).model.nq, mujoco_env(env).model.nv
    finally:
        env.close()
    if data.observations.shape[1] != obs_dim:
        raise DataError(
            f"{path}: observations: {data.observations.shape[1]} values per row, {spec.robot} observes {obs_dim}"
        )
    if data.actions.shape[1] != act_dim:
        raise DataError(f"{path}: actions: {data.actions.shape[1]} values per row, {spec.robot} has {act_dim}")
    if data.states is not None and (data.states[0].shape[1], data.states[1].shape[1]) != (nq, nv):
        qpos, qvel = data.states
        raise DataError(f"{path}: qpos: {qpos.shape[1]} + qvel {qvel.shape[1]} values, {spec.robot} has {nq} + {nv}")
