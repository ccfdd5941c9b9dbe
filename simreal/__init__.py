"""simreal: sim-to-real transfer for reinforcement learning on domain-randomized MuJoCo robots.

The env API::

    import simreal
    env = simreal.make("hopper")                    # randomized dynamics, resampled every episode
    target = simreal.make("hopper", target="severe")  # a fixed "reality" the policy never trained on
    simreal.get_dynamics(env)                       # {'torso_mass': 1.07, ...}

Importing simreal registers ``simreal/<Robot>-v0`` with gymnasium.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from simreal.errors import ConfigError, DataError, SimrealError, SpecError
from simreal.factory import MujocoWarning, get_dynamics, make, register_envs, set_dynamics

try:
    __version__ = version("simreal")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

register_envs()

__all__ = [
    "ConfigError",
    "DataError",
    "MujocoWarning",
    "SimrealError",
    "SpecError",
    "__version__",
    "get_dynamics",
    "make",
    "set_dynamics",
]
