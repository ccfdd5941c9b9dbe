"""The public env API: :func:`make`, :func:`get_dynamics`, :func:`set_dynamics`, and gymnasium registration."""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import mujoco
from gymnasium.envs.registration import EnvSpec
from pydantic import ValidationError

from simreal.dynamics import DynamicsModel
from simreal.errors import SimrealError, SpecError
from simreal.spec import Effects, RobotSpec, format_validation_error, load_robot, load_target, resolve_ranges
from simreal.wrappers import ActionDelay, ActionNoise, ObservationNoise, RandomizedDynamics


def make(
    robot: str,
    target: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    parameters: Sequence[str] | None = None,
    ranges: Mapping[str, Any] | None = None,
    nominal: bool = False,
    effects: Effects | Mapping[str, Any] | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Make a simreal env: domain-randomized, nominal, or a fixed target.

    Args:
        robot: a shipped robot (``hopper``, ``halfcheetah``, ``walker2d``, ``ant``, ``inverted_pendulum``).
        target: a shipped target name (``mild``, ``moderate``, ``severe``), a target YAML path, or a mapping in the
            target form. The env then has the target's fixed dynamics and effects.
        parameters: names of the parameters to randomize (default: every parameter of the robot). Others stay
            nominal.
        ranges: per-parameter overrides of the default training range: ``[low, high]`` or a mapping with
            ``low``/``high`` (or ``range``) and optionally ``distribution``, ``mean``, ``std``.
        nominal: no randomization at all: nominal dynamics.
        effects: unmodeled effects to add (:class:`~simreal.spec.Effects` fields). With a target, they replace the
            target's effects.
        **env_kwargs: passed to the gymnasium env's constructor (e.g. ``render_mode="rgb_array"``), over the robot
            spec's ``env_kwargs``.

    Returns:
        The env. Its dynamics are readable and settable with :func:`get_dynamics` and :func:`set_dynamics`.

    Raises:
        SpecError: unknown robot, target or parameter; invalid range, multiplier, or target file.
    """
    spec = load_robot(robot)
    if target is not None:
        if parameters is not None or ranges is not None or nominal:
            raise SpecError("make: a target has fixed dynamics: give no parameters, ranges or nominal with it")
        _, target_spec = load_target(spec, target)
        fixed, randomized = target_spec.parameters, None
        chosen_effects = target_spec.effects if effects is None else _effects(effects)
    else:
        fixed = {}
        randomized = None if nominal else resolve_ranges(spec, parameters, ranges)
        chosen_effects = _effects(effects) if effects is not None else Effects()

    base = make_base_env(spec, **env_kwargs)
    dynamics = RandomizedDynamics(base, DynamicsModel(spec, base.unwrapped.model), randomized, fixed)
    arguments = {"target": target, "parameters": parameters, "ranges": ranges, "nominal": nominal or None}
    dynamics.spec = EnvSpec(
        id=spec.simreal_id,
        entry_point=_registered_env,
        max_episode_steps=None,
        order_enforce=False,
        disable_env_checker=True,
        kwargs={
            "robot": robot,
            **{k: v for k, v in arguments.items() if v is not None},
            **_effects_kwargs(effects),
            **env_kwargs,
        },
    )
    return add_effects(dynamics, chosen_effects)


def _effects_kwargs(effects: Effects | Mapping[str, Any] | None) -> dict[str, Any]:
    if effects is None:
        return {}
    return {"effects": effects.model_dump() if isinstance(effects, Effects) else dict(effects)}


def make_base_env(spec: RobotSpec, **env_kwargs: Any) -> gym.Env:
    """The robot's plain gymnasium env with its time limit, MuJoCo's warnings routed to Python's.

    gymnasium's passive checker and order enforcing are pass-through layers on every step (about 0.3% of Hopper's
    step time each): the test suite runs the full env checker on every robot and target instead, and
    :class:`~simreal.wrappers.RandomizedDynamics` refuses a step before the first reset itself.
    """
    route_mujoco_warnings()
    gym_spec = dataclasses.replace(gym.spec(spec.gym_id), order_enforce=False)
    return gym.make(gym_spec, disable_env_checker=True, **{**spec.env_kwargs, **env_kwargs})


class MujocoWarning(RuntimeWarning):
    """A warning MuJoCo raised (e.g. an unstable simulation, which simreal also reports in ``info``)."""


_log = logging.getLogger(__name__)


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


def _effects(effects: Effects | Mapping[str, Any]) -> Effects:
    if isinstance(effects, Effects):
        return effects
    try:
        return Effects.model_validate(dict(effects))
    except ValidationError as exc:
        raise SpecError(format_validation_error("effects", exc)) from None


def add_effects(env: gym.Env, effects: Effects) -> gym.Env:
    """Wrap ``env`` with the active unmodeled effects: actuator noise, then delay, then observation noise."""
    if effects.action_noise_std > 0:
        env = ActionNoise(env, effects.action_noise_std)
    if effects.action_delay_steps > 0:
        env = ActionDelay(env, effects.action_delay_steps)
    if effects.obs_noise_std > 0:
        env = ObservationNoise(env, effects.obs_noise_std)
    return env


def _is_vec_env(env: Any) -> bool:
    return hasattr(env, "env_method") and hasattr(env, "num_envs")


def get_dynamics(env: Any) -> dict[str, float] | list[dict[str, float]]:
    """The multipliers in force in a simreal env, through any stack of wrappers.

    Args:
        env: a gymnasium env made by simreal (wrapped or not), or a stable-baselines3 VecEnv of them.

    Returns:
        name -> multiplier for one env; a list of those, one per env, for a VecEnv.

    Raises:
        SimrealError: the env is not a simreal env.
    """
    if _is_vec_env(env):
        return env.env_method("get_dynamics")
    return _dynamics_method(env, "get_dynamics")()


def set_dynamics(env: Any, values: Mapping[str, float] | Sequence[Mapping[str, float]]) -> None:
    """Set multipliers now in a simreal env, through any stack of wrappers or a VecEnv.

    A randomized env draws new values at its next reset; a target or nominal env keeps them.

    Args:
        env: as :func:`get_dynamics`.
        values: name -> multiplier (others unchanged); for a VecEnv, one mapping for all envs or one per env.

    Raises:
        SpecError: unknown parameter or invalid multiplier.
        SimrealError: the env is not a simreal env.
    """
    if _is_vec_env(env):
        if isinstance(values, Mapping):
            env.env_method("set_dynamics", dict(values))
        else:
            if len(values) != env.num_envs:
                raise SimrealError(f"set_dynamics: got {len(values)} mappings for {env.num_envs} envs")
            for index, one in enumerate(values):
                env.env_method("set_dynamics", dict(one), indices=[index])
        return
    if not isinstance(values, Mapping):
        raise SimrealError("set_dynamics: a single env takes one mapping of name -> multiplier")
    _dynamics_method(env, "set_dynamics")(values)


def _dynamics_method(env: gym.Env, name: str) -> Any:
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        raise SimrealError(f"{type(env).__name__} is not a simreal env (no RandomizedDynamics wrapper)") from None


def _registered_env(robot: str, **kwargs: Any) -> gym.Env:
    return make(robot, **kwargs)


def register_envs() -> None:
    """Register every shipped robot with gymnasium as ``simreal/<Robot>-v0`` (idempotent)."""
    from simreal.spec import robot_names

    for robot in robot_names():
        env_id = load_robot(robot).simreal_id
        if env_id not in gym.registry:
            # simreal.make already adds order enforcing and the time limit inside
            gym.register(
                id=env_id,
                entry_point=_registered_env,
                kwargs={"robot": robot},
                order_enforce=False,
                disable_env_checker=True,
            )
