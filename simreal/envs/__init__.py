"""Domain-randomized MuJoCo envs: robot specs and targets as data (:mod:`~simreal.envs.spec`), the dynamics
binding (:mod:`~simreal.envs.dynamics`), the physics wrapper (:mod:`~simreal.envs.randomized`), unmodeled effects
(:mod:`~simreal.envs.effects`), :func:`~simreal.envs.factory.make` and registration, the catalogue, and
stable-baselines3 VecEnvs of these envs (:mod:`~simreal.envs.vector`).

This package imports nothing itself: :mod:`simreal` checks ``MUJOCO_GL`` (:mod:`~simreal.envs.rendering`) before
anything imports MuJoCo.
"""
