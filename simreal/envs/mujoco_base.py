"""The robot's plain gymnasium MuJoCo env, and MuJoCo's warnings routed to Python's ``warnings``."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import mujoco
from gymnasium.envs.registration import EnvSpec

if TYPE_CHECKING:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    from simreal.envs.spec import RobotSpec

#: The time limit of a robot built from an entry point that names none.
DEFAULT_EPISODE_STEPS = 1000

_log = logging.getLogger(__name__)


class MujocoWarning(RuntimeWarning):
    """A warning MuJoCo raised (e.g. an unstable simulation, which simreal also reports in ``info``)."""


def make_base_env(spec: RobotSpec, **env_kwargs: Any) -> gym.Env:
    """The robot's plain gymnasium env with its time limit, MuJoCo's warnings routed to Python's.

    gymnasium's passive checker and order enforcing are pass-through layers on every step (about 0.3% of Hopper's
    step time each): the test suite runs the full env checker on every robot and target instead, and
    :class:`~simreal.envs.randomized.RandomizedDynamics` refuses a step before the first reset itself.
    """
    route_mujoco_warnings()
    gym_spec = base_env_spec(spec.gym_id, spec.entry_point, spec.max_episode_steps, spec.simreal_id)
    return gym.make(gym_spec, disable_env_checker=True, **{**spec.env_kwargs, **env_kwargs})


def base_env_spec(gym_id: str | None, entry_point: str | None, max_episode_steps: int | None, env_id: str) -> EnvSpec:
    """gymnasium's spec of a robot's plain env: the registered ``gym_id``'s, or one for ``entry_point``
    (``"package.module:EnvClass"``) with the time limit ``max_episode_steps`` (default
    :data:`DEFAULT_EPISODE_STEPS`) under the id ``env_id``. ``max_episode_steps`` also replaces a registered
    id's limit. Raises gymnasium's errors for an unknown id."""
    if gym_id is not None:
        registered = gym.spec(gym_id)
        steps = max_episode_steps or registered.max_episode_steps
        return dataclasses.replace(registered, order_enforce=False, max_episode_steps=steps)
    return EnvSpec(
        id=env_id,
        entry_point=entry_point,
        max_episode_steps=max_episode_steps or DEFAULT_EPISODE_STEPS,
        order_enforce=False,
        disable_env_checker=True,
    )


def episode_limit(spec: RobotSpec) -> int:
    """The robot's time limit in control steps."""
    limit = base_env_spec(spec.gym_id, spec.entry_point, spec.max_episode_steps, spec.simreal_id).max_episode_steps
    return int(limit or DEFAULT_EPISODE_STEPS)


def _forward_mujoco_warning(message: str) -> None:
    # deprecations in gymnasium's model files (settotalmass in half_cheetah.xml) are not the user's to fix
    if "deprecated" in message:
        _log.debug("MuJoCo: %s", message)
    else:
        warnings.warn(message, MujocoWarning, stacklevel=2)


def route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings to Python's ``warnings`` instead of stdout and a ``MUJOCO_LOG.TXT`` in the working
    folder, unless the process already installed a handler of its own."""
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_forward_mujoco_warning)


def mujoco_env(env: gym.Env) -> MujocoEnv:
    """The MuJoCo env at the bottom of a wrapper stack (its ``model``, ``data``, ``dt`` and ``frame_skip``)."""
    return cast("MujocoEnv", env.unwrapped)


def box_space(space: gym.Space[Any]) -> gym.spaces.Box:
    """A MuJoCo env's observation or action space: a box (its ``low``, ``high`` and ``shape``)."""
    return cast(gym.spaces.Box, space)
