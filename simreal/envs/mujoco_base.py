"""The robot's plain gymnasium MuJoCo env, and MuJoCo's warnings routed to Python's ``warnings``."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import re
import warnings
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import mujoco
from gymnasium.envs.registration import EnvCreator, EnvSpec

from simreal.errors import SpecError

if TYPE_CHECKING:
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    from simreal.envs.spec import RobotSpec

#: The time limit of a robot built from an entry point that names none.
DEFAULT_EPISODE_STEPS = 1000
#: ``package.module:EnvClass``: a dotted module name, a colon, a class name.
ENTRY_POINT_FORM = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")

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
    where = "robot" if spec.source.startswith("{") else spec.source or spec.robot
    gym_spec = base_env_spec(spec.gym_id, spec.entry_point, spec.max_episode_steps, spec.simreal_id, where)
    return gym.make(gym_spec, disable_env_checker=True, **{**spec.env_kwargs, **env_kwargs})


def base_env_spec(
    gym_id: str | None, entry_point: str | None, max_episode_steps: int | None, env_id: str, where: object = "robot"
) -> EnvSpec:
    """gymnasium's spec of a robot's plain env: the registered ``gym_id``'s, or one for ``entry_point``
    (``"package.module:EnvClass"``) with the time limit ``max_episode_steps`` (default
    :data:`DEFAULT_EPISODE_STEPS`) under the id ``env_id``. ``max_episode_steps`` also replaces a registered
    id's limit.

    The spec's entry point is the env class itself, checked by :func:`env_class` (a registered id's too, where it
    is a string), so gymnasium never resolves a string from a data file into something it calls.

    Raises:
        SpecError: naming ``where`` and the field: an entry point that is not a gymnasium env class.
        gymnasium.error.Error: an unknown id (gymnasium's own errors).
    """
    if gym_id is not None:
        registered = gym.spec(gym_id)
        steps = max_episode_steps or registered.max_episode_steps
        creator = registered.entry_point
        if isinstance(creator, str):  # a callable the user registered in Python is theirs to call
            creator = env_class(creator, where, f"gym_id: {gym_id!r}'s registered entry point")
        return dataclasses.replace(registered, entry_point=creator, order_enforce=False, max_episode_steps=steps)
    if entry_point is None:
        raise SpecError(f"{where}: entry_point: missing (or a registered 'gym_id')")
    return EnvSpec(
        id=env_id,
        entry_point=env_class(entry_point, where),
        max_episode_steps=max_episode_steps or DEFAULT_EPISODE_STEPS,
        order_enforce=False,
        disable_env_checker=True,
    )


def env_class(entry_point: str, where: object, field: str = "entry_point") -> EnvCreator:
    """The gymnasium env class an entry point names (what gymnasium's spec calls), checked before anything of it is
    called.

    ``"package.module:EnvClass"`` imports the module the file names and takes its attribute; anything but a
    subclass of :class:`gymnasium.Env` (a function such as ``os:system``, a module, an instance) is refused, so a
    data file can name an env to build and nothing else to run.

    Args:
        entry_point: ``"package.module:EnvClass"``.
        where: the file (or ``robot`` for a mapping) that names it, for messages.
        field: the field that names it.

    Raises:
        SpecError: naming ``where`` and ``field``: malformed, a module that does not import, no such attribute, or
            not an env class.
    """
    if not isinstance(entry_point, str) or not ENTRY_POINT_FORM.fullmatch(entry_point):
        raise SpecError(f"{where}: {field}: {entry_point!r} is not of the form 'package.module:EnvClass'")
    module_name, _, name = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a user's module: any failure to import it is bad input, said on one line
        raise SpecError(f"{where}: {field}: cannot make {entry_point!r}: {error_line(exc)}") from None
    try:
        found = getattr(module, name)
    except Exception:  # noqa: BLE001 - AttributeError, or whatever the module's own __getattr__ raises
        missing = f"module {module_name!r} has no {name!r}"
        raise SpecError(f"{where}: {field}: cannot make {entry_point!r}: {missing}") from None
    if not (isinstance(found, type) and issubclass(found, gym.Env)):
        what = "a class" if isinstance(found, type) else f"a {type(found).__name__}"
        raise SpecError(
            f"{where}: {field}: {entry_point!r} is {what}, not a gymnasium.Env subclass "
            "(an entry point names an env class; simreal calls nothing else a file names)"
        )
    # gymnasium types its creators as a keyword-only protocol, which a class's constructor is
    return cast(EnvCreator, found)


def error_line(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def episode_limit(spec: RobotSpec) -> int:
    """The robot's time limit in control steps."""
    if spec.gym_id is None:  # no class to import for a number the spec holds
        return spec.max_episode_steps or DEFAULT_EPISODE_STEPS
    limit = base_env_spec(spec.gym_id, None, spec.max_episode_steps, spec.simreal_id).max_episode_steps
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
