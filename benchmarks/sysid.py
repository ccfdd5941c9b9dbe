"""System identification on hopper: accuracy, speed, intervals that mean what they say, and misfit detection.

Data: ``simreal collect policies/hopper_ppo_dr`` on a hopper target whose 5 parameters (4 masses, friction) are off
nominal. Scenario ``clean``: no unmodeled effects, 10 episodes, the recorded MuJoCo states. Scenario ``noisy``:
0.01 observation noise and a 1-step action delay, 20 episodes, states rebuilt from the (noisy) observations as they
would be on a real robot (positions smoothed), the delay identified among 0..3, repeated on ``--recordings``
recordings: the mean error over the first 3 is the accuracy goal, and over all of them each parameter's 90% interval
is checked against the truth (coverage). ``all``: every one of hopper's 12 parameters from 20 noisy episodes.
``optional``: the noisy scenario with hopper's optional armature and frictionloss parameters off nominal too and
identified with the rest (9 parameters), over ``--recordings`` recordings. ``misfit``: noisy data from a target
like the shipped ``moderate`` (less its actuator noise, which sysid does not
model), fitted with only 3 of its 5 changed parameters, as the README's first example once did: the misfit must be
flagged, with its cause; and the same with two masses left out that are off by only 10-15%.

Each fit holds out a fifth of the episodes (the library's rule): its K-step error there, at K = 10 and K = 40, is
printed beside the *true* parameters' error on the same windows (on noisy data the truth is the ceiling). Wall-clock
times are of ``identify`` alone (both cores; its CPU time beside them, the figure to compare on a busy machine), with
the simulator's own stepping speed, measured in the same run, as the reference.

    python benchmarks/sysid.py [--budget N] [--recordings 10] [--only clean noisy all optional misfit]
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
from simreal.envs.coordinates import to_coordinates
from simreal.envs.robots import load_robot
from simreal.sysid.collect import collect
from simreal.sysid.identify import identify
from simreal.sysid.simulator import Simulator
from simreal.sysid.states import fit_states
from simreal.sysid.trajectories import split_holdout
from simreal.sysid.windows import make_windows

TRUTH = {"torso_mass": 1.2, "thigh_mass": 0.85, "leg_mass": 1.1, "foot_mass": 0.9, "friction": 0.7}
NAMES = list(TRUTH)
NOISY = {"obs_noise_std": 0.01, "action_delay_steps": 1}
#: the optional parameters the ``optional`` scenario adds: armature (multipliers), frictionloss (N·m, added)
OPTIONAL = {
    "thigh_joint_armature": 1.3,
    "foot_joint_armature": 0.8,
    "leg_joint_frictionloss": 2.0,
    "foot_joint_frictionloss": 3.0,
}


def record(episodes: int, effects: dict, seed: int, truth: dict | None = None):
    target = {"parameters": truth or TRUTH, "effects": effects}
    return collect("policies/hopper_ppo_dr", "hopper", target=target, episodes=episodes, seed=seed)


def fit(data, names, use_observations: bool, delays, budget: int, seed: int):
    fitted, holdout = split_holdout(data)  # the library's rule, as simreal sysid applies it
    start, cpu = time.perf_counter(), time.process_time()
    result = identify(
        fitted,
        "hopper",
        names,
        budget=budget,
        seed=seed,
        delays=delays,
        holdout=holdout,
        use_observations=use_observations,
    )
    result.cpu_seconds = time.process_time() - cpu  # every thread of this process: comparable on a busy machine
    return result, time.perf_counter() - start, fitted, holdout


def held_out_against_truth(result, fitted, holdout, use_observations: bool, seed: int) -> dict[int, tuple]:
    """Held-out K-step error (the plain mean) of the estimate and of the true parameters, at K = 10 and 40."""
    spec = load_robot("hopper")
    names = result.names
    simulator = Simulator(spec, names)
    truth = to_coordinates(names, [result.truth[n] for n in names], simulator.offsets)
    estimate = to_coordinates(names, [result.estimate[n] for n in names], simulator.offsets)
    figures = {}
    for horizon in (10, 40):

        def windows(data, rng_seed, horizon=horizon):
            states = fit_states(data, spec, simulator.model, simulator.frame_skip, use_observations, use_observations)
            rng = np.random.default_rng(rng_seed)
            return make_windows(data, states, simulator.skipped, horizon, result.delay or 0, 200, rng)

        held = windows(holdout, seed + seeding.HOLDOUT_WINDOWS)
        held.scale = windows(fitted, seed).scale
        figures[horizon] = (simulator.loss(estimate, held), simulator.loss(truth, held))
    return figures


def describe(title: str, result, seconds: float, held: dict[int, tuple] | None) -> None:
    report = result.as_dict()
    print(
        f"{title}: mean relative error {report['mean_relative_error']:.2%}, delay {result.delay}, {seconds:.1f} s "
        f"({result.cpu_seconds:.1f} CPU-s), "
        f"{result.evaluations} evaluations, misfit ratio {report['misfit']['ratio']:.2f}"
        + (" (flagged)" if report["misfit"]["flagged"] else "")
    )
    for name, row in report["parameters"].items():
        low, high = row["interval"]
        print(
            f"  {name:20s} truth {row['truth']:.3f} estimate {row['estimate']:.4f} 90% [{low:.4f}, {high:.4f}] "
            f"error {row['relative_error']:.2%} covered {row['covered']} identifiable {row['identifiable']}"
        )
    if result.observation_noise is not None:
        print(f"  states {result.states}; observation noise estimated {result.observation_noise:.4f}")
    for horizon, (identified, true) in (held or {}).items():
        if true < 1e-12:  # exact data: the truth predicts perfectly, a ratio means nothing
            print(f"  held-out K={horizon}: identified {identified:.4g}, true parameters {true:.3g} (exact data)")
            continue
        print(
            f"  held-out K={horizon}: identified {identified:.4g}, true parameters {true:.4g}, "
            f"ratio {identified / true:.3f} (goal <= 1.05)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=None, help="default: 600 per parameter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recordings", type=int, default=10, help="recordings (seeds) of the noisy scenario")
    parser.add_argument("--only", nargs="+", default=["clean", "noisy", "all", "optional", "misfit"])
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
        data = record(10, {}, args.seed)
        result, seconds, fitted, holdout = fit(data, NAMES, False, None, args.budget, args.seed)
        held = held_out_against_truth(result, fitted, holdout, False, args.seed)
        describe("clean, 10 episodes (goal: <= 1% in <= 60 s)", result, seconds, held)
    if "noisy" in args.only:
        errors, covered, times, ratios = [], [], [], []
        for seed in range(args.seed, args.seed + args.recordings):
            data = record(20, NOISY, seed)
            result, seconds, fitted, holdout = fit(data, NAMES, True, range(4), args.budget, seed)
            held = held_out_against_truth(result, fitted, holdout, True, seed)
            describe(f"noisy + 1-step delay, 20 episodes, seed {seed}", result, seconds, held)
            errors.append(result.as_dict()["mean_relative_error"])
            covered.append(result.covered())
            times.append(seconds)
            ratios.append({k: identified / true for k, (identified, true) in held.items()})
        first = errors[:3]
        print(
            f"noisy: mean relative error over the first {len(first)} recordings {np.mean(first):.2%} (each: "
            + ", ".join(f"{e:.2%}" for e in first)
            + f"; goal <= 5%), over all {len(errors)}: {np.mean(errors):.2%}; time {min(times):.0f}-{max(times):.0f} s"
        )
        for horizon in (10, 40):
            values = [r[horizon] for r in ratios]
            print(
                f"  held-out K={horizon}: identified / true error {np.mean(values):.3f} (range {min(values):.3f}-"
                f"{max(values):.3f}; goal <= 1.05)"
            )
        print(f"coverage of the 90% intervals over {len(covered)} recordings (goal >= 80% each):")
        for name in NAMES:
            share = np.mean([c[name] for c in covered])
            print(f"  {name:20s} {share:.0%}")
    if "all" in args.only:
        data = record(20, NOISY, args.seed)
        result, seconds, fitted, holdout = fit(data, None, True, range(4), args.budget, args.seed)
        describe("all 12 parameters, noisy + delay, 20 episodes", result, seconds, None)
    if "optional" in args.only:
        truth = {**TRUTH, **OPTIONAL}
        errors, covered, times = [], [], []
        for seed in range(args.seed, args.seed + args.recordings):
            data = record(20, NOISY, seed, truth)
            result, seconds, fitted, holdout = fit(data, list(truth), True, range(4), args.budget, seed)
            describe(
                f"optional: 9 parameters with armature and frictionloss, noisy, seed {seed}", result, seconds, None
            )
            errors.append(result.as_dict()["mean_relative_error"])
            covered.append(result.covered())
            times.append(seconds)
        print(
            f"optional: mean relative error {np.mean(errors):.2%} (each: "
            + ", ".join(f"{e:.2%}" for e in errors)
            + f"; goal <= 5%); time {min(times):.0f}-{max(times):.0f} s; coverage of the 90% intervals (goal >= 80%):"
        )
        for name in truth:
            print(f"  {name:24s} {np.mean([c[name] for c in covered]):.0%}")
    if "misfit" in args.only:
        moderate = {
            "torso_mass": 1.25,
            "foot_mass": 0.8,
            "friction": 0.7,
            "thigh_joint_gain": 0.85,
            "leg_joint_damping": 1.5,
        }
        target = {"parameters": moderate, "effects": NOISY}
        data = collect("policies/hopper_ppo_dr", "hopper", target=target, episodes=20, seed=args.seed)
        names = ["torso_mass", "foot_mass", "friction"]
        result, seconds, _, _ = fit(data, names, True, range(4), args.budget, args.seed)
        describe("misfit: moderate-like target, thigh_joint_gain and leg_joint_damping left out", result, seconds, None)
        print(f"  cause: {result.misfit.cause}")
        data = record(20, NOISY, args.seed)
        result, seconds, _, _ = fit(data, names, True, range(4), args.budget, args.seed)
        describe("misfit: thigh_mass (0.85) and leg_mass (1.1) left out", result, seconds, None)
        print(f"  cause: {result.misfit.cause}")


if __name__ == "__main__":
    main()
