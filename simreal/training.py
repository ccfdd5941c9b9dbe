"""Train PPO or SAC on a robot's randomized (or nominal) envs: the main job of simreal.

One config in, one run directory out (see :mod:`simreal.rundir`). The library does not print: progress reaches the
caller through the stable-baselines3 callbacks it passes in.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal.callbacks import (
    CheckpointEvery,
    DynamicsLogger,
    ScheduleCallback,
    TransferEvalCallback,
    tensorboard_writer,
)
from simreal.config import TrainConfig, config_table
from simreal.errors import ConfigError, DataError
from simreal.evaluation import TransferEvaluator
from simreal.fileio import atomic_write_json
from simreal.rundir import (
    ALGORITHMS,
    REPLAY_BUFFER,
    VECNORMALIZE,
    latest_checkpoint,
    load_model,
    load_vecnormalize,
    read_json,
    save_model,
    saved_config,
    write_run_metadata,
)
from simreal.schedules import build_schedule
from simreal.vecenv import make_training_env, training_ranges

ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
    "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU,
}


@dataclass
class TrainResult:
    """What a finished training run left behind."""

    run_dir: Path
    num_timesteps: int
    final_eval: dict[str, Any]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``.

    Raises:
        ConfigError: ``cuda`` asked for where there is none, or an unknown device.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device: cuda requested, but torch sees no CUDA device (use --device cpu or auto)")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device: expected auto, cpu or cuda, got {device!r}")
    return device


def algorithm_kwargs(config: TrainConfig) -> dict[str, Any]:
    """The stable-baselines3 constructor arguments of the config's algorithm."""
    algorithm = config.algorithm
    hyper = algorithm.hyperparameters.model_dump()
    network = algorithm.network
    policy_kwargs: dict[str, Any] = {"activation_fn": ACTIVATIONS[network.activation]}
    if algorithm.name == "ppo":
        policy_kwargs.update(
            net_arch={"pi": list(network.pi), "vf": list(network.vf)},
            log_std_init=network.log_std_init,
            ortho_init=network.ortho_init,
        )
        if hyper.pop("linear_lr_decay"):
            initial = hyper["learning_rate"]
            hyper["learning_rate"] = _LinearDecay(initial)
    else:
        policy_kwargs.update(
            net_arch={"pi": list(network.pi), "qf": list(network.qf)}, log_std_init=network.log_std_init
        )
    return {**hyper, "policy_kwargs": policy_kwargs}


class _LinearDecay:
    """Learning rate falling linearly to 0 over training (picklable, unlike a lambda in a saved model)."""

    def __init__(self, initial: float) -> None:
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    callbacks: Sequence[BaseCallback] = (),
    command: list[str] | None = None,
) -> TrainResult:
    """Train the config's algorithm, evaluating on targets and checkpointing as it says.

    Args:
        config: the validated config.
        run_dir: the run directory (created; must be new unless ``resume``).
        device: ``auto``, ``cpu`` or ``cuda``.
        resume: continue from the run's latest checkpoint and stop at ``config.total_timesteps``.
        callbacks: extra stable-baselines3 callbacks (the CLI passes its progress bar).
        command: the command line to record (default: ``sys.argv``).

    Returns:
        The run directory, the timesteps trained and the last evaluation.

    Raises:
        ConfigError: a new run into a folder that already holds a run, or a resumed run whose config differs.
        DataError: nothing to resume, or a corrupt checkpoint.
    """
    run_dir = Path(run_dir)
    device = resolve_device(device)
    checkpoint = _prepare_run_dir(config, run_dir, resume)
    torch.set_num_threads(config.torch_threads or 1)
    set_random_seed(config.seed, using_cuda=device == "cuda")
    write_run_metadata(run_dir, config, command, device)

    venv = make_training_env(config, seed=config.seed)
    model, state = _build_model(config, venv, device, checkpoint)
    venv = model.get_env()
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))

    evaluator = TransferEvaluator(config, config.eval.episodes, seed=config.seed + 10_000)
    evaluation = TransferEvalCallback(evaluator, config.eval.frequency, run_dir)
    evaluation.restore(state)
    if state.get("randomization"):
        for index, env_state in enumerate(state["randomization"]):
            venv.env_method("set_randomization_state", env_state, indices=[index])

    schedule = build_schedule(config, training_ranges(config))
    schedule.restore(state.get("schedule", {}))

    def checkpoint_state() -> dict[str, Any]:
        return {
            **evaluation.state(),
            "schedule": schedule.state(),
            "randomization": venv.env_method("get_randomization_state"),
        }

    checkpoints = CheckpointEvery(config.checkpoint.frequency, run_dir, config.checkpoint.keep, checkpoint_state)
    scheduling = [ScheduleCallback(schedule)] if config.randomization.enabled else []
    everything = CallbackList([DynamicsLogger(), _ConfigText(config), *scheduling, evaluation, checkpoints, *callbacks])
    try:
        remaining = config.total_timesteps - model.num_timesteps
        if remaining > 0:
            model.learn(remaining, callback=everything, reset_num_timesteps=not resume, tb_log_name="")
        else:
            everything.init_callback(model)
        final = evaluation.evaluate()
        checkpoints.save()
        save_model(model, venv, run_dir)
        atomic_write_json(run_dir / "eval.json", final)
    finally:
        evaluator.close()
        venv.close()
    return TrainResult(run_dir, model.num_timesteps, final)


def _prepare_run_dir(config: TrainConfig, run_dir: Path, resume: bool) -> Path | None:
    if not resume:
        if (run_dir / "config.yaml").exists():
            raise ConfigError(f"{run_dir}: already holds a run (use --resume to continue it, or another --run-dir)")
        run_dir.mkdir(parents=True, exist_ok=True)
        return None
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: --resume: no such run directory")
    previous = saved_config(run_dir).model_dump()
    current = config.model_dump()
    for key in current:
        if key != "total_timesteps" and previous.get(key) != current[key]:
            raise ConfigError(f"{run_dir}: --resume: {key} differs from the run's config.yaml")
    for stale in (run_dir / "checkpoints").glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # a checkpoint a kill interrupted mid-write
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise DataError(f"{run_dir}: --resume: no checkpoint to resume from")
    return checkpoint


def _build_model(
    config: TrainConfig, venv: VecEnv, device: str, checkpoint: Path | None
) -> tuple[BaseAlgorithm, dict[str, Any]]:
    if checkpoint is None:
        algorithm = ALGORITHMS[config.algorithm.name]
        model = algorithm("MlpPolicy", venv, seed=config.seed, device=device, verbose=0, **algorithm_kwargs(config))
        return model, {}
    if isinstance(venv, VecNormalize):
        venv = load_vecnormalize(checkpoint / VECNORMALIZE, venv.venv)
    model = load_model(checkpoint / "model.zip", config.algorithm.name, env=venv, device=device)
    if (checkpoint / REPLAY_BUFFER).exists():
        model.load_replay_buffer(checkpoint / REPLAY_BUFFER)
    state = read_json(checkpoint / "state.json", default={})
    return model, state


class _ConfigText(BaseCallback):
    """Writes the resolved config to TensorBoard as a text table, once."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    def _on_training_start(self) -> None:
        writer = tensorboard_writer(self)
        if writer is not None:
            rows = "\n".join(f"| {key} | {value} |" for key, value in config_table(self.config))
            writer.add_text("config", f"| field | value |\n| --- | --- |\n{rows}", self.num_timesteps)

    def _on_step(self) -> bool:
        return True
