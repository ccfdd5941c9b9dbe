"""Env throughput: simreal.make(robot) against plain gym.make(its gymnasium id), interleaved in one run, per robot.

Each round times a block of steps (the same pre-drawn random actions; the resets at episode ends untimed) and a
block of resets on every env, in an order that rotates from round to round, so drifts of the machine hit all envs
alike. The figures are medians over rounds of the per-round ratios against the plain env of the robot's gymnasium
id measured in that same round. ``simreal ... nominal`` (no randomization) is printed as a control: it separates
the wrappers' cost from the cost of sampling and writing the parameters plus ``mj_setConst`` at each reset, and
from the physics itself: randomized dynamics make MuJoCo do different work (the contacts and solver iterations per
step are counted, untimed).

Every robot is measured on its own (its catalogue generated from the model); ``--robots`` picks them (default:
every shipped robot).

    python benchmarks/env_throughput.py [--robots hopper pusher ...] [--rounds 80] [--steps 1000] [--resets 300]
"""

from __future__ import annotations

import argparse
import platform
import time

import gymnasium as gym
import mujoco
import numpy as np

import simreal
from simreal.envs.robots import load_robot, robot_names


def time_steps(env: gym.Env, actions: np.ndarray) -> float:
    """Seconds spent in ``step`` over ``actions``, resetting (untimed) at episode ends: the pendulums end their
    random-action episodes within a few steps, so timing the resets too would measure resets."""
    env.reset()
    spent = 0.0
    for action in actions:
        start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(action)
        spent += time.perf_counter() - start
        if terminated or truncated:
            env.reset()
    return spent


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


def measure(robot: str, rounds: int, steps: int, resets: int) -> list[str]:
    """The table rows of one robot: plain, randomized and nominal simreal envs, interleaved round by round."""
    spec = load_robot(robot)
    plain = f"plain {spec.gym_id}"
    envs = {
        plain: gym.make(spec.gym_id),
        f"simreal {robot}": simreal.make(robot),
        f"simreal {robot} nominal": simreal.make(robot, nominal=True),
    }
    for env in envs.values():
        env.reset(seed=0)
    space = envs[plain].action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, size=(steps, *space.shape)).astype(space.dtype)

    names = list(envs)
    step_rate = {name: [] for name in names}
    reset_rate = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            step_rate[name].append(steps / time_steps(envs[name], actions))
            reset_rate[name].append(resets / time_resets(envs[name], resets))
    rows = []
    for name in names:
        step_ratio = np.median(np.array(step_rate[name]) / np.array(step_rate[plain]))
        reset_cost = np.median(np.array(reset_rate[plain]) / np.array(reset_rate[name]))
        contacts, iterations = physics_work(envs[name], np.tile(actions, (10, 1)))
        rows.append(
            f"{name:36s} {len(spec.parameters):6d} {np.median(step_rate[name]):9.0f} {step_ratio:11.3f} "
            f"{np.median(reset_rate[name]):9.0f} {reset_cost:10.2f}x {contacts:14.3f} {iterations:15.3f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robots", nargs="+", default=robot_names())
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--resets", type=int, default=300)
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {platform.system()}, python {platform.python_version()}")
    print(
        f"versions: simreal {simreal.__version__}, gymnasium {gym.__version__}, mujoco {mujoco.__version__}, "
        f"numpy {np.__version__}"
    )
    print(f"{args.rounds} rounds x ({args.steps} random-action steps + {args.resets} resets) per env")
    print(
        f"{'env':36s} {'params':>6s} {'steps/s':>9s} {'step ratio':>11s} {'resets/s':>9s} {'reset cost':>11s} "
        f"{'contacts/step':>14s} {'solver it/step':>15s}"
    )
    for robot in args.robots:
        for row in measure(robot, args.rounds, args.steps, args.resets):
            print(row, flush=True)
    print("goals: step ratio >= 0.97 (nominal: the wrappers' cost alone), reset cost <= 2x")


if __name__ == "__main__":
    main()
