"""Where a training call starts, and the exact resume: what a checkpoint keeps beside the model, and putting a run
back where it stood.

A new run starts in a new run directory; a resumed one from its newest intact checkpoint (the damaged newer ones
passed over, and said so). :func:`checkpoint_state` is what a checkpoint keeps beside the model, and
:func:`restore` loads the model back with every env continuing its random streams, its episode in progress replayed
(:mod:`simreal.envs.replay`), and the global generators where they stood: the resumed run then takes exactly the
steps the interrupted one would have taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal import compat
from simreal.errors import ConfigError, DataError
from simreal.fileio import contained_file, read_json
from simreal.runs import model_files
from simreal.runs.algorithms import load_model, load_statistics, training_envs
from simreal.runs.rundir import CONFIG, MODEL, PICKLED_REPLAY_BUFFER, clean_leftovers, resume_point, saved_config
from simreal.runs.setup import TrainingSetup
from simreal.train.callbacks import TransferEvalCallback
from simreal.train.protocol import Schedule


@dataclass
class StartingPoint:
    """Where a training call starts: the checkpoint (``None``: a new run, or one killed before its first), its
    state, the timesteps it holds, what a resume passed over, and whether a killed run starts over."""

    checkpoint: Path | None
    state: dict[str, Any]
    timesteps: int
    passed_over: list[str]
    restarted: bool


def starting_point(setup: TrainingSetup, run_dir: Path, resume: bool, trust_pickles: bool = False) -> StartingPoint:
    """Where a training call in ``run_dir`` starts: a new run, or the run's newest intact checkpoint
    (``trust_pickles``: one holding stable-baselines3's pickles only is a candidate too).

    Raises:
        ConfigError: a new run into a folder that already holds a run, or a budget below what the run trained.
        DataError: every checkpoint the run wrote is damaged, or the checkpoint's streams are not one per env.
    """
    config = setup.config
    passed_over: list[str] = []
    checkpoint: Path | None = None
    if resume:
        checkpoint, passed_over = _resume_point(run_dir, trust_pickles)
    else:
        _new_run_dir(run_dir)
    state = read_json(contained_file(checkpoint, "state.json")) if checkpoint is not None else {}
    start = int(state.get("num_timesteps", 0))
    if config.total_timesteps < start and saved_config(run_dir).total_timesteps != config.total_timesteps:
        # a budget below the run's own (PPO's last rollout may pass it: that run is complete, not refused)
        raise ConfigError(f"total_timesteps: {config.total_timesteps}: the run already trained {start} timesteps")
    if checkpoint is not None and len(state.get("streams") or []) != config.env.n_envs:
        raise DataError(f"{checkpoint / 'state.json'}: streams: missing or not one per env ({config.env.n_envs})")
    # a run stopped before its first checkpoint starts over: with the same seed it reaches the same numbers
    return StartingPoint(checkpoint, state, start, passed_over, restarted=resume and checkpoint is None)


def _new_run_dir(run_dir: Path) -> None:
    if (run_dir / CONFIG).exists():
        raise ConfigError(f"{run_dir}: already holds a run (resume it, or choose another run directory)")
    run_dir.mkdir(parents=True, exist_ok=True)


def _resume_point(run_dir: Path, trust_pickles: bool) -> tuple[Path | None, list[str]]:
    """The newest intact checkpoint (``None``: the run never wrote one), and what was wrong with the newer ones
    passed over.

    Raises:
        DataError: every checkpoint the run wrote is damaged.
    """
    clean_leftovers(run_dir)
    point = resume_point(run_dir, trust_pickles)
    if point.folder is None and point.passed_over:
        raise DataError(f"{run_dir}: no intact checkpoint to resume from ({'; '.join(point.passed_over)})")
    return point.folder, point.passed_over


def checkpoint_state(model: BaseAlgorithm, evaluation: TransferEvalCallback, schedule: Schedule) -> dict[str, Any]:
    """What a checkpoint keeps beside the model: the evaluation's and the schedule's state, every env's streams,
    the episodes in progress (replayed on resume, see :mod:`simreal.envs.replay`), what the algorithm and the reward
    normalization carry between rollouts, and the global generators."""
    venv = training_envs(model)
    return {
        **evaluation.state(),
        "schedule": schedule.state(),
        "streams": venv.env_method("get_stream_state"),
        "episodes": venv.env_method("episode_log"),
        "episode_starts": compat.rollout_state(model)[1].tolist(),
        "returns": venv.returns.tolist() if isinstance(venv, VecNormalize) else None,
        "global_rng": _global_rng_state(),
    }


def restore(
    setup: TrainingSetup,
    venv: VecEnv,
    checkpoint: Path,
    state: dict[str, Any],
    device: str,
    trust_pickles: bool = False,
) -> BaseAlgorithm:
    """The checkpoint's model on ``venv``, every env continuing its random streams from the checkpoint."""
    streams = state["streams"]
    raw = venv
    venv = load_statistics(checkpoint, raw, trust_pickles)
    model = load_model(checkpoint / MODEL, setup.config, setup.input_layout(), venv, device, trust_pickles)
    if isinstance(model, OffPolicyAlgorithm):
        if model_files.has_model_files(checkpoint):
            if (checkpoint / model_files.REPLAY).exists():
                model_files.read_replay_buffer(model, checkpoint)
        elif (checkpoint / PICKLED_REPLAY_BUFFER).exists():  # trusted: a checkpoint of stable-baselines3's pickles
            model.load_replay_buffer(checkpoint / PICKLED_REPLAY_BUFFER)
    # loading queued the run's seeds for every env's next reset: spend them, then put the streams back
    raw.reset()
    episodes = state.get("episodes")
    if episodes and all(log is not None for log in episodes):
        _replay_episodes(model, venv, raw, episodes, state)
    else:
        # a checkpoint without its episodes (written before they were kept, or an episode too long to keep):
        # begin new episodes from the restored streams
        for index, env_state in enumerate(streams):
            raw.env_method("set_stream_state", env_state, indices=[index])
        # stable-baselines3's load() clears the last observation, and learn() would then reset every env with its
        # initial seed, replaying the streams from their start: start the episodes here, from the restored streams
        obs = venv.reset()
        original = venv.get_original_obs() if isinstance(venv, VecNormalize) else None
        compat.set_rollout_state(model, obs, np.ones((venv.num_envs,), dtype=bool), original)
    # building the model also reseeded torch and numpy with the run's seed: the policy's sampling continues where it
    # stood
    _restore_global_rng(state.get("global_rng"))
    return model


def _replay_episodes(
    model: BaseAlgorithm, venv: VecEnv, raw: VecEnv, episodes: list[dict[str, Any]], state: dict[str, Any]
) -> None:
    """Put every env back in the middle of the episode it was in at the checkpoint, by replaying the episode, and
    give the algorithm the observations, episode starts and return statistics it had there: the resumed run then
    takes exactly the steps the interrupted one would have taken."""
    observations = []
    for index, log in enumerate(episodes):
        obs, rewards = raw.env_method("replay_episode", log, indices=[index])[0]
        raw.set_attr("rewards", rewards, indices=[index])  # the Monitor's return of the episode so far
        observations.append(obs)
    original = np.stack(observations)
    starts = state.get("episode_starts", [False] * raw.num_envs)
    if isinstance(venv, VecNormalize):
        venv.old_obs = original
        if state.get("returns") is not None:
            venv.returns = np.asarray(state["returns"], dtype=np.float64)
        compat.set_rollout_state(model, venv.normalize_obs(original), starts, original)
    else:
        compat.set_rollout_state(model, original, starts)


def _global_rng_state() -> dict[str, Any]:
    """torch's and numpy's global generators (the policy's action noise, SAC's replay sampling), JSON-ready."""
    kind, keys, position, has_gauss, cached = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state())
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }


def _restore_global_rng(state: dict[str, Any] | None) -> None:
    if not state:
        return
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
