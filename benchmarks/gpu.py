"""PPO and SAC with ``--device cuda`` beside the same runs on the CPU: env steps per second of training and the
return reached, for the main job's randomized hopper. Meant for a machine with a GPU (nothing in simreal needs one);
without CUDA it says so and measures the CPU rows only.

Each learner trains ``--steps`` env steps (no periodic evaluation or checkpoints) on each device, one after the
other in this process; the final model is evaluated with ``simreal evaluate``'s episodes at nominal dynamics. The
ratio column is the CUDA run's steps/s over the CPU run's, measured in the same invocation.

    python benchmarks/gpu.py [--steps 200000] [--sac-steps 20000] [--episodes 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from simreal.evaluate.evaluator import evaluate_run
from simreal.runs.setup import load_setup
from simreal.train.trainer import train

SAC = (
    "algorithm={name: sac, hyperparameters: {learning_starts: 5000, batch_size: 256}, "
    "network: {pi: [256, 256], qf: [256, 256], activation: relu}}"
)


def one(learner: str, device: str, steps: int, args: argparse.Namespace) -> dict:
    overrides = [f"total_timesteps={steps}", "eval.frequency=0", "checkpoint.frequency=0", "eval.episodes=1"]
    if learner == "sac":
        overrides += [SAC, "env.n_envs=1", "env.normalize.rewards=false"]
    setup = load_setup("hopper_ppo_dr", overrides)
    run_dir = args.out / f"{learner}_{device}"
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    result = train(setup, run_dir, device=device)
    seconds = time.perf_counter() - start
    evaluation = evaluate_run(run_dir, [], args.episodes, seed=1000, device=device)
    nominal = evaluation["source"]["nominal"]
    return {
        "learner": learner,
        "device": device,
        "steps": result.num_timesteps,
        "seconds": seconds,
        "steps_per_second": result.num_timesteps / seconds,
        "nominal": nominal["mean_return"],
        "nominal_ci95": nominal["mean_return_ci95"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200_000, help="PPO's env steps per device")
    parser.add_argument("--sac-steps", type=int, default=20_000, help="SAC's env steps per device")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    if len(devices) == 1:
        print("torch sees no CUDA device: CPU rows only")
    else:
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    rows = []
    for learner, steps in (("ppo", args.steps), ("sac", args.sac_steps)):
        for device in devices:
            rows.append(one(learner, device, steps, args))
    (args.out / "gpu.json").write_text(json.dumps(rows, indent=2))
    print(f"torch {torch.__version__}, {args.episodes} evaluation episodes at nominal, seed 1000")
    print("| learner | device | env steps | steps/s | cuda / cpu | nominal return [95% CI] |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for row in rows:
        cpu = next(r for r in rows if r["learner"] == row["learner"] and r["device"] == "cpu")
        ratio = row["steps_per_second"] / cpu["steps_per_second"]
        low, high = row["nominal_ci95"]
        print(
            f"| {row['learner']} | {row['device']} | {row['steps']} | {row['steps_per_second']:.0f} | {ratio:.2f}x "
            f"| {row['nominal']:.0f} [{low:.0f}, {high:.0f}] |"
        )


if __name__ == "__main__":
    main()
