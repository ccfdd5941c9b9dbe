"""Time to return: the training wall-clock each setup takes to first reach a nominal evaluation return on hopper.

Two setups, the same seeds, in the same run on the same machine, each pair side by side (one process per core):

* ``simreal``: ``simreal train CONFIG`` (default ``hopper_ppo_dr``: randomized dynamics, its own hyperparameters),
  the whole training job (schedule, dynamics logging, TensorBoard) with its periodic evaluation and checkpoints off;
* ``zoo``: stable-baselines3 PPO with rl-baselines3-zoo's tuned ``Hopper-v4`` hyperparameters on gymnasium's
  ``Hopper-v5`` at nominal dynamics (1 env x 512 steps, batch 32, 5 epochs, gamma 0.999, gae_lambda 0.99,
  lr 9.80828e-05, ent_coef 0.00229519, vf_coef 0.835671, max_grad_norm 0.7, log_std_init -2, no orthogonal init,
  ReLU 256x256, VecNormalize).

Both are measured by the same callback: every ``--eval-every`` timesteps it evaluates the deterministic policy on
``--episodes`` nominal hopper episodes (the same seeded episodes for both setups, observations normalized with the
run's frozen statistics) and stops training at the first mean return >= ``--threshold``. The clock is the training
wall-clock from the start of ``learn()`` with the evaluations' own time taken out. A run that never reaches the
threshold within ``--budget`` timesteps is censored at its training time for the budget (reported as such).

    python benchmarks/time_to_return.py [--seeds 0 1 2] [--threshold 2000] [--budget 1000000] [--out DIR]

Writes ``time_to_return.json`` (every evaluation of every run) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from simreal.fileio import atomic_write_json

THRESHOLD = 2000.0
EVAL_SEED = 10_000

ZOO_HOPPER = {
    "n_steps": 512,
    "batch_size": 32,
    "gamma": 0.999,
    "learning_rate": 9.80828e-05,
    "ent_coef": 0.00229519,
    "clip_range": 0.2,
    "n_epochs": 5,
    "gae_lambda": 0.99,
    "max_grad_norm": 0.7,
    "vf_coef": 0.835671,
}


def clock_callback(
    threshold: float, every: int, episodes: int, budget: int, record: list[dict[str, Any]], history: int = 0
) -> Any:
    """The stable-baselines3 callback both setups are timed with (built lazily: the parent process needs no torch).
    ``history``: the policy's history input, which the evaluation envs must give it too."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    from simreal.envs.robots import load_robot
    from simreal.envs.vector import EnvFactory, normalized_like, vectorize

    class Clock(BaseCallback):
        def _on_training_start(self) -> None:
            self.eval_env = vectorize(EnvFactory(load_robot("hopper"), history=history), episodes, EVAL_SEED)
            self.started, self.evaluating, self.due = time.perf_counter(), 0.0, every

        def _on_step(self) -> bool:
            if self.num_timesteps < self.due and self.num_timesteps < budget:
                return True
            self.due += every
            began = time.perf_counter()
            self.eval_env.seed(EVAL_SEED)
            statistics = self.training_env if isinstance(self.training_env, VecNormalize) else None
            returns, _ = evaluate_policy(
                self.model,
                normalized_like(self.eval_env, statistics),
                n_eval_episodes=episodes,
                deterministic=True,
                return_episode_rewards=True,
                warn=False,
            )
            self.evaluating += time.perf_counter() - began
            train_seconds = time.perf_counter() - self.started - self.evaluating
            mean = float(np.mean(returns))
            record.append({"timesteps": self.num_timesteps, "train_seconds": train_seconds, "mean_return": mean})
            return mean < threshold and self.num_timesteps < budget

    return Clock()


def run_simreal(config: str, seed: int, args: argparse.Namespace, record: list[dict[str, Any]]) -> None:
    from simreal.runs.setup import load_setup
    from simreal.train.trainer import train

    overrides = [
        f"seed={seed}",
        f"total_timesteps={args.budget}",
        "eval.frequency=0",
        "eval.episodes=1",
        "eval.targets=[]",
        "checkpoint.frequency=0",
    ]
    setup = load_setup(config, overrides)
    run_dir = args.out / f"simreal_{seed}"
    callback = clock_callback(args.threshold, args.eval_every, args.episodes, args.budget, record, setup.history)
    train(setup, run_dir, device="cpu", callbacks=[callback], command=sys.argv)


def run_zoo(seed: int, args: argparse.Namespace, record: list[dict[str, Any]]) -> None:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    venv = VecNormalize(make_vec_env(lambda: gym.make("Hopper-v5"), n_envs=1, seed=seed), gamma=ZOO_HOPPER["gamma"])
    policy_kwargs = {
        "log_std_init": -2,
        "ortho_init": False,
        "activation_fn": torch.nn.ReLU,
        "net_arch": {"pi": [256, 256], "vf": [256, 256]},
    }
    model = PPO("MlpPolicy", venv, policy_kwargs=policy_kwargs, seed=seed, device="cpu", verbose=0, **ZOO_HOPPER)
    clock = clock_callback(args.threshold, args.eval_every, args.episodes, args.budget, record)
    model.learn(args.budget, callback=clock)


def child(args: argparse.Namespace) -> None:
    """One run, in its own process pinned to one core: writes its evaluations as JSON."""
    record: list[dict[str, Any]] = []
    if args.setup == "zoo":
        run_zoo(args.seed, args, record)
    else:
        run_simreal(args.config, args.seed, args, record)
    atomic_write_json(args.out / f"{args.setup}_{args.seed}.json", record)


def launch(setup: str, seed: int, core: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    result = args.out / f"{setup}_{seed}.json"
    if not result.exists():
        command = ["taskset", "-c", str(core), sys.executable, __file__, "--child", setup, "--seed", str(seed)]
        command += ["--config", args.config, "--threshold", str(args.threshold), "--budget", str(args.budget)]
        command += ["--eval-every", str(args.eval_every), "--episodes", str(args.episodes), "--out", str(args.out)]
        with open(args.out / f"{setup}_{seed}.log", "w") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return json.loads(result.read_text())


def reached(record: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    for row in record:
        if row["mean_return"] >= threshold:
            return {"reached": True, **row}
    return {"reached": False, **record[-1]}  # censored at the budget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default="hopper_ppo_dr")
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--budget", type=int, default=1_000_000)
    parser.add_argument("--eval-every", type=int, default=25_000)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/time_to_return"))
    parser.add_argument("--child", choices=["simreal", "zoo"], dest="setup")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.setup:
        child(args)
        return
    rows = []
    for seed in args.seeds:  # each seed's pair side by side, one core each
        with ThreadPoolExecutor(2) as pool:
            ours = pool.submit(launch, "simreal", seed, 0, args)
            zoo = pool.submit(launch, "zoo", seed, 1, args)
            rows.append((seed, reached(ours.result(), args.threshold), reached(zoo.result(), args.threshold)))
    import stable_baselines3
    import torch

    versions = f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}"
    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores")
    print(f"python {platform.python_version()}")
    print(f"{versions}; threshold {args.threshold:g}, budget {args.budget}")
    print(f"evaluation every {args.eval_every} timesteps on {args.episodes} nominal episodes")
    print("| seed | simreal: train time (min) at timesteps | zoo: train time (min) at timesteps | ratio simreal/zoo |")
    print("| --- | --- | --- | --- |")

    def cell(hit: dict[str, Any]) -> str:
        mark = "" if hit["reached"] else " (never: censored at the budget)"
        return f"{hit['train_seconds'] / 60:.1f} at {hit['timesteps']}{mark}"

    for seed, ours, zoo in rows:
        ratio = ours["train_seconds"] / zoo["train_seconds"]
        bound = "" if zoo["reached"] or not ours["reached"] else " (at most: zoo censored)"
        print(f"| {seed} | {cell(ours)} | {cell(zoo)} | {ratio:.2f}{bound} |")
    ours_total = sum(o["train_seconds"] for _, o, _ in rows)
    zoo_total = sum(z["train_seconds"] for _, _, z in rows)
    print(f"| total | {ours_total / 60:.1f} | {zoo_total / 60:.1f} | {ours_total / zoo_total:.2f} |")
    atomic_write_json(args.out / "time_to_return.json", [{"seed": s, "simreal": o, "zoo": z} for s, o, z in rows])


if __name__ == "__main__":
    main()
