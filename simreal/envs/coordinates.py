"""A parameter's value as learning and identification see it (its *coordinate*): a multiplier's logarithm, an
offset divided by its scale; zero is nominal either way. Policies' dynamics inputs, UP-OSI's targets, sysid's search
and the estimators' errors all go through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from simreal.envs.spec import RobotSpec


def offset_scales(spec: RobotSpec, names: Sequence[str]) -> dict[str, float]:
    """The offsets among ``names`` (parameters of ``spec``; others, effects included, are left out), by name ->
    :attr:`ParameterSpec.scale`: what :func:`to_coordinates` needs besides the names."""
    return {
        name: spec.parameters[name].scale for name in names if name in spec.parameters and spec.parameters[name].offset
    }


def to_coordinates(names: Sequence[str], values: Any, offsets: Mapping[str, float]) -> np.ndarray:
    """The values of ``names`` (last axis of ``values``) as learning and identification see them: a multiplier's
    logarithm, an offset divided by its scale (``offsets``: name -> scale, see :func:`offset_scales`). Zero is the
    nominal value either way."""
    values = np.asarray(values, dtype=np.float64)
    if not offsets:
        return np.log(values)
    scale = np.array([offsets.get(name, 0.0) for name in names])
    is_offset = scale > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(is_offset, values / np.where(is_offset, scale, 1.0), np.log(np.where(is_offset, 1.0, values)))


def from_coordinates(names: Sequence[str], coordinates: Any, offsets: Mapping[str, float]) -> np.ndarray:
    """The inverse of :func:`to_coordinates`."""
    coordinates = np.asarray(coordinates, dtype=np.float64)
    if not offsets:
        return np.exp(coordinates)
    scale = np.array([offsets.get(name, 0.0) for name in names])
    return np.where(scale > 0, coordinates * scale, np.exp(np.where(scale > 0, 0.0, coordinates)))


def estimate_errors(names: Sequence[str], estimates: Any, truths: Any, offsets: Mapping[str, float]) -> np.ndarray:
    """How far estimates lie from the truth, both in coordinates (:func:`to_coordinates`): a multiplier's relative
    error ``|exp(e - t) - 1|``; an offset's absolute error as a fraction of its scale ``|e - t|``."""
    difference = np.asarray(estimates, dtype=np.float64) - np.asarray(truths, dtype=np.float64)
    relative = np.abs(np.exp(difference) - 1.0)
    if not offsets:
        return relative
    is_offset = np.array([offsets.get(name, 0.0) > 0 for name in names])
    return np.where(is_offset, np.abs(difference), relative)
