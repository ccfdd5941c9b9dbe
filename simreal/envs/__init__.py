"""Domain-randomized MuJoCo envs: robot specs and targets as data (:mod:`~simreal.envs.spec`), the dynamics
binding (:mod:`~simreal.envs.dynamics`), the physics wrapper (:mod:`~simreal.envs.randomized`), unmodeled effects
(:mod:`~simreal.envs.effects`), :func:`make` and registration, and the catalogue."""

from __future__ import annotations

from simreal.envs.factory import get_dynamics, make, make_env, set_dynamics
from simreal.envs.mujoco_base import MujocoWarning

__all__ = ["MujocoWarning", "get_dynamics", "make", "make_env", "set_dynamics"]
