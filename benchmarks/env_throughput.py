"""Env throughput: simreal.make("hopper") against plain gym.make("Hopper-v5"), interleaved in one run.

Each round times a block of steps (the same pre-drawn random actions, resetting at episode ends) and a block of
resets on every env, in an order that rotates from round to round, so drifts of the machine hit all envs alike. The
figures are medians over rounds of the per-round ratios against plain Hopper-v5 measured in that same round.
``simreal nominal`` (no randomization) is printed as a control: it separates the wrappers' cost from the cost of
sampling and writing 12 parameters plus ``mj_setConst`` at each reset, and from the physics itself: randomized
dynamics make MuJoCo do different work (the contacts and solver iterations per step are counted, untimed).

    python benchmarks/env_throughput.py [--rounds 80] [--steps 1000] [--resets 300]
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import mujoco
import numpy as np

import simreal


def time_steps(env: gym.Env, actions: np.ndarray) -> float:
    """Seconds to step through ``actions``, resetting at episode ends."""
    env.reset()
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - start


def time_resets(env: gym.Env, count: int) -> float:
    """Seconds for ``count`` resets."""
    start = time.perf_counter()
    for _ in range(count):
        env.reset()
    return time.perf_counter() - start


def physics_work(env: gym.Env, actions: np.ndarray) -> tuple[float, float]:
    """Untimed: mean contacts and constraint-solver iterations per step (after each step's last substep)."""
    env.reset(seed=0)
    data = env.unwrapped.data
    contacts = iterations = 0
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        contacts += data.ncon
        iterations += int(data.solver_niter[0])
        if terminated or truncated:
            env.reset()
    return contacts / len(actions), iterations / len(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--resets", type=int, default=300)
    args = parser.parse_args()

    envs = {
        "plain Hopper-v5": gym.make("Hopper-v5"),
        "simreal hopper": simreal.make("hopper"),
        "simreal nominal": simreal.make("hopper", nominal=True),
    }
    for env in envs.values():
        env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(args.steps, 3)).astype(np.float32)

    names = list(envs)
    step_rate = {name: [] for name in names}
    reset_rate = {name: [] for name in names}
    for round_index in range(args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            step_rate[name].append(args.steps / time_steps(envs[name], actions))
            reset_rate[name].append(args.resets / time_resets(envs[name], args.resets))

    plain = "plain Hopper-v5"
    print(f"machine: {platform.machine()}, {platform.system()}, python {platform.python_version()}")
    print(
        f"versions: simreal {simreal.__version__}, gymnasium {gym.__version__}, mujoco {mujoco.__version__}, "
        f"numpy {np.__version__}"
    )
    print(f"{args.rounds} rounds x ({args.steps} random-action steps + {args.resets} resets) per env")
    print(
        f"{'env':18s} {'steps/s':>9s} {'step ratio':>11s} {'resets/s':>9s} {'reset cost':>11s} "
        f"{'contacts/step':>14s} {'solver it/step':>15s}"
    )
    for name in names:
        step_ratio = np.median(np.array(step_rate[name]) / np.array(step_rate[plain]))
        reset_cost = np.median(np.array(reset_rate[plain]) / np.array(reset_rate[name]))
        contacts, iterations = physics_work(envs[name], np.tile(actions, (10, 1)))
        print(
            f"{name:18s} {np.median(step_rate[name]):9.0f} {step_ratio:11.3f} "
            f"{np.median(reset_rate[name]):9.0f} {reset_cost:10.2f}x {contacts:14.3f} {iterations:15.3f}"
        )
    print("goals for simreal hopper: step ratio >= 0.97, reset cost <= 2x")


if __name__ == "__main__":
    main()
