"""Candidates for the batched simulator's physics (issue 36), measured before anything is built on one: how fast N
hopper envs, each with its own ``MjModel`` copy, advance one control step (4 substeps) with random controls.

- ``bare, 1 thread``: ``mj_step(model_i, data_i, nstep=4)`` over the batch in a Python loop (the reference: the
  physics alone, one core).
- ``bare, T threads``: the same loop split over a persistent thread pool (MuJoCo releases the GIL in ``mj_step``).
- ``mujoco.rollout, T threads``: MuJoCo's own persistent native pool (``mujoco.rollout.Rollout``), given every env's
  model and its full physics state, returning the states after the step (the copies in and out included: that is
  what a batched env would pay each step).
- ``today's stack``: stable-baselines3's ``DummyVecEnv`` of the main job's envs (``hopper_ppo_dr``: every parameter
  and effect drawn, history inputs, episode replay record), stepped with random actions, resets included.

Interleaved round by round in one run; steps/s counts env steps (control steps x N).

    python benchmarks/batched_physics.py [--envs 256] [--rounds 5] [--steps 40]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import mujoco
import numpy as np
from mujoco import rollout

from simreal.envs.vector import EnvFactory, vectorize
from simreal.runs.setup import load_setup

SUBSTEPS = 4  # hopper's frame_skip


def hopper_batch(n: int, seed: int) -> tuple[list[mujoco.MjModel], list[mujoco.MjData]]:
    """``n`` hopper models, each its own copy with its masses and friction scaled as a draw would, and their data."""
    base = gym.make("Hopper-v5").unwrapped.model  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    models, datas = [], []
    for _ in range(n):
        model = copy.deepcopy(base)
        model.body_mass[:] = base.body_mass * rng.uniform(0.75, 1.25, size=base.nbody)
        model.geom_friction[:, 0] = base.geom_friction[:, 0] * rng.uniform(0.5, 1.5)
        models.append(model)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        datas.append(data)
    return models, datas


def bare(models: list[mujoco.MjModel], datas: list[mujoco.MjData], controls: np.ndarray) -> None:
    for model, data, control in zip(models, datas, controls, strict=True):
        data.ctrl[:] = control
        mujoco.mj_step(model, data, nstep=SUBSTEPS)


def threaded(pool: ThreadPoolExecutor, threads: int) -> Callable[[list, list, np.ndarray], None]:
    def step(models: list[mujoco.MjModel], datas: list[mujoco.MjData], controls: np.ndarray) -> None:
        chunks = np.array_split(np.arange(len(models)), threads)
        futures = [
            pool.submit(bare, [models[i] for i in c], [datas[i] for i in c], controls[c]) for c in chunks if len(c)
        ]
        for future in futures:
            future.result()

    return step


def rolled(runner: rollout.Rollout, threads: int) -> Callable[[list, list, np.ndarray], None]:
    """The batch's state kept as one array (as a batched env would keep it, observations read from its slices),
    advanced by MuJoCo's pool, which works in one scratch ``MjData`` per thread."""
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    states: np.ndarray | None = None
    scratch: list[mujoco.MjData] = []

    def step(models: list[mujoco.MjModel], datas: list[mujoco.MjData], controls: np.ndarray) -> None:
        nonlocal states
        if states is None:
            states = np.empty((len(models), mujoco.mj_stateSize(models[0], spec)))
            for i, (model, data) in enumerate(zip(models, datas, strict=True)):
                mujoco.mj_getState(model, data, states[i], spec)
            scratch.extend(mujoco.MjData(models[0]) for _ in range(threads))
        control = np.repeat(controls[:, None, :], SUBSTEPS, axis=1)
        after, _ = runner.rollout(models, scratch, states, control, nstep=SUBSTEPS)
        states = after[:, -1]

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="control steps per candidate per round")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    models, datas = hopper_batch(args.envs, seed=0)
    nu = models[0].nu
    rng = np.random.default_rng(1)
    pool = ThreadPoolExecutor(cores)
    runner = rollout.Rollout(nthread=cores)
    setup = load_setup("hopper_ppo_dr")
    factory = EnvFactory(
        setup.spec, setup.ranges, effects=setup.effects, history=setup.history, dynamics_input=setup.training_input
    )
    stack = vectorize(factory, args.envs, seed=0)
    stack.reset()
    action_space = stack.action_space

    def today(_: list, __: list, controls: np.ndarray) -> None:
        stack.step(controls.astype(action_space.dtype))

    candidates: dict[str, Callable[[list, list, np.ndarray], None]] = {
        "bare, 1 thread": bare,
        f"bare, {cores} threads": threaded(pool, cores),
        f"mujoco.rollout, {cores} threads": rolled(runner, cores),
        "today's stack (DummyVecEnv)": today,
    }
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, step in candidates.items():
            controls = rng.uniform(-1, 1, size=(args.steps, args.envs, nu))
            start = time.perf_counter()
            for k in range(args.steps):
                step(models, datas, controls[k])
            times[name].append(time.perf_counter() - start)
    runner.close()
    pool.shutdown()
    stack.close()
    print(f"{platform.machine()}, {cores} cores, mujoco {mujoco.__version__}, {args.envs} hopper envs")
    reference = np.median(times["bare, 1 thread"])
    for name, measured in times.items():
        rate = args.steps * args.envs / np.median(measured)
        print(f"{name:32s} {rate:9.0f} env steps/s   x{reference / np.median(measured):.2f} of bare, 1 thread")


if __name__ == "__main__":
    main()
