"""A policy's input, built from what a robot gives: its layout as a value (:class:`InputLayout`: every part's size
carried, none recomputed) and the builder that turns a robot's observations and the actions sent into exactly the
vector the policy was trained on (:class:`PolicyInput`), without the training wrappers.

The layout, in order (the wrapper stack :func:`~simreal.envs.factory.make_env` builds for training):

1. the robot's observation ``o`` (after the effects: what the robot reports);
2. an adaptive policy's log-multipliers ``z`` of ``dynamics`` (an offset divided by its scale instead:
   :func:`~simreal.envs.coordinates.to_coordinates`; true, estimated from the last observations and actions, or unread:
   RMA's adaptation module never reads them);
3. RMA's raw history: the last ``raw_history`` observations and actions;
4. all of that, stacked over the last ``history`` steps with the actions sent
   (:class:`~simreal.envs.history.History`'s layout);
5. an asymmetric critic's ``privileged`` inputs: zeros, never read by the actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from simreal.envs.coordinates import to_coordinates
from simreal.envs.history import History
from simreal.envs.privileged import DynamicsEstimator
from simreal.errors import DataError

#: Where an adaptive policy's log-multipliers come from: the episode's truth (a simulator only), its estimator, or
#: nowhere (RMA once adapting: its adaptation module reads the history instead; zeros, or the truth where an env
#: reports it, only so that the estimate's error can be measured).
DynamicsSource = Literal["none", "true", "estimated", "unread"]


@dataclass(frozen=True)
class InputLayout:
    """The parts of a policy's input and their sizes (see the module docstring for their order).

    Attributes:
        observation: size of the robot's observation.
        action: size of an action.
        dynamics: the parameters whose log-multipliers follow the observation (empty: none).
        source: where those come from.
        estimator_history: steps of observations and actions the estimator reads (``source == "estimated"``).
        raw_history: steps of raw history after them (RMA; 0: none).
        history: steps the whole is stacked over (0: not stacked).
        privileged: an asymmetric critic's inputs at the end (zeros).
        offsets: the offsets among ``dynamics``, ``(name, scale)`` pairs
            (:func:`~simreal.envs.coordinates.offset_scales`).
    """

    observation: int
    action: int
    dynamics: tuple[str, ...] = ()
    source: DynamicsSource = "none"
    estimator_history: int = 0
    raw_history: int = 0
    history: int = 0
    privileged: int = 0
    offsets: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if bool(self.dynamics) != (self.source != "none"):
            raise ValueError(f"InputLayout: dynamics {list(self.dynamics)} with source {self.source!r}")
        if (self.source == "estimated") != (self.estimator_history > 0):
            raise ValueError(f"InputLayout: source {self.source!r} with estimator_history {self.estimator_history}")

    @property
    def step_size(self) -> int:
        """One step's input before the history stacks it: ``o``, ``z`` and the raw history."""
        return self.observation + len(self.dynamics) + self.raw_history * (self.observation + self.action)

    @property
    def size(self) -> int:
        """The whole input's size."""
        stacked = self.history * (self.step_size + self.action) if self.history else self.step_size
        return stacked + self.privileged

    def as_dict(self) -> dict[str, Any]:
        """Plain types (a manifest's ``input``), with the total ``size``."""
        return {**asdict(self), "dynamics": list(self.dynamics), "offsets": dict(self.offsets), "size": self.size}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputLayout:
        """The layout :meth:`as_dict` wrote (its ``size`` checked against the parts').

        Raises:
            ValueError: a field missing, of the wrong type, or inconsistent.
        """
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        offsets = tuple((str(k), float(v)) for k, v in dict(fields.get("offsets", {})).items())
        layout = cls(**{**fields, "dynamics": tuple(fields.get("dynamics", ())), "offsets": offsets})
        if "size" in data and data["size"] != layout.size:
            raise ValueError(f"size {data['size']} is not the parts' {layout.size}")
        return layout


class PolicyInput:
    """Builds one env's policy inputs, step by step, in :class:`InputLayout`'s layout: what the training wrappers
    (:class:`~simreal.envs.privileged.DynamicsInput`, :class:`~simreal.envs.history.HistoryObservation`,
    :class:`~simreal.envs.privileged.PrivilegedInput`) give, from the robot's observations alone.

    Args:
        layout: the input's layout.
        estimator: the dynamics estimator (``layout.source == "estimated"``).

    Raises:
        ValueError: an estimator missing, or reading another history than the layout's.
    """

    def __init__(self, layout: InputLayout, estimator: DynamicsEstimator | None = None) -> None:
        if (estimator is not None) != (layout.source == "estimated"):
            raise ValueError(f"PolicyInput: source {layout.source!r} with estimator {estimator!r}")
        if estimator is not None and estimator.history != layout.estimator_history:
            raise ValueError(
                f"PolicyInput: the estimator reads {estimator.history} steps, the layout {layout.estimator_history}"
            )
        self.layout, self.estimator = layout, estimator
        sizes = (layout.observation, layout.action)
        # the estimator with the history it reads
        self._estimating = (estimator, History(layout.estimator_history, *sizes)) if estimator is not None else None
        self._raw = History(layout.raw_history, *sizes) if layout.raw_history else None
        self._stack = History(layout.history, layout.step_size, layout.action) if layout.history else None
        self._padding = np.zeros(layout.privileged)
        self._z = np.zeros(len(layout.dynamics))

    @property
    def estimate(self) -> np.ndarray:
        """The log-multipliers the policy was last given."""
        return self._z.copy()

    def start(self, obs: Any, truth: Mapping[str, float] | None = None) -> np.ndarray:
        """A new episode whose first observation is ``obs``; returns the input.

        Args:
            obs: the robot's first observation.
            truth: the episode's true multipliers by name (a simulator's reset ``info["dynamics"]``): read when the
                layout's source is ``"true"`` (required then) or ``"unread"`` (zeros without it).

        Raises:
            DataError: the policy needs the true dynamics and ``truth`` lacks one of them.
        """
        o = self._observation(obs)
        source = self.layout.source
        if source == "true" or (source == "unread" and truth is not None):
            missing = [name for name in self.layout.dynamics if name not in (truth or {})]
            if missing:
                raise DataError(f"the policy reads the true dynamics {missing}, which this env does not report")
            values = [(truth or {})[name] for name in self.layout.dynamics]
            self._z = to_coordinates(self.layout.dynamics, values, dict(self.layout.offsets))
        elif self._estimating is not None:  # the source is "estimated"
            estimator, history = self._estimating
            self._z = estimator(history.start(o))
        else:
            self._z = np.zeros(len(self.layout.dynamics))
        step = self._step(o, self._raw.start(o) if self._raw is not None else None)
        return self._finish(self._stack.start(step) if self._stack is not None else step)

    def add(self, action: Any, obs: Any) -> np.ndarray:
        """``action`` was sent and ``obs`` came back; returns the input."""
        o = self._observation(obs)
        if self._estimating is not None:
            estimator, history = self._estimating
            self._z = estimator(history.add(action, o))
        step = self._step(o, self._raw.add(action, o) if self._raw is not None else None)
        return self._finish(self._stack.add(action, step) if self._stack is not None else step)

    def _observation(self, obs: Any) -> np.ndarray:
        o = np.asarray(obs, dtype=np.float64).ravel()
        if o.shape[0] != self.layout.observation:
            raise DataError(f"an observation of size {o.shape[0]}: the policy reads {self.layout.observation}")
        return o

    def _step(self, o: np.ndarray, raw: np.ndarray | None) -> np.ndarray:
        return np.concatenate([o, self._z, raw if raw is not None else np.zeros(0)])

    def _finish(self, stacked: np.ndarray) -> np.ndarray:
        return np.concatenate([stacked, self._padding])
