"""Every place simreal reaches past a library's public API, in one module, each hook tested
(``tests/test_compat.py``) so that an upgrade of stable-baselines3, Gymnasium or TensorBoard breaks one tested place.

- stable-baselines3 keeps what a rollout hands to the next one (the last observation, the episode starts, the
  unnormalized observation) in private attributes that ``load()`` clears: a resume sets them back
  (:func:`rollout_state`, :func:`set_rollout_state`).
- Its whole-run budget after a resume lives only in ``_total_timesteps`` (:func:`total_timesteps`).
- A warm-started model gets a new learning-rate schedule through ``_setup_lr_schedule``
  (:func:`restart_learning_rate`); per-layer rates wrap ``_update_learning_rate``
  (:func:`wrap_learning_rate_update`, :func:`unwrap_learning_rate_update`).
- Its TensorBoard output keeps its ``SummaryWriter`` in ``writer`` (:func:`tensorboard_writer`,
  :func:`set_tensorboard_writer`).
- Gymnasium's ``env.np_random`` seeds a generator when read before any reset; a checkpoint must read the one there is
  (or none) without creating one: ``_np_random`` (:func:`env_rng`, :func:`set_env_rng`).
- A model rebuilt from its config and its weights (never unpickled, see :mod:`simreal.runs.model_files`) gets back
  what ``load()`` would restore from the zip's data: the update and episode counts (``_n_updates``,
  ``_episode_num``: :func:`update_count`, :func:`episode_count`, :func:`set_counts`), the logging window
  (:func:`set_episode_infos`) and the tensors saved outside state dicts (``_get_torch_save_params``:
  :func:`torch_variables`).
- torch's ``SummaryWriter`` writes a raw summary (an animated image) only through its file writer
  (:func:`add_summary`).

Nothing here imports those libraries: the functions take their objects.
"""

from __future__ import annotations

import functools
import types
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.logger import TensorBoardOutputFormat
    from torch.utils.tensorboard import SummaryWriter


def rollout_state(model: BaseAlgorithm) -> tuple[Any, np.ndarray, Any]:
    """A stable-baselines3 model's ``(last observation, episode starts, last unnormalized observation)``."""
    starts = cast("np.ndarray", model._last_episode_starts)  # set by every rollout
    return model._last_obs, starts, getattr(model, "_last_original_obs", None)


def set_rollout_state(model: BaseAlgorithm, obs: Any, episode_starts: np.ndarray, original_obs: Any = None) -> None:
    """Give a model the observation its next rollout starts from, which envs begin an episode there, and (with
    VecNormalize) the unnormalized observation."""
    model._last_obs = obs
    model._last_episode_starts = np.asarray(episode_starts, dtype=bool)
    if original_obs is not None:
        model._last_original_obs = original_obs


def total_timesteps(model: BaseAlgorithm) -> int:
    """The timesteps the model's current ``learn()`` runs to, counted from the run's start (``learn``'s own argument
    is what is left of the budget after a resume)."""
    return int(model._total_timesteps)


def restart_learning_rate(model: BaseAlgorithm) -> None:
    """Rebuild the model's learning-rate schedule from its ``learning_rate`` (set just before)."""
    model._setup_lr_schedule()


def wrap_learning_rate_update(model: BaseAlgorithm, after: Callable[[list[Any]], None]) -> None:
    """Run ``after(optimizers)`` each time stable-baselines3 sets the schedule's rate on the model's optimizers."""
    update = type(model)._update_learning_rate

    def update_then(self: Any, optimizers: Any) -> None:
        update(self, optimizers)
        after(optimizers if isinstance(optimizers, list) else [optimizers])

    model._update_learning_rate = types.MethodType(update_then, model)  # type: ignore[method-assign]


def unwrap_learning_rate_update(model: BaseAlgorithm) -> None:
    """Undo :func:`wrap_learning_rate_update` (the class's own update again)."""
    model.__dict__.pop("_update_learning_rate", None)


def tensorboard_writer(output_format: TensorBoardOutputFormat) -> SummaryWriter:
    """The ``SummaryWriter`` of a stable-baselines3 ``TensorBoardOutputFormat``."""
    return output_format.writer


def set_tensorboard_writer(output_format: TensorBoardOutputFormat, writer: SummaryWriter) -> None:
    """Make a stable-baselines3 ``TensorBoardOutputFormat`` write through ``writer`` (its own one closed)."""
    output_format.writer.close()
    output_format.writer = writer


def env_rng(env: gym.Env[Any, Any]) -> np.random.Generator | None:
    """The generator of a Gymnasium env's own randomness (initial states), or ``None`` before it is seeded."""
    return env.unwrapped._np_random


def set_env_rng(env: gym.Env[Any, Any], rng: np.random.Generator | None) -> None:
    """Give a Gymnasium env's own randomness this generator."""
    env.unwrapped._np_random = rng


def add_summary(writer: SummaryWriter, summary: Any, step: int) -> None:
    """Write a TensorBoard ``Summary`` protobuf through a torch ``SummaryWriter``."""
    writer._get_file_writer().add_summary(summary, step)


def update_count(model: BaseAlgorithm) -> int:
    """The gradient updates a stable-baselines3 model has made (``_n_updates``, saved in its zip's data)."""
    return int(model._n_updates)


def episode_count(model: BaseAlgorithm) -> int:
    """The episodes a stable-baselines3 model has finished (``_episode_num``, counted by off-policy algorithms)."""
    return int(model._episode_num)


def set_counts(model: BaseAlgorithm, n_updates: int, episode_num: int) -> None:
    """Give a rebuilt model the update and episode counts its saved self had (what ``load()`` restores)."""
    model._n_updates = n_updates
    model._episode_num = episode_num


def set_episode_infos(model: BaseAlgorithm, episodes: list[dict[str, float]]) -> None:
    """Give a rebuilt model the logging window of finished episodes its saved self had (``ep_info_buffer``)."""
    model.ep_info_buffer = deque(episodes, maxlen=model._stats_window_size)
    model.ep_success_buffer = deque(maxlen=model._stats_window_size)  # set with it, or learn() finds one missing


def torch_variables(model: BaseAlgorithm) -> dict[str, Any]:
    """The tensors a stable-baselines3 model saves outside its modules' state dicts (``_get_torch_save_params``'s
    second list: SAC's ``log_ent_coef`` or ``ent_coef_tensor``), by name."""
    names = model._get_torch_save_params()[1]
    return {name: functools.reduce(getattr, name.split("."), model) for name in names}
