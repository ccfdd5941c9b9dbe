"""The protocol every randomization schedule follows, :class:`Schedule`.

A schedule lives in the training process, decides the ranges and the sampler the envs draw with
(:meth:`Schedule.sampler`, pushed to every env through the VecEnv interface by
:class:`~simreal.train.callbacks.ScheduleCallback`), hears every finished episode (:meth:`Schedule.observe`), and
keeps its state as JSON so that checkpoints carry it. The callback knows no schedule by name; the schedules
themselves are in :mod:`~simreal.train.schedules` and :mod:`~simreal.train.weakest_region`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from simreal.envs.dynamics import DynamicsSampler
from simreal.envs.spec import ParameterRange


@dataclass(frozen=True)
class Observation:
    """What a schedule made of a finished episode: whether its ranges changed, and scalars to log."""

    changed: bool = False
    scalars: dict[str, float] = field(default_factory=dict)


class Schedule(ABC):
    """How the sampled ranges evolve during training: the protocol every schedule follows."""

    @abstractmethod
    def ranges(self) -> dict[str, ParameterRange]:
        """The ranges to draw from now."""

    def sampler(self) -> DynamicsSampler:
        """What the envs draw each episode's dynamics with (pushed to every env whenever the ranges change)."""
        return DynamicsSampler(self.ranges())

    def update(self, progress: float) -> bool:
        """Advance to ``progress`` (fraction of training done); ``True`` when the ranges changed."""
        return False

    def observe(self, info: Mapping[str, Any], episode_return: float) -> Observation:
        """Hear a finished training episode: its last ``info`` and its return."""
        return Observation()

    def scalars(self) -> dict[str, float]:
        """Scalars to log beside the ranges at every rollout (TensorBoard tag -> value)."""
        return {}

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps, JSON-ready."""
        return {}

    def restore(self, state: Mapping[str, Any]) -> None:  # noqa: B027 (most schedules have nothing to restore)
        """Continue from :meth:`state`."""
