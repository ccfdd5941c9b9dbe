"""The algorithms simreal trains (stable-baselines3's PPO and SAC): the registry by config name, their constructor
arguments from a config, the torch device, and loading saved models and normalization statistics (rebuilt from the
config and plain files, :mod:`simreal.runs.model_files`; stable-baselines3's pickles only when trusted)."""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal import compat
from simreal.adaptation.rma import extractor_kwargs
from simreal.envs.inputs import InputLayout
from simreal.envs.vector import normalize
from simreal.errors import TRUST_PICKLES, ConfigError, DataError, shown
from simreal.runs import model_files
from simreal.runs.asymmetric import ASYMMETRIC_POLICIES
from simreal.runs.config import TrainConfig

#: stable-baselines3's normalization statistics (a pickle) written beside a model file, for its users.
VECNORMALIZE = "vecnormalize.pkl"

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}

ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
    "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU,
}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``.

    Raises:
        ConfigError: ``cuda`` asked for where there is none, or an unknown device.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested, but torch sees no CUDA device (use cpu or auto)")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device: expected auto, cpu or cuda, got {shown(device)}")
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
            hyper["learning_rate"] = LinearDecay(hyper["learning_rate"])
    else:
        policy_kwargs.update(
            net_arch={"pi": list(network.pi), "qf": list(network.qf)}, log_std_init=network.log_std_init
        )
    return {**hyper, "policy_kwargs": policy_kwargs}


class LinearDecay:
    """Learning rate falling linearly to 0 over training (picklable, unlike a lambda in a saved model)."""

    def __init__(self, initial: float) -> None:
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial


def normalized_for(
    venv: VecEnv, config: TrainConfig, pinned: Mapping[int, tuple[float, float]] | None = None
) -> VecEnv:
    """``venv`` wrapped in fresh VecNormalize statistics as the config's ``env.normalize`` says (``pinned``: entries
    with fixed statistics, an adaptive policy's dynamics input: see :func:`simreal.runs.setup.TrainingSetup.pinned`)."""
    settings = config.env.normalize
    gamma = config.algorithm.hyperparameters.gamma
    return normalize(
        venv,
        observations=settings.observations,
        rewards=settings.rewards,
        clip_obs=settings.clip_obs,
        clip_reward=settings.clip_reward,
        gamma=gamma,
        pinned=pinned,
    )


def new_model(config: TrainConfig, venv: VecEnv, device: str, layout: InputLayout) -> BaseAlgorithm:
    """A fresh model of the config's algorithm on ``venv``, seeded with the config's seed.

    Args:
        config: the run's config.
        venv: the training envs.
        device: torch device.
        layout: the policy's input (an asymmetric critic's privileged inputs, ``algorithm.privileged_critic``, end
            it; an RMA policy's extractor splits it into its parts).
    """
    algorithm = ALGORITHMS[config.algorithm.name]
    kwargs = algorithm_kwargs(config)
    policy: str | type = "MlpPolicy"
    if layout.privileged:
        policy = ASYMMETRIC_POLICIES[config.algorithm.name]
        kwargs["policy_kwargs"]["privileged"] = layout.privileged
    adaptation = config.adaptation
    if adaptation.kind == "rma":
        # the env's observation is [x, e, history of x and actions]
        sizes = (layout.observation, layout.action, len(layout.dynamics), layout.raw_history)
        kwargs["policy_kwargs"].update(extractor_kwargs(*sizes, adaptation.rma))
    return algorithm(policy, venv, seed=config.seed, device=device, verbose=0, **kwargs)


def pickles_only(path: Path) -> DataError:
    """The refusal of a model or statistics file simreal could only read by unpickling it."""
    return DataError(
        f"{path}: holds pickles only (a foreign stable-baselines3 file, or a run saved before simreal kept "
        f"weights.pt and vecnormalize.npz): trust_pickles lets it load, and would {TRUST_PICKLES}"
    )


def load_model(
    model_path: Path,
    config: TrainConfig,
    layout: InputLayout,
    venv: VecEnv,
    device: str = "auto",
    trust_pickles: bool = False,
    for_training: bool = True,
) -> BaseAlgorithm:
    """A saved model on ``venv``: rebuilt from ``config`` with the weights and counters of the files beside
    ``model_path`` (see :mod:`simreal.runs.model_files`), nothing unpickled; or, with ``trust_pickles``, a folder
    holding stable-baselines3's zip only, loaded by stable-baselines3.

    Args:
        model_path: the model zip (its folder holds ``weights.pt`` and ``model.json``).
        config: the run's config (the model's algorithm, network and hyperparameters).
        layout: the policy's input (an asymmetric critic's and an RMA extractor's sizes).
        venv: the env the model acts and trains on (already normalized as saved).
        device: torch device.
        trust_pickles: allow a pickle-only folder (see :data:`TRUST_PICKLES`).
        for_training: a pickle-only model keeps its saved learning-rate schedule (see :func:`load_pickled_model`).

    Raises:
        DataError: missing or unreadable files, weights that do not fit the config, or pickles only without trust.
    """
    folder = model_path.parent
    if not require_model_files(model_path, trust_pickles):
        return load_pickled_model(model_path, config.algorithm.name, venv, device, for_training)
    info = model_files.read_model_info(folder)
    model = new_model(config, venv, device, layout)
    model_files.load_weights(model, folder, info)
    return model


def require_model_files(model_path: Path, trust_pickles: bool) -> bool:
    """Whether the model of ``model_path`` is in simreal's own files (``False``: stable-baselines3's pickles, which
    ``trust_pickles`` allows).

    Raises:
        DataError: pickles only without ``trust_pickles``.
    """
    if model_files.has_model_files(model_path.parent):
        return True
    if not trust_pickles:
        raise pickles_only(model_path)
    return False


def load_pickled_model(
    path: Path, algorithm: str, env: VecEnv | None = None, device: str = "auto", for_training: bool = False
) -> BaseAlgorithm:
    """Load a stable-baselines3 model zip with stable-baselines3 (it unpickles the zip's data: only for files the
    user trusts, see :data:`TRUST_PICKLES`).

    Args:
        path: the model zip.
        algorithm: its algorithm's config name (``ppo``, ``sac``).
        env: the env to attach (needed to train on).
        device: torch device.
        for_training: keep the saved learning-rate schedule (to continue training). A model loaded to act only
            skips unpickling it, so models saved by other versions of simreal still load.

    Raises:
        DataError: the file is missing or is not a model of this algorithm.
    """
    if not path.is_file():
        raise DataError(f"{path}: model file not found")
    problem = model_file_problem(path)
    if problem is not None:
        raise DataError(f"{path}: not a readable {algorithm.upper()} model ({problem})")
    custom = None if for_training else {"learning_rate": 0.0, "lr_schedule": _no_learning}
    try:
        return ALGORITHMS[algorithm].load(path, env=env, device=device, custom_objects=custom)
    except (
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        EOFError,
        pickle.UnpicklingError,
        RuntimeError,
        AssertionError,
        TypeError,
        AttributeError,
    ) as exc:
        # a zip whole on disk whose content is not this algorithm's model: another algorithm's, another library's
        raise DataError(
            f"{path}: not a readable {algorithm.upper()} model ({type(exc).__name__}: {shown(str(exc))})"
        ) from None
    except ModuleNotFoundError as exc:
        raise DataError(f"{path}: saved by another version of simreal, cannot continue training it ({exc})") from None


def model_file_problem(path: Path) -> str | None:
    """What is wrong with a stable-baselines3 model file on disk, or ``None``: it is a whole zip (every member's
    checksum) holding the members a model has (``data``, the policy's weights ``policy.pth``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
            members = set(archive.namelist())
    except zipfile.BadZipFile:
        return "not a zip file, or a truncated one"
    except (OSError, EOFError, zlib.error) as exc:
        return f"damaged zip ({type(exc).__name__})"
    if damaged is not None:
        return f"damaged zip member {damaged}"
    missing = sorted({"data", "policy.pth"} - members)
    if missing:
        return f"a zip without a model's {', '.join(missing)}"
    return None


def warm_start(
    model_path: Path,
    config: TrainConfig,
    venv: VecEnv,
    device: str,
    layout: InputLayout,
    lr_scale: float = 1.0,
    update_normalization: bool = True,
    trust_pickles: bool = False,
) -> BaseAlgorithm:
    """A saved model set up to keep training on ``venv`` (a new env: a target, another simulator).

    The statistics beside the model wrap ``venv`` (fresh statistics would scramble the inputs), updating or frozen;
    the learning rate is the config's times ``lr_scale`` on the config's schedule, restarted (train with
    ``reset_num_timesteps=True``); SAC acts with its policy from the first step (its ``learning_starts`` would spend
    steps on random actions) and starts with an empty replay buffer (it is not in the model file).

    Raises:
        DataError: an unreadable model or statistics file, or pickles only without ``trust_pickles``.
    """
    venv = load_statistics(model_path.parent, venv, trust_pickles)
    if isinstance(venv, VecNormalize):
        venv.training = update_normalization
    model = load_model(model_path, config, layout, venv, device, trust_pickles)
    hyper = config.algorithm.hyperparameters
    rate = hyper.learning_rate * lr_scale
    model.learning_rate = LinearDecay(rate) if getattr(hyper, "linear_lr_decay", False) else rate
    compat.restart_learning_rate(model)
    model.num_timesteps = 0  # the budget and the schedules count from here, not from the saved run's count
    if isinstance(model, SAC):
        model.learning_starts = 0
    return model


def _no_learning(progress_remaining: float) -> float:
    return 0.0


def training_envs(model: BaseAlgorithm) -> VecEnv:
    """The envs ``model`` learns on (every model simreal builds or loads for training has them)."""
    venv = model.get_env()
    if venv is None:
        raise ValueError("the model has no envs: load it with env=...")
    return venv


def statistics_of(venv: VecEnv | None) -> VecNormalize | None:
    """The VecNormalize statistics a (training) env is wrapped in, or ``None`` when it is not normalized."""
    return venv if isinstance(venv, VecNormalize) else None


def load_statistics(folder: Path, venv: VecEnv, trust_pickles: bool = False) -> VecEnv:
    """``venv`` wrapped in the normalization statistics saved in ``folder`` (``vecnormalize.npz``; with
    ``trust_pickles``, a ``vecnormalize.pkl`` alone), or ``venv`` itself when the model was not normalized.

    Raises:
        DataError: unreadable statistics, statistics that do not fit the env, or a pickle only without trust.
    """
    if os.path.lexists(folder / model_files.STATISTICS):
        return model_files.read_statistics(folder, venv)
    if not os.path.lexists(folder / VECNORMALIZE):
        return venv
    if not trust_pickles:
        raise pickles_only(folder / VECNORMALIZE)
    return load_pickled_vecnormalize(folder / VECNORMALIZE, venv)


def load_pickled_vecnormalize(path: Path, venv: VecEnv) -> VecNormalize:
    """Load stable-baselines3's pickled VecNormalize statistics around ``venv`` (only for files the user trusts).

    Raises:
        DataError: the file is corrupt or does not fit the env.
    """
    try:
        return VecNormalize.load(str(path), venv)
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        AssertionError,
        AttributeError,
        KeyError,
        TypeError,
        IndexError,
        ImportError,
    ) as exc:
        raise DataError(f"{path}: not readable VecNormalize statistics for this env ({shown(str(exc))})") from None
