"""Training throughput: stable-baselines3 PPO with its defaults on one Hopper env against ``simreal train`` with
``configs/hopper_ppo_dr.yaml``, for the same number of timesteps, in one process run.

The reference is what a user gets from ``PPO("MlpPolicy", gym.make("Hopper-v5")).learn(N)`` (one env, n_steps 2048,
batch 64, 10 epochs, torch's default threads). simreal's figure is the whole ``simreal train`` job (randomized envs,
VecNormalize, the final evaluation on nominal, randomized and the three targets, checkpoints, TensorBoard), timed
end to end. Runs alternate reference/simreal for ``--rounds`` rounds; the ratio is the median of per-round ratios.

    python benchmarks/train_throughput.py [--timesteps 40960] [--rounds 2]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import PPO

import simreal
from simreal.runs.setup import load_setup
from simreal.train.trainer import train


def reference(timesteps: int, seed: int) -> float:
    """Steps/s of stable-baselines3 PPO with default settings on one plain Hopper-v5 env."""
    model = PPO("MlpPolicy", gym.make("Hopper-v5"), seed=seed, device="cpu")
    start = time.perf_counter()
    model.learn(timesteps)
    return timesteps / (time.perf_counter() - start)


def simreal_train(timesteps: int, seed: int, folder: Path) -> float:
    """Steps/s of the whole ``simreal train configs/hopper_ppo_dr.yaml`` job at ``timesteps``."""
    setup = load_setup("hopper_ppo_dr", [f"total_timesteps={timesteps}", f"seed={seed}"])
    start = time.perf_counter()
    train(setup, folder / f"run_{seed}", device="cpu")
    return timesteps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=40960)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    default_threads = torch.get_num_threads()
    ours, theirs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            torch.set_num_threads(default_threads)  # simreal's train sets its own thread count
            theirs.append(reference(args.timesteps, seed=round_index))
            ours.append(simreal_train(args.timesteps, seed=round_index, folder=Path(tmp)))
            print(f"round {round_index}: reference {theirs[-1]:.0f} steps/s, simreal {ours[-1]:.0f} steps/s")
    ratios = np.array(ours) / np.array(theirs)
    print(
        f"machine: {platform.machine()}, {platform.system()}, python {platform.python_version()}, "
        f"torch default threads {default_threads}"
    )
    print(
        f"versions: simreal {simreal.__version__}, stable-baselines3 {stable_baselines3.__version__}, "
        f"torch {torch.__version__}, gymnasium {gym.__version__}"
    )
    print(f"{args.timesteps} timesteps per run, {args.rounds} rounds")
    print(f"reference SB3 PPO defaults, 1 env : {np.median(theirs):8.0f} steps/s")
    print(f"simreal train hopper_ppo_dr.yaml  : {np.median(ours):8.0f} steps/s")
    print(f"ratio (median of rounds)          : {np.median(ratios):8.2f}x   goal >= 2.5x")


if __name__ == "__main__":
    main()
