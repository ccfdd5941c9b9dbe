"""The robot's plain gymnasium MuJoCo env, and MuJoCo's warnings routed to Python's ``warnings``."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any

import gymnasium as gym
import mujoco

from simreal.envs.spec import RobotSpec

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
    gym_spec = dataclasses.replace(gym.spec(spec.gym_id), order_enforce=False)
    return gym.make(gym_spec, disable_env_checker=True, **{**spec.env_kwargs, **env_kwargs})


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
