"""What a sweep on local Ray buys: the same train + evaluate jobs as Ray tasks and one after another in this process.

``simreal sweep CONFIG --seeds N --grid KEY=V1,V2`` (here through ``plan_sweep`` and ``run_sweep``, Ray started and
stopped inside the timing) against the same jobs run by ``run_job`` in a loop, without Ray, into a second folder.
Each job's evaluation returns must be identical in both (same seed, same numbers); the ratio of the wall-clocks is
the speed-up, Ray's start included. Prints the sweep's table of mean and 95% CI over seeds.

    python benchmarks/sweep.py [--config inverted_pendulum_ppo_dr] [--seeds 3]
        [--grid algorithm.hyperparameters.learning_rate=1e-4,3e-4] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import ray
import stable_baselines3
import torch

from simreal.tools.sweep import aggregate, parse_grid, plan_sweep, run_job, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="inverted_pendulum_ppo_dr")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--grid", action="append", default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sweep"))
    args = parser.parse_args()
    grid = parse_grid(args.grid or ["algorithm.hyperparameters.learning_rate=1e-4,3e-4"])
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}, ray {ray.__version__}")
    shutil.rmtree(args.out, ignore_errors=True)
    seeds = list(range(args.seeds))
    on_ray = plan_sweep(args.config, args.out / "ray", seeds, grid)
    in_turn = plan_sweep(args.config, args.out / "sequential", seeds, grid)

    start = time.perf_counter()
    result = run_sweep(on_ray)
    ray_seconds = time.perf_counter() - start
    assert not result.failed, [outcome.error for outcome in result.failed]

    start = time.perf_counter()
    for job in in_turn:
        assert run_job(job)["status"] == "done", job.name
    sequential_seconds = time.perf_counter() - start

    assert aggregate(on_ray) == aggregate(in_turn), "a job's returns differ between Ray and the sequential run"
    job_seconds = sum(outcome.seconds for outcome in result.outcomes)
    print(
        f"\n{len(on_ray)} jobs ({args.config}, {args.seeds} seeds x {len(on_ray) // args.seeds} grid points): "
        f"the Ray sweep takes {ray_seconds / sequential_seconds:.2f}x the time of the same jobs one after another "
        f"({sequential_seconds:.0f} s); its jobs' own wall-clocks sum to {job_seconds / sequential_seconds:.2f}x; "
        "returns identical\n"
    )
    print("| grid point | env | seeds | mean [95% CI] | per seed |")
    print("| --- | --- | ---: | --- | --- |")
    for row in result.rows:
        point = ", ".join(f"{key}={row[key]}" for key in grid) or "config"
        print(
            f"| {point} | {row['env']} | {row['seeds']} | {row['mean_return']:.0f} "
            f"[{row['ci_low']:.0f}, {row['ci_high']:.0f}] | {row['per_seed']} |"
        )


if __name__ == "__main__":
    main()
