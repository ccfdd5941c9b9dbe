"""The ``simreal/<Robot>-v0`` ids in gymnasium's registry, registered lazily as gymnasium registers its own: an id
names an entry point as a string, and nothing is loaded until ``gym.make`` builds the env, so a broken robot file
breaks that robot only, never ``import simreal``."""

from __future__ import annotations

import gymnasium as gym

#: The entry point gymnasium's registry and ``gym.make(env.spec)`` call (a string: loaded only when used).
ENTRY_POINT = "simreal.envs.factory:make"
#: Shipped robot -> its id (each robot's spec repeats its id as ``simreal_id``; a test keeps the two in step).
SHIPPED_IDS = {
    "ant": "simreal/Ant-v0",
    "halfcheetah": "simreal/HalfCheetah-v0",
    "hopper": "simreal/Hopper-v0",
    "humanoid": "simreal/Humanoid-v0",
    "humanoidstandup": "simreal/HumanoidStandup-v0",
    "inverted_double_pendulum": "simreal/InvertedDoublePendulum-v0",
    "inverted_pendulum": "simreal/InvertedPendulum-v0",
    "pusher": "simreal/Pusher-v0",
    "reacher": "simreal/Reacher-v0",
    "swimmer": "simreal/Swimmer-v0",
    "walker2d": "simreal/Walker2d-v0",
}


def register_envs() -> None:
    """Register every shipped robot's id with gymnasium (idempotent; reads no file)."""
    for robot, env_id in SHIPPED_IDS.items():
        if env_id not in gym.registry:
            # simreal.make already adds the time limit inside and order enforcing outside (OrderEnforced)
            gym.register(
                id=env_id,
                entry_point=ENTRY_POINT,
                kwargs={"robot": robot},
                order_enforce=False,
                disable_env_checker=True,
            )
