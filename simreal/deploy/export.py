"""Export a trained policy to one artifact that runs outside simreal (ONNX through ``torch.onnx``, or TorchScript),
with its manifest; and load an export back as a policy that acts on a robot's raw observations
(:class:`ExportedPolicy`: ONNX through onnxruntime, TorchScript through torch alone)."""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from simreal.deploy.manifest import FILES, MANIFEST, ROBOT_FILE, Format, Manifest, bounds, export_file, load_manifest
from simreal.deploy.network import DeployedPolicy
from simreal.envs.mujoco_base import box_space, mujoco_env
from simreal.envs.spec import RobotSpec
from simreal.errors import DataError, SetupError
from simreal.fileio import atomic_write, atomic_write_json, atomic_write_text, read_yaml
from simreal.runs.policy import LoadedPolicy, load_policy

#: ONNX needs the ``export`` extra; TorchScript only torch.
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
INPUTS, OUTPUTS = ["observation", "state"], ["action", "next_state"]


def export_policy(
    source: str | os.PathLike[str], format: Format, out: str | os.PathLike[str], trust_pickles: bool = False
) -> Path:
    """Write ``out/policy.onnx`` (or ``policy.pt``) and ``out/manifest.json`` for the policy of run ``source``.

    The artifact maps ``(observation, state)`` (float64, batch of one) to ``(action, next_state)``; the state starts
    every episode at zeros (see :mod:`simreal.deploy.network`).

    Args:
        source: a run directory or a model file inside one.
        format: ``onnx`` or ``torchscript``.
        out: the folder to write (created; files in it replaced atomically).
        trust_pickles: let a run holding stable-baselines3's pickles only load (:data:`~simreal.errors.TRUST_PICKLES`).

    Returns:
        The manifest's path.

    Raises:
        DataError: a missing or corrupt run, or a policy that cannot run without a simulator.
        SetupError: ONNX without its packages (``pip install 'simreal[export]'``).
    """
    if format == "onnx":
        _require_onnx()
    policy = load_policy(source, device="cpu", trust_pickles=trust_pickles)
    # float64 networks for ONNX: see simreal.deploy.network
    module = DeployedPolicy(policy, torch.float64 if format == "onnx" else torch.float32).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    observation = torch.zeros(1, policy.layout.observation, dtype=torch.float64)
    example = (observation, torch.zeros(1, module.state_size, dtype=torch.float64))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' notes on their own internals
        if format == "torchscript":
            traced = torch.jit.trace(module, example, check_trace=False)
            atomic_write(out / FILES[format], lambda tmp: traced.save(str(tmp)))
        else:
            atomic_write(out / FILES[format], lambda tmp: _export_onnx(module, example, tmp))
    robot = _write_robot(policy.setup.spec, out)
    manifest = manifest_of(policy, format, module.state_size, robot)
    return atomic_write_json(out / MANIFEST, manifest.dump())


def _write_robot(spec: RobotSpec, out: Path) -> str:
    """How the manifest names the robot: a shipped robot by its name; any other (a robot file, an inline robot) by
    its YAML, written into the export as :data:`~simreal.deploy.manifest.ROBOT_FILE` so that the export carries it
    (a manifest never points outside its folder)."""
    reference = spec.reference
    if isinstance(reference, str) and reference == spec.robot:
        return spec.robot
    # an inline robot's catalogue is generated (see load_robot): a file of it says so
    data = read_yaml(reference, DataError) if isinstance(reference, str) else {"generate": {}, **reference}
    data["robot"] = spec.robot  # the name it had, not the file's stem
    atomic_write_text(out / ROBOT_FILE, yaml.safe_dump(data, sort_keys=False))
    return ROBOT_FILE


def _export_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    # the exporter logs notes on operators it skips (torchvision's): the library stays quiet
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        _write_onnx(module, example, path)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def _write_onnx(module: torch.nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    program = torch.onnx.export(
        module, example, input_names=INPUTS, output_names=OUTPUTS, dynamo=True, verbose=False, optimize=True
    )
    if program is None:  # torch returns None only for the TorchScript exporter, never with dynamo=True
        raise RuntimeError("torch.onnx.export returned no program")
    program.save(str(path), external_data=False)


def manifest_of(policy: LoadedPolicy, format: Format, state_size: int, robot: str | None = None) -> Manifest:
    """The manifest of ``policy`` exported in ``format``, its robot named ``robot`` (default: the robot's name)."""
    import simreal
    from simreal.envs.factory import make_env

    setup = policy.setup
    env = make_env(setup.spec)
    try:
        observation, action = box_space(env.observation_space), box_space(env.action_space)
        period = float(mujoco_env(env).dt)
    finally:
        env.close()
    delay = setup.ranges.get("action_delay_steps")
    delay_steps = (
        (round(delay.low), round(delay.high)) if delay is not None else (setup.effects.action_delay_steps,) * 2
    )
    return Manifest.model_validate(
        {
            "schema": "simreal.export/1",
            "format": format,
            "file": FILES[format],
            "robot": robot or setup.spec.robot,
            "env_id": setup.spec.gym_id,
            "algorithm": setup.config.algorithm.name,
            "observation": {
                "size": policy.layout.observation,
                "low": bounds(observation.low),
                "high": bounds(observation.high),
            },
            "action": {"size": policy.layout.action, "low": bounds(action.low), "high": bounds(action.high)},
            "control_period_s": period,
            "input": policy.layout.as_dict(),
            "state_size": state_size,
            "delay_steps": delay_steps,
            "simreal_version": simreal.__version__,
            "source": str(policy.path),
        }
    )


def _require_onnx() -> None:
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise SetupError(f"ONNX export needs {', '.join(missing)}: pip install 'simreal[export]' (or use torchscript)")


class ExportedPolicy:
    """An export loaded back: acts on a robot's raw observations, one step at a time, keeping its state.

    Args:
        folder: what :func:`export_policy` wrote.

    Raises:
        DataError: a missing, invalid or truncated manifest or artifact.
        SetupError: an ONNX export without onnxruntime.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.manifest: Manifest = load_manifest(self.folder)
        path = export_file(self.folder, self.manifest.file)
        self._run = _onnx_session(path) if self.manifest.format == "onnx" else _torchscript(path)
        self._state = np.zeros((1, self.manifest.state_size))
        observation = np.zeros((1, self.manifest.observation.size))
        try:  # a truncated or foreign artifact fails here, not at the robot's first step
            action, state = self._run(observation, self._state)
        except Exception as exc:  # noqa: BLE001 - any runtime's failure on a damaged file is the file's fault
            raise DataError(f"{path}: does not run as this manifest's policy ({type(exc).__name__})") from None
        if action.shape != (1, self.manifest.action.size) or state.shape != self._state.shape:
            expected = f"(1, {self.manifest.action.size}) and {self._state.shape}"
            raise DataError(f"{path}: returns shapes {action.shape} and {state.shape}, the manifest says {expected}")

    @property
    def where(self) -> str:
        return str(self.folder / MANIFEST)

    def reset(self) -> None:
        """A new episode: the state back to zeros."""
        self._state = np.zeros_like(self._state)

    def act(self, observation: Any) -> np.ndarray:
        """The action for this observation (the robot's, as it reports it)."""
        obs = np.asarray(observation, dtype=np.float64).reshape(1, -1)
        if obs.shape[1] != self.manifest.observation.size:
            raise DataError(f"{self.where}: observation.size: {self.manifest.observation.size}, got {obs.shape[1]}")
        action, self._state = self._run(obs, self._state)
        return np.asarray(action[0], dtype=np.float32)


#: One step of an export: ``(observation, state) -> (action, next state)``.
_Step = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _onnx_session(path: Path) -> _Step:
    if importlib.util.find_spec("onnxruntime") is None:
        raise SetupError("an ONNX export runs with onnxruntime: pip install 'simreal[export]'")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for damaged models
        raise DataError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None

    def run(observation: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        action, next_state = session.run(OUTPUTS, {"observation": observation, "state": state})
        return np.asarray(action), np.asarray(next_state)

    return run


def _torchscript(path: Path) -> _Step:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch >= 2.10 deprecates TorchScript: still runs
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        raise DataError(f"{path}: not a readable TorchScript module ({type(exc).__name__})") from None

    def run(observation: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            action, next_state = module(torch.as_tensor(observation), torch.as_tensor(state))
        return action.numpy(), next_state.numpy()

    return run


def action_difference(source: str | os.PathLike[str], export: str | os.PathLike[str], target: str, steps: int) -> float:
    """The largest difference between simreal's deterministic actions (run ``source``) and the export's over
    ``steps`` steps on ``target``, both acting on the same observations (simreal's actions drive the env; episode
    ``i`` reset with seed ``i``, episodes restarting as they end): the export's parity."""
    from simreal.envs.factory import make_env
    from simreal.envs.robots import load_target

    policy, exported = load_policy(source), ExportedPolicy(export)
    runner = policy.runner()
    _, target_spec = load_target(policy.setup.spec, target)
    env = make_env(policy.setup.spec, fixed=target_spec.parameters, effects=target_spec.effects)
    worst, done, seed = 0.0, True, 0
    try:
        for _ in range(steps):
            if done:
                obs, info = env.reset(seed=seed)
                action, seed = runner.reset(obs, info), seed + 1
                exported.reset()
            else:
                action = runner.step(obs)
            worst = max(worst, float(np.max(np.abs(action - exported.act(obs)))))
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    finally:
        env.close()
    return worst
