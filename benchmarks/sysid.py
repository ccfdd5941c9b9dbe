"""System identification on hopper: how exactly, how fast, and how the error falls with data.

Data: ``simreal collect policies/hopper_ppo_dr`` on a hopper target whose 5 unknown parameters (4 masses, friction)
are off nominal. Scenario ``clean``: no unmodeled effects, 10 episodes, the recorded MuJoCo states. Scenario
``noisy``: 0.01 observation noise and a 1-step action delay, 20 episodes, states rebuilt from the (noisy)
observations as they would be on a real robot (positions smoothed), the delay identified among 0..3, repeated on
``--noisy-seeds`` recordings (the noise makes single runs vary). Each fit holds out 20% of the episodes for the
dynamics gap; beside it the benchmark prints the gap of the *true* parameters on the same held-out windows: the
most any estimate could explain when the compared states are noisy. Wall-clock times are of ``identify`` alone on
this machine (both cores), and the simulator's own stepping speed, measured in the same run, is printed beside them
as the reference.

    python benchmarks/sysid.py [--budget 1500] [--seed 0] [--noisy-seeds 3] [--only clean noisy scaling]
"""

from __future__ import annotations

import argparse
import platform
import time

import cma
import gymnasium as gym
import mujoco
import numpy as np

import simreal
from simreal import seeding
from simreal.envs.spec import load_robot
from simreal.sysid.collect import collect
from simreal.sysid.identify import identify
from simreal.sysid.simulator import Simulator
from simreal.sysid.states import fit_states
from simreal.sysid.trajectories import split_holdout
from simreal.sysid.windows import make_windows

TRUTH = {"torso_mass": 1.2, "thigh_mass": 0.85, "leg_mass": 1.1, "foot_mass": 0.9, "friction": 0.7}
NAMES = list(TRUTH)


def fit(episodes: int, effects: dict, use_observations: bool, delays, budget: int, seed: int):
    data = collect(
        "policies/hopper_ppo_dr",
        "hopper",
        target={"parameters": TRUTH, "effects": effects},
        episodes=episodes,
        seed=seed,
    )
    fitted, holdout = split_holdout(data)  # the library's rule, as simreal sysid applies it
    start = time.perf_counter()
    result = identify(
        fitted,
        "hopper",
        NAMES,
        horizon=10,
        budget=budget,
        seed=seed,
        delays=delays,
        holdout=holdout,
        use_observations=use_observations,
    )
    seconds = time.perf_counter() - start
    if holdout is not None:
        result.gap["held_out, true parameters"] = truth_gap(fitted, holdout, result, use_observations, seed)
    return result, seconds


def truth_gap(fitted, holdout, result, use_observations: bool, seed: int) -> dict[str, float]:
    """The held-out K-step error of nominal and of the true parameters, on the windows the estimate was scored on."""
    spec = load_robot("hopper")
    simulator = Simulator(spec, NAMES)
    smooth = use_observations

    def windows(data, rng_seed):
        states = fit_states(data, spec, simulator.model, simulator.frame_skip, use_observations, smooth)
        return make_windows(
            data, states, simulator.skipped, result.horizon, result.delay or 0, 200, np.random.default_rng(rng_seed)
        )

    held = windows(holdout, seed + seeding.HOLDOUT_WINDOWS)
    held.scale = windows(fitted, seed).scale
    nominal, true = simulator.loss(np.zeros(len(NAMES)), held), simulator.loss(np.log(list(TRUTH.values())), held)
    return {"nominal": nominal, "identified": true, "ratio": nominal / true}


def describe(name: str, result, seconds: float) -> None:
    errors = result.errors()
    print(
        f"{name}: mean relative error {np.mean(list(errors.values())):.3%}, "
        f"delay {result.delay}, {seconds:.1f} s, {result.evaluations} evaluations"
    )
    for n in NAMES:
        print(
            f"  {n:11s} truth {TRUTH[n]:.3f} estimate {result.estimate[n]:.4f} spread x/÷{result.spread[n]:.4f} "
            f"error {errors[n]:.3%} identifiable {result.identifiable[n]}"
        )
    if result.position_noise:
        noise = ", ".join(f"{v:.4f}" for v in result.position_noise.values())
        print(f"  states {result.states}; estimated position noise {noise}")
    for part, gap in result.gap.items():
        print(
            f"  K-step error {part}: nominal {gap['nominal']:.4g}, identified {gap['identified']:.4g}, "
            f"{gap['ratio']:.1f}x lower"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noisy-seeds", type=int, default=3, help="recordings (seeds) of the noisy scenario")
    parser.add_argument(
        "--only", nargs="+", default=["clean", "noisy", "scaling"], choices=["clean", "noisy", "scaling"]
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, python {platform.python_version()}; simreal {simreal.__version__}, "
        f"mujoco {mujoco.__version__}, cma {cma.__version__}, gymnasium {gym.__version__}"
    )

    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < 2.0:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            env.reset()
    print(f"reference: plain Hopper-v5 steps {steps / (time.perf_counter() - start):.0f}/s on this machine")

    if "clean" in args.only:
        clean, seconds = fit(10, {}, False, None, args.budget, args.seed)
        describe("clean, 10 episodes (goal: <= 1% in <= 60 s, held-out error >= 5x lower)", clean, seconds)
    noisy_effects = {"obs_noise_std": 0.01, "action_delay_steps": 1}
    if "noisy" in args.only:
        errors = []
        for seed in range(args.seed, args.seed + args.noisy_seeds):
            noisy, seconds = fit(20, noisy_effects, True, range(4), args.budget, seed)
            goal = "goal: <= 10%, delay found, <= 120 s"
            describe(f"noisy + 1-step delay, 20 episodes, seed {seed} ({goal})", noisy, seconds)
            errors.append(np.mean(list(noisy.errors().values())))
        print(
            f"noisy: mean relative error over {len(errors)} recordings {np.mean(errors):.2%} (each: "
            + ", ".join(f"{e:.2%}" for e in errors)
            + ")"
        )
    if "scaling" in args.only:
        print("error against episodes recorded (noisy + delay):")
    for episodes in (1, 3, 10, 20) if "scaling" in args.only else ():
        result, seconds = fit(episodes, noisy_effects, True, range(4), args.budget, args.seed)
        print(
            f"  {episodes:2d} episodes: mean relative error {np.mean(list(result.errors().values())):.2%}, "
            f"delay {result.delay}, {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
