"""Random streams of simreal's wrappers: seeded from ``reset(seed=...)``, saved and restored as JSON.

Each wrapper with randomness owns a ``numpy.random.Generator`` seeded with a salt of its own, so the env's own
initial-state noise, the dynamics and each effect draw from independent streams, and the same seed gives the same
numbers. :meth:`StreamOwner.get_stream_state` gathers every stream of a wrapper stack (a checkpoint keeps it) and
:meth:`StreamOwner.set_stream_state` puts it back, so that a resumed run draws exactly what the interrupted one
would have drawn next.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

# one salt per stream so that they never coincide for the same seed
SALT_DYNAMICS = 0x51D
SALT_OBS_NOISE = 0x0B5
SALT_ACTION_NOISE = 0xAC7
SALT_OBS_BIAS = 0xB1A


def seeded_rng(seed: int | None, salt: int, current: np.random.Generator | None) -> np.random.Generator:
    """The generator to use after ``reset(seed=seed)``: a fresh one for a new seed, else the current one."""
    if seed is not None:
        return np.random.default_rng([salt, seed])
    return current if current is not None else np.random.default_rng()


def generator_state(rng: np.random.Generator | None) -> dict[str, Any] | None:
    """A generator's state, JSON-ready (``None`` for no generator)."""
    return None if rng is None else dict(rng.bit_generator.state)


def generator_from(state: dict[str, Any] | None, current: np.random.Generator | None) -> np.random.Generator | None:
    """A generator continuing from ``state`` (``current`` unchanged when there is no state)."""
    if state is None:
        return current
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


class PartOfTheEnv:
    """Mixin for simreal's wrappers: they are part of the env's definition, not extra wrappers, so the spec is the
    inner one (the ``simreal/<Robot>-v0`` spec that :func:`simreal.make` records), and ``gym.make(env.spec)``
    rebuilds the same env."""

    env: gym.Env

    @property
    def spec(self) -> EnvSpec | None:
        return self.env.spec

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        raise AttributeError("a simreal wrapper's spec is its env's: set the env's")


class StreamOwner(ABC):
    """Mixin for wrappers that own random streams. Each names its streams in :meth:`own_streams`; the outermost one
    answers for the whole stack (``get_wrapper_attr`` finds it first), merging the streams of those inside it."""

    env: gym.Env

    @abstractmethod
    def own_streams(self) -> dict[str, Any]:
        """This wrapper's streams, by name, JSON-ready."""

    @abstractmethod
    def restore_own_streams(self, state: dict[str, Any]) -> None:
        """Put back the streams :meth:`own_streams` named (others in ``state`` belong to other wrappers)."""

    def get_stream_state(self) -> dict[str, Any]:
        """Every stream of this wrapper and of the simreal wrappers inside it, JSON-ready."""
        inner = _inner(self.env, "get_stream_state")
        return {**(inner() if inner is not None else {}), **self.own_streams()}

    def set_stream_state(self, state: dict[str, Any]) -> None:
        """Continue every stream from :meth:`get_stream_state`'s result; the next reset (without a seed) draws what
        the env it was taken from would have drawn next."""
        inner = _inner(self.env, "set_stream_state")
        if inner is not None:
            inner(state)
        self.restore_own_streams(state)


def _inner(env: gym.Env, name: str) -> Any:
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        return None
