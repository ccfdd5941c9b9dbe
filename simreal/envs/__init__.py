"""Domain-randomized MuJoCo envs: robot specs and targets as data (:mod:`~simreal.envs.spec`), loaded and checked
(:mod:`~simreal.envs.robots`), training ranges checked against a catalogue (:mod:`~simreal.envs.ranges`), the
coordinates learning and identification see (:mod:`~simreal.envs.coordinates`), their catalogues
generated from the compiled model (:mod:`~simreal.envs.generate`) from where each kind applies in it
(:mod:`~simreal.envs.kinds`), the plain env of a gymnasium id or an entry point
(:mod:`~simreal.envs.mujoco_base`), the dynamics binding (:mod:`~simreal.envs.dynamics`), seeded random streams that
a checkpoint saves (:mod:`~simreal.envs.streams`), the physics wrapper (:mod:`~simreal.envs.randomized`), unmodeled
effects (:mod:`~simreal.envs.effects`), :func:`~simreal.envs.factory.make` (:mod:`~simreal.envs.factory`) and the
gymnasium ids (:mod:`~simreal.envs.registration`), the catalogue's tables (:mod:`~simreal.envs.catalogue`),
stable-baselines3 VecEnvs of these envs (:mod:`~simreal.envs.vector`) with the episode in progress kept for an exact
resume (:mod:`~simreal.envs.replay`), and what a policy reads: history and dynamics inputs
(:mod:`~simreal.envs.history`, :mod:`~simreal.envs.privileged`), its input's layout built from a robot's
observations (:mod:`~simreal.envs.inputs`) and the one loop that runs a policy on any env
(:mod:`~simreal.envs.runner`).

This package imports nothing itself: :mod:`simreal` checks ``MUJOCO_GL`` (:mod:`~simreal.envs.rendering`) before
anything imports MuJoCo.
"""
