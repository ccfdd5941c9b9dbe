"""simreal: sim-to-real transfer for reinforcement learning on domain-randomized MuJoCo robots.

The env API::

    import simreal
    env = simreal.make("hopper")                    # randomized dynamics, resampled every episode
    target = simreal.make("hopper", target="severe")  # a fixed "reality" the policy never trained on
    simreal.get_dynamics(env)                       # {'torso_mass': 1.07, ...}
    mine = simreal.wrap(MyMujocoEnv())              # any gymnasium MujocoEnv: its catalogue generated

Importing simreal registers ``simreal/<Robot>-v0`` with gymnasium (lazily: no robot file is read until an env is
made). The pipeline's stages are subpackages, each importing only from those before it: :mod:`simreal.envs`,
:mod:`simreal.adaptation`, :mod:`simreal.runs`, :mod:`simreal.evaluate`, :mod:`simreal.train`, :mod:`simreal.sysid`,
:mod:`simreal.transfer`, :mod:`simreal.deploy`, :mod:`simreal.tools`, and :mod:`simreal.cli` on top.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

# before anything imports MuJoCo, which refuses to import under a MUJOCO_GL it cannot use
from simreal.envs.rendering import guard_mujoco_import

guard_mujoco_import()

from simreal.envs.factory import get_dynamics, make, set_dynamics, wrap  # noqa: E402
from simreal.envs.mujoco_base import MujocoWarning  # noqa: E402
from simreal.envs.registration import register_envs  # noqa: E402
from simreal.errors import (  # noqa: E402
    BusyError,
    ConfigError,
    DataError,
    Interrupted,
    SetupError,
    SimrealError,
    SpecError,
    StorageError,
)

try:
    __version__ = version("simreal")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

register_envs()

__all__ = [
    "BusyError",
    "ConfigError",
    "DataError",
    "Interrupted",
    "MujocoWarning",
    "SetupError",
    "SimrealError",
    "SpecError",
    "StorageError",
    "__version__",
    "get_dynamics",
    "make",
    "set_dynamics",
    "wrap",
]
