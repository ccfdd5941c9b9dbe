"""The manifest an exported policy travels with (``manifest.json``): what the artifact reads and returns, and what
the robot driving it must match (observation and action layout and bounds, the control period), with where the
policy came from.

An env is checked against it before the first step (:func:`check_env`): a mismatch is one line naming the field.

An export is data that may come from anywhere: every file it uses (the manifest, the artifact, the robot's YAML)
must be a regular file inside its folder once symlinks are resolved (:func:`export_file`), and the manifest names
its robot by a shipped robot's name or by a robot file inside the folder, never by a path elsewhere
(:func:`robot_reference`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from pydantic import Field, ValidationError

from simreal.envs.inputs import InputLayout
from simreal.envs.mujoco_base import box_space
from simreal.envs.spec import format_validation_error
from simreal.errors import DataError
from simreal.fileio import contained_file, parse_json, read_text
from simreal.runs.config import StrictModel

SCHEMA = "simreal.export/1"
MANIFEST = "manifest.json"
#: The robot's YAML inside an export whose robot is not a shipped one (a robot file or an inline robot).
ROBOT_FILE = "robot.yaml"
#: The largest observation, action or state an export may declare: far above any robot's (a humanoid's observation
#: is 348), low enough that the zeros allocated for it stay small.
MAX_SIZE = 1_000_000
#: The largest manifest read (a humanoid's is a few kB).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: The artifact's file name, per format.
FILES = {"onnx": "policy.onnx", "torchscript": "policy.pt"}

Format = Literal["onnx", "torchscript"]


class Space(StrictModel):
    """A flat box: its size and bounds (``None`` where unbounded)."""

    size: int = Field(ge=1, le=MAX_SIZE)
    low: list[float | None]
    high: list[float | None]


class Manifest(StrictModel):
    """``manifest.json``.

    Attributes:
        schema_: the format's version (``simreal.export/1``).
        format: ``onnx`` or ``torchscript``; file: the artifact beside the manifest.
        robot: the robot the policy was trained on: a shipped robot's name, or the path of its YAML inside the
            export's folder (:data:`ROBOT_FILE`).
        env_id: the robot's gymnasium id (``None`` for a robot built from an entry point).
        algorithm: ``ppo`` or ``sac``.
        observation, action: what the artifact reads and returns, per step, with the bounds of the robot's spaces.
        control_period_s: seconds between actions on the robot the policy was trained for.
        input: the policy's input layout inside the artifact (:class:`~simreal.envs.inputs.InputLayout`).
        state_size: the state vector's size (zeros at every episode start).
        delay_steps: the action delay (in control periods) the policy was trained for, ``[low, high]``.
        simreal_version, source: what exported it, from which run.
    """

    schema_: Literal["simreal.export/1"] = Field(alias="schema")
    format: Format
    file: str
    robot: str
    env_id: str | None
    algorithm: str
    observation: Space
    action: Space
    control_period_s: float = Field(gt=0)
    input: dict[str, Any]
    state_size: int = Field(ge=1, le=MAX_SIZE)
    delay_steps: tuple[int, int]
    simreal_version: str
    source: str

    @property
    def layout(self) -> InputLayout:
        return InputLayout.from_dict(self.input)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def bounds(values: np.ndarray) -> list[float | None]:
    """A space's bounds in JSON: ``None`` for an infinite one."""
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def export_file(folder: Path, name: str, where: str | None = None) -> Path:
    """The file ``name`` of an export, checked to be a regular file inside ``folder`` after symlinks are resolved
    (a symlink to a file elsewhere, a device or a pipe is refused).

    Args:
        folder: the export's folder.
        name: the file's path relative to it.
        where: what errors name (the manifest and its field, for a file the manifest names); default: the file.

    Raises:
        DataError: the file is missing, not a regular file, or lies outside ``folder``.
    """
    return contained_file(folder, name, where)


def robot_reference(folder: Path, manifest: Manifest) -> str | Path:
    """What the manifest's robot loads from: a shipped robot's name, or the robot file inside ``folder``.

    Raises:
        DataError: naming the manifest and ``robot``: neither a shipped robot nor a file inside the folder.
    """
    from simreal.envs.robots import robot_names

    where = f"{folder / MANIFEST}: robot"
    robot = manifest.robot
    if Path(robot).suffix in (".yaml", ".yml"):
        return export_file(folder, robot, where)
    if robot not in robot_names():
        raise DataError(f"{where}: {robot!r} is neither a shipped robot nor a robot YAML file inside {folder}")
    return robot


def load_manifest(folder: Path) -> Manifest:
    """Read and validate an export's manifest.

    Raises:
        DataError: no manifest, not JSON, a field missing or wrong (named), an input layout that does not add up, a
            size above :data:`MAX_SIZE`, or a robot or file that is not inside the export (:func:`robot_reference`).
    """
    path = folder / MANIFEST
    if not path.exists() and not path.is_symlink():
        raise DataError(f"{path}: not found (is {folder} a folder simreal export wrote?)")
    export_file(folder, MANIFEST)
    data = parse_json(read_text(path, DataError, MAX_MANIFEST_BYTES), str(path))
    if not isinstance(data, dict):
        raise DataError(f"{path}: not a JSON object")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise DataError(format_validation_error(path, exc)) from None
    if Path(manifest.file).name != manifest.file or manifest.file.startswith("."):
        raise DataError(f"{path}: file: {manifest.file!r} is not a file name inside {folder}")
    robot_reference(folder, manifest)
    try:
        layout = manifest.layout
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: input: {exc}") from None
    for field, size in (("observation", layout.observation), ("action", layout.action)):
        space: Space = getattr(manifest, field)
        if space.size != size or len(space.low) != size or len(space.high) != size:
            raise DataError(f"{path}: {field}: size {space.size} and bounds do not match the input's {size}")
    if manifest.file != FILES[manifest.format]:
        raise DataError(f"{path}: file: {manifest.file!r}, a {manifest.format} export's is {FILES[manifest.format]!r}")
    return manifest


def check_env(manifest: Manifest, env: gym.Env, where: str) -> None:
    """Refuse an env the exported policy was not made for.

    Args:
        manifest: the export's.
        env: the env about to be driven.
        where: the manifest's path, for messages.

    Raises:
        DataError: the observation or action size, the action bounds or the control period differ (named).
    """
    for field in ("observation", "action"):
        space = getattr(env, f"{field}_space")
        expected: Space = getattr(manifest, field)
        if not isinstance(space, gym.spaces.Box):
            raise DataError(f"{where}: {field}: the env's space is {type(space).__name__}, the policy's a flat Box")
        size = int(np.prod(space.shape))
        if size != expected.size:
            raise DataError(f"{where}: {field}.size: the policy's is {expected.size}, the env's {size}")
    action = box_space(env.action_space)
    low, high = bounds(action.low), bounds(action.high)
    if not (_close(low, manifest.action.low) and _close(high, manifest.action.high)):
        policy = f"{manifest.action.low} .. {manifest.action.high}"
        raise DataError(f"{where}: action.low/high: the policy's {policy}, the env's {low} .. {high}")
    period = getattr(env.unwrapped, "dt", None)
    if period is not None and not math.isclose(float(period), manifest.control_period_s, rel_tol=1e-6):
        raise DataError(f"{where}: control_period_s: the policy's {manifest.control_period_s}, the env's {period}")


def _close(a: list[float | None], b: list[float | None]) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and math.isclose(x, y, rel_tol=1e-6))
        for x, y in zip(a, b, strict=True)
    )
