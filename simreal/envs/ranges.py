"""Training ranges checked against a robot's catalogue: the distributions of the parameters a run randomizes
(defaults, overrides, limits) and the per-episode ranges of unmodeled effects. Every problem is a
:class:`~simreal.errors.SpecError` naming the field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from simreal.envs.spec import (
    EFFECT_NAMES,
    MAX_DELAY,
    STEP_EFFECTS,
    ParameterRange,
    ParameterSpec,
    RobotSpec,
    check_multiplier,
    format_validation_error,
)
from simreal.errors import SpecError, shown, unknown_name


def effect_range(name: str, value: Any) -> ParameterRange:
    """The per-episode distribution of effect ``name`` from ``[low, high]``: uniform, the delays over whole steps.

    Raises:
        ValueError: an unknown effect, a malformed or negative range, a delay that is not whole steps or above the
            maximum.
    """
    if name not in EFFECT_NAMES:
        raise ValueError(unknown_name("effect", name, EFFECT_NAMES))
    if isinstance(value, ParameterRange):
        value = [value.low, value.high]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"expected a value or [low, high], got {shown(value)}")
    try:
        low, high = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise ValueError(f"expected two numbers [low, high], got {shown(value)}") from None
    delay = name in STEP_EFFECTS
    if not (low >= 0 and high < float("inf")):  # also false for NaN
        raise ValueError(f"[{low:g}, {high:g}]: bounds must be finite and >= 0")
    if low > high:
        raise ValueError(f"range low {low:g} > high {high:g}")
    if delay and not (low.is_integer() and high.is_integer()):
        raise ValueError(f"[{low:g}, {high:g}]: a delay is a whole number of control steps")
    if delay and high > MAX_DELAY:
        raise ValueError(f"{high:g} steps is above the maximum delay of {MAX_DELAY}")
    return ParameterRange(low=low, high=high, distribution="integer" if delay else "uniform")


def effect_ranges(ranges: Mapping[str, Any], where: str = "effects") -> dict[str, ParameterRange]:
    """Per-episode distributions of effects, name -> ``[low, high]`` (see :func:`effect_range`), in the order of
    :data:`EFFECT_NAMES`.

    Raises:
        SpecError: naming ``where`` and the effect.
    """
    result = {}
    for name, value in ranges.items():
        try:
            result[name] = effect_range(name, value)
        except ValueError as exc:
            raise SpecError(f"{where}.{name}: {exc}") from None
    return {name: result[name] for name in EFFECT_NAMES if name in result}


def resolve_ranges(
    spec: RobotSpec,
    parameters: Sequence[str] | None = None,
    ranges: Mapping[str, Any] | None = None,
    parameters_source: object = "parameters",
    ranges_source: object = "ranges",
) -> dict[str, ParameterRange]:
    """The training distributions for ``spec``: all or some parameters, with ranges overriding the defaults.

    Args:
        spec: the robot.
        parameters: names to randomize; ``None`` means every catalogue parameter that is randomized by default.
        ranges: per-name overrides, each ``[low, high]`` or a mapping of :class:`ParameterRange` fields (``low``,
            ``high``, ``distribution``...) or of ``range``/``distribution``. Named parameters are randomized even if
            ``parameters`` leaves them out.
        parameters_source, ranges_source: how to name the origin of ``parameters`` and of ``ranges`` in errors.

    Raises:
        SpecError: unknown names, bad ranges, ranges outside the parameter's limits.
    """
    names = default_parameters(spec) if parameters is None else list(parameters)
    for index, name in enumerate(names):
        check_parameter(spec, name, f"{parameters_source}.{index}")
    result = {name: spec.parameters[name].sampling for name in names}
    for name, value in (ranges or {}).items():
        check_parameter(spec, name, f"{ranges_source}.{name}")
        result[name] = parse_range(spec.parameters[name], value, f"{ranges_source}.{name}")
    return {name: result[name] for name in spec.parameters if name in result}


def default_parameters(spec: RobotSpec) -> list[str]:
    """The parameters randomized and identified when none are named (``default: true``), in catalogue order."""
    return [name for name, param in spec.parameters.items() if param.default]


def check_parameter(spec: RobotSpec, name: object, where: str) -> None:
    """Raise :class:`SpecError` prefixed with ``where`` when ``name`` is not one of the robot's parameters."""
    if name not in spec.parameters:
        raise SpecError(f"{where}: {unknown_name('parameter', name, spec.parameters, spec.robot)}")


def parse_range(param: ParameterSpec, value: Any, where: str) -> ParameterRange:
    """Parse one range override for ``param`` and check it against the parameter's kind and limits."""
    if isinstance(value, ParameterRange):
        fields: dict[str, Any] = value.model_dump()
    elif isinstance(value, Mapping):
        fields = dict(value)
        if "range" in fields:
            low_high = fields.pop("range")
            if not isinstance(low_high, (list, tuple)) or len(low_high) != 2:
                raise SpecError(f"{where}: range: expected [low, high]")
            fields["low"], fields["high"] = low_high
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        fields = {"low": value[0], "high": value[1]}
    else:
        raise SpecError(f"{where}: expected [low, high] or a mapping with low/high, got {shown(value)}")
    try:
        parsed = ParameterRange.model_validate(fields)
        check_multiplier(param.kind, parsed.low)
    except ValidationError as exc:
        raise SpecError(format_validation_error(where, exc)) from None
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from None
    low, high = param.hard_limits
    if not (low <= parsed.low and parsed.high <= high):
        raise SpecError(f"{where}: range [{parsed.low}, {parsed.high}] is outside the limits [{low}, {high}]")
    return parsed
