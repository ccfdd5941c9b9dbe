"""PPO against SAC at equal compute on the main job's randomized hopper: each learner trains for the same CPU time
(``--minutes`` of one core: ``time.process_time`` of its own single-threaded process, so two learners running side
by side on two cores, or a busy machine, do not change its budget), then its final model is evaluated with
``simreal evaluate``'s episodes (nominal, the training distribution, the shipped targets).

Learners (all on ``hopper_ppo_dr``'s envs: its ranges, effects, history and observation normalization; the ranges
full from the start and learning rates constant, since a budget in CPU time has no step count for a curriculum or a
decay to follow): ``ppo`` (the main job as shipped), ``sac`` (SAC as SB3 and rl-baselines3-zoo set it for hopper: one
env, one gradient step per env step, batch 256, 256x256 ReLU networks, 10k random steps), ``sac_8envs`` (eight envs,
one gradient step per two env steps: more experience per second of compute), ``sac_8envs_batch512`` (the same with
batches of 512 and one gradient step per four env steps).

    python benchmarks/learners.py [--minutes 10] [--learners ppo sac ...] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

SAC = "{name: sac, hyperparameters: %s, network: {pi: [256, 256], qf: [256, 256], activation: relu}}"
LEARNERS = {
    "ppo": [],
    "sac": [f"algorithm={SAC % '{learning_starts: 10000, batch_size: 256, train_freq: 1, gradient_steps: 1}'}"],
    "sac_8envs": [
        f"algorithm={SAC % '{learning_starts: 10000, batch_size: 256, train_freq: 1, gradient_steps: 4}'}",
    ],
    "sac_8envs_batch512": [
        f"algorithm={SAC % '{learning_starts: 10000, batch_size: 512, train_freq: 1, gradient_steps: 2}'}",
    ],
}
#: SAC keeps raw rewards (its entropy temperature is tuned on their scale); one env unless the learner says eight
SAC_ENVS = {"sac": ["env.n_envs=1", "env.normalize.rewards=false"]}
SAC_ENVS.update({name: ["env.n_envs=8", "env.normalize.rewards=false"] for name in ("sac_8envs", "sac_8envs_batch512")})


class ComputeBudget(BaseCallback):
    """Stops training once this process has used ``seconds`` of CPU time since training started; records the
    timesteps reached and the wall-clock time."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def _on_training_start(self) -> None:
        self.start_cpu, self.start_wall = time.process_time(), time.perf_counter()

    def _on_step(self) -> bool:
        return time.process_time() - self.start_cpu < self.seconds

    def _on_training_end(self) -> None:
        # before the trainer's final evaluation, which is not training
        self.cpu_seconds = time.process_time() - self.start_cpu
        self.wall_seconds = time.perf_counter() - self.start_wall


def train_one(learner: str, seed: int, minutes: float, run_dir: Path) -> None:
    """In this process (called as ``--train-one``): train one learner for its CPU budget."""
    from simreal.runs.setup import load_setup
    from simreal.train.trainer import train

    overrides = [f"seed={seed}", "total_timesteps=20000000", "eval.frequency=0", "checkpoint.frequency=0"]
    overrides += ["randomization.schedule={kind: fixed}", "algorithm.hyperparameters.linear_lr_decay=false"]
    overrides += LEARNERS[learner] + SAC_ENVS.get(learner, [])
    setup = load_setup("hopper_ppo_dr", overrides)
    budget = ComputeBudget(minutes * 60)
    result = train(setup, run_dir, device="cpu", callbacks=[budget])
    record = {
        "learner": learner,
        "timesteps": result.num_timesteps,
        "cpu_seconds": budget.cpu_seconds,
        "wall_seconds": budget.wall_seconds,
        "overrides": overrides,
    }
    (run_dir / "budget.json").write_text(json.dumps(record, indent=2))


def run(learner: str, args: argparse.Namespace) -> dict:
    run_dir = args.out / f"{learner}_seed{args.seed}"
    if not (run_dir / "budget.json").exists():
        command = [sys.executable, __file__, "--train-one", learner, "--seed", str(args.seed)]
        command += ["--minutes", str(args.minutes), "--out", str(args.out)]
        with open(args.out / f"{learner}_seed{args.seed}.log", "w") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    report = run_dir / "benchmark_eval.json"
    if not report.exists():
        command = [sys.executable, "-m", "simreal.cli", "evaluate", str(run_dir), "--episodes", str(args.episodes)]
        subprocess.run([*command, "--seed", "1000", "--json", str(report)], capture_output=True, check=True)
    return {**json.loads((run_dir / "budget.json").read_text()), "eval": json.loads(report.read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", nargs="+", default=list(LEARNERS), choices=list(LEARNERS))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learners"))
    parser.add_argument("--train-one", choices=list(LEARNERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.train_one:
        train_one(args.train_one, args.seed, args.minutes, args.out / f"{args.train_one}_seed{args.seed}")
        return
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda learner: run(learner, args), args.learners))
    reference = next((r for r in results if r["learner"] == "ppo"), results[0])
    ref_return = reference["eval"]["source"]["nominal"]["mean_return"]
    print(f"hopper_ppo_dr's envs, seed {args.seed}, {args.minutes:g} CPU-minutes each, {args.episodes} episodes")
    print(
        "| learner | env steps | steps / CPU-s | nominal | training distribution | mild | moderate | severe "
        f"| nominal / {reference['learner']}'s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        e = r["eval"]
        cells = [e["source"]["nominal"], e["source"]["randomized"], *(e["targets"][t] for t in e["targets"])]
        returns = " | ".join(
            f"{c['mean_return']:.0f} [{c['mean_return_ci95'][0]:.0f}, {c['mean_return_ci95'][1]:.0f}]" for c in cells
        )
        ratio = e["source"]["nominal"]["mean_return"] / ref_return if ref_return else np.nan
        print(
            f"| {r['learner']} | {r['timesteps']} | {r['timesteps'] / r['cpu_seconds']:.0f} | {returns} "
            f"| {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()
