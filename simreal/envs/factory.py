"""The public env API: :func:`make`, :func:`get_dynamics`, :func:`set_dynamics`; and :func:`make_env`, which
builds an env from an already resolved robot spec, ranges and effects (what training and evaluation use)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.wrappers import OrderEnforcing
from pydantic import ValidationError

from simreal.envs.dynamics import DynamicsModel
from simreal.envs.effects import add_effects
from simreal.envs.history import HistoryObservation
from simreal.envs.mujoco_base import box_space, make_base_env, mujoco_env
from simreal.envs.privileged import DynamicsInput, DynamicsInputSpec, PrivilegedInput
from simreal.envs.randomized import RandomizedDynamics
from simreal.envs.ranges import effect_ranges as spec_effect_ranges
from simreal.envs.ranges import resolve_ranges
from simreal.envs.registration import ENTRY_POINT
from simreal.envs.rendering import follow_robot, render_modes, require_rendering
from simreal.envs.robots import load_robot, load_target, shipped_robot_of
from simreal.envs.spec import EFFECT_NAMES, Effects, ParameterRange, RobotSpec, format_validation_error
from simreal.envs.streams import PartOfTheEnv
from simreal.errors import SimrealError, SpecError


def make(
    robot: str | os.PathLike[str] | Mapping[str, Any],
    target: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    parameters: Sequence[str] | None = None,
    ranges: Mapping[str, Any] | None = None,
    nominal: bool = False,
    effects: Effects | Mapping[str, Any] | None = None,
    effect_ranges: Mapping[str, Any] | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Make a simreal env: domain-randomized, nominal, or a fixed target.

    With a render mode, the camera follows the robot's root body (:func:`~simreal.envs.rendering.follow_robot`).
    ``env.metadata["render_modes"]`` lists the modes this process can render
    (:func:`~simreal.envs.rendering.render_modes`).

    Args:
        robot: a shipped robot (``hopper``, ``pusher``...: every gymnasium MuJoCo v5 robot, ``simreal envs`` lists
            them), the path of a robot YAML file of your own, or such a robot inline as a mapping (e.g.
            ``{"entry_point": "my_package.envs:MyRobotEnv", "kwargs": {...}}``: the catalogue generated whole).
        target: a shipped target name (``mild``, ``moderate``, ``severe``), a target YAML path, or a mapping in the
            target form. The env then has the target's fixed dynamics and effects.
        parameters: names of the parameters to randomize (default: every parameter of the robot). Others stay
            nominal.
        ranges: per-parameter overrides of the default training range: ``[low, high]`` or a mapping with
            ``low``/``high`` (or ``range``) and optionally ``distribution``, ``mean``, ``std``.
        nominal: no randomization at all: nominal dynamics.
        effects: unmodeled effects to add (:class:`~simreal.envs.spec.Effects` fields). With a target, they replace
            the target's effects.
        effect_ranges: effects drawn anew every episode, name -> ``[low, high]`` (e.g.
            ``{"action_delay_steps": [0, 2], "obs_noise_std": [0, 0.02]}``); the delays are drawn over whole steps.
            They replace the same fields of ``effects``.
        **env_kwargs: passed to the gymnasium env's constructor (e.g. ``render_mode="rgb_array"``), over the robot
            spec's ``env_kwargs``.

    Returns:
        The env. Its dynamics are readable and settable with :func:`get_dynamics` and :func:`set_dynamics`.

    Raises:
        SpecError: unknown robot, target, parameter or effect; invalid range, multiplier, or target file.
        SetupError: a render mode asked for where this process cannot render (``MUJOCO_GL``), or ``human`` without
            a display.
    """
    spec = load_robot(robot)
    randomized, fixed, chosen, record = _resolve(spec, target, parameters, ranges, nominal, effects, effect_ranges)
    return make_env(spec, randomized, fixed, chosen, record=record, **env_kwargs)


def wrap(
    env: gym.Env,
    target: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    robot: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    parameters: Sequence[str] | None = None,
    ranges: Mapping[str, Any] | None = None,
    nominal: bool = False,
    effects: Effects | Mapping[str, Any] | None = None,
    effect_ranges: Mapping[str, Any] | None = None,
) -> gym.Env:
    """Make a gymnasium MuJoCo env you built yourself (a ``MujocoEnv``, wrapped or not) a simreal env: its
    catalogue generated from its model, randomized, nominal or on a target as :func:`make` does.

    Args:
        env: the env; simreal wraps it and changes its model in place from then on.
        target, parameters, ranges, nominal, effects, effect_ranges: as :func:`make`.
        robot: the robot (a name, a robot file or an inline mapping) that describes it: overrides, exclusions,
            targets. Default: the shipped robot of the env's registered id when one has it (``Hopper-v5`` is
            ``hopper``), else the id or the env's class as the entry point, every kind generated.

    Raises:
        SpecError: the env is not a MuJoCo env, or as :func:`make`.
    """
    if robot is None:
        inner, registered = env.unwrapped, env.spec
        if registered is not None and registered.id in gym.registry:
            robot = shipped_robot_of(registered.id) or {"gym_id": registered.id, "env_kwargs": dict(registered.kwargs)}
        else:
            robot = {"entry_point": f"{type(inner).__module__}:{type(inner).__qualname__}"}
    spec = load_robot(robot)
    randomized, fixed, chosen, record = _resolve(spec, target, parameters, ranges, nominal, effects, effect_ranges)
    return make_env(spec, randomized, fixed, chosen, record=record, base=env)


def _resolve(
    spec: RobotSpec,
    target: str | os.PathLike[str] | Mapping[str, Any] | None,
    parameters: Sequence[str] | None,
    ranges: Mapping[str, Any] | None,
    nominal: bool,
    effects: Effects | Mapping[str, Any] | None,
    effect_ranges: Mapping[str, Any] | None,
) -> tuple[dict[str, ParameterRange] | None, Mapping[str, float], Effects, dict[str, Any]]:
    """:func:`make`'s arguments resolved: the ranges drawn per episode, the fixed multipliers, the effects, and the
    arguments that rebuild the env."""
    if target is not None:
        if parameters is not None or ranges is not None or nominal or effect_ranges:
            raise SpecError(
                "make: a target has fixed dynamics: give no parameters, ranges, effect_ranges or nominal with it"
            )
        _, target_spec = load_target(spec, target)
        fixed, randomized = target_spec.parameters, None
        chosen_effects = target_spec.effects if effects is None else as_effects(effects)
    else:
        fixed = {}
        randomized = None if nominal else resolve_ranges(spec, parameters, ranges)
        chosen_effects = as_effects(effects) if effects is not None else Effects()
    drawn = spec_effect_ranges(effect_ranges or {}, "effect_ranges")
    if drawn:
        randomized = {**(randomized or {}), **drawn}
    arguments = {"target": target, "parameters": parameters, "ranges": ranges, "nominal": nominal or None}
    record = {k: v for k, v in arguments.items() if v is not None}
    if effects is not None:
        record["effects"] = effects.model_dump() if isinstance(effects, Effects) else dict(effects)
    if drawn:
        record["effect_ranges"] = {name: [r.low, r.high] for name, r in drawn.items()}
    return randomized, fixed, chosen_effects, record


def make_env(
    spec: RobotSpec,
    ranges: Mapping[str, ParameterRange] | None = None,
    fixed: Mapping[str, float] | None = None,
    effects: Effects | None = None,
    *,
    history: int = 0,
    dynamics_input: DynamicsInputSpec | None = None,
    record: dict[str, Any] | None = None,
    base: gym.Env | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """Build an env from resolved pieces: nothing is loaded or re-validated.

    Args:
        spec: the robot.
        ranges: the distributions drawn at every reset (``None`` or empty: fixed dynamics); they may name effects
            (:data:`~simreal.envs.spec.EFFECT_NAMES`) as well as parameters.
        fixed: multipliers of the parameters that are not drawn.
        effects: unmodeled effects (those ``ranges`` name are drawn per episode instead).
        history: > 0 wraps the env in :class:`~simreal.envs.history.HistoryObservation` with this many steps, outside
            the effects (the policy sees the observations it got and the actions it sent).
        dynamics_input: the policy also sees the episode's log-multipliers, true or estimated
            (:class:`~simreal.envs.privileged.DynamicsInput`, outside the effects, inside the history); an
            asymmetric critic's privileged inputs come last, outside the history
            (:class:`~simreal.envs.privileged.PrivilegedInput`).
        record: the :func:`make` arguments that rebuild this env (``env.spec.kwargs``); by default they are
            written from the pieces themselves.
        base: the robot's plain env, already built (:func:`wrap`); default: built from the spec.
        **env_kwargs: passed to the gymnasium env's constructor.
    """
    render_mode = env_kwargs.get("render_mode")
    if render_mode is not None:
        require_rendering(render_mode)
    effects = effects or Effects()
    every_range = ranges or {}
    drawn = [name for name in every_range if name in EFFECT_NAMES]
    if record is None:
        record = {"effects": effects.model_dump()}
        physics = {n: r for n, r in every_range.items() if n not in EFFECT_NAMES}
        if drawn:
            record["effect_ranges"] = {name: [every_range[name].low, every_range[name].high] for name in drawn}
        if physics:
            record.update(parameters=list(physics), ranges={n: r.model_dump() for n, r in physics.items()})
        elif drawn:
            record["nominal"] = True
        else:
            record["target"] = {"parameters": dict(fixed or {}), "effects": effects.model_dump()}
    if base is None:
        base = make_base_env(spec, **env_kwargs)
    if render_mode is not None:
        follow_robot(base, _tracked_body(env_kwargs))
    dynamics = RandomizedDynamics(base, DynamicsModel(spec, mujoco_env(base).model), ranges, fixed)
    # only the modes that can work in this process: gymnasium's check_env renders every declared mode
    dynamics.metadata = {**dynamics.metadata, "render_modes": render_modes()}
    dynamics.spec = EnvSpec(
        id=spec.simreal_id,
        entry_point=ENTRY_POINT,
        max_episode_steps=None,
        order_enforce=False,
        disable_env_checker=True,
        kwargs={"robot": spec.reference, **record, **env_kwargs},
    )
    env = add_effects(dynamics, effects, drawn)
    if dynamics_input is not None and dynamics_input.adaptive:
        offsets = dict(dynamics_input.offsets)
        env = DynamicsInput(env, dynamics_input.names, dynamics_input.estimator, dynamics_input.history, offsets)
    if history > 0:
        env = HistoryObservation(env, history)
    if dynamics_input is not None and dynamics_input.privileged is not None:
        env = PrivilegedInput(env, dynamics_input.privileged)
    return OrderEnforced(env)


def robot_sizes(spec: RobotSpec) -> tuple[int, int]:
    """The sizes of the robot's own observation and action (the env without any policy input around it)."""
    env = make_base_env(spec)
    try:
        return int(np.prod(box_space(env.observation_space).shape)), int(np.prod(box_space(env.action_space).shape))
    finally:
        env.close()


class OrderEnforced(PartOfTheEnv, OrderEnforcing):
    """gymnasium's :class:`~gymnasium.wrappers.OrderEnforcing` as part of a simreal env: a step (or render) before the
    first reset raises :class:`~gymnasium.error.ResetNeeded` whatever the stack inside, as ``gym.make`` envs do. The
    spec stays the inner one (``order_enforce=False`` there), so ``gym.make(env.spec)`` does not add a second one."""


def _tracked_body(env_kwargs: Mapping[str, Any]) -> int | None:
    """The body the caller's own ``default_camera_config`` names (``trackbodyid``), or ``None``: the root body."""
    config = env_kwargs.get("default_camera_config") or {}
    body = config.get("trackbodyid")
    return None if body is None else int(body)


def as_effects(effects: Effects | Mapping[str, Any]) -> Effects:
    """Validate effects given as a mapping (raises :class:`SpecError` naming the field)."""
    if isinstance(effects, Effects):
        return effects
    try:
        return Effects.model_validate(dict(effects))
    except ValidationError as exc:
        raise SpecError(format_validation_error("effects", exc)) from None


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
