"""The main job against its goals: ``simreal train hopper_ppo_dr`` over several seeds, each final model evaluated on
nominal dynamics and every shipped hopper target.

Runs missing from ``--out`` are trained (two at a time, one per core); existing ones (``OUT/seed_S`` run
directories) are evaluated as they are. Each final model: ``simreal evaluate RUN --episodes E --seed 1000``. The
table gives per env the mean return over seeds with a two-stage bootstrap 95% CI (seeds, then episodes within a
seed, so the interval holds seed-to-seed variance), the per-seed means, and the goal.

    python benchmarks/main_job.py [--config hopper_ppo_dr] [--seeds 0 1 2] [--episodes 20] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from simreal.evaluate.gap import mean_return_ci

GOALS = {"nominal": 3000, "mild": 2600, "moderate": 2000, "severe": 1000}


def evaluated(config: str, seed: int, args: argparse.Namespace) -> dict:
    run_dir, report = args.out / f"seed_{seed}", args.out / f"seed_{seed}.json"
    if not report.exists():
        if not (run_dir / "model.zip").exists():
            train = [sys.executable, "-m", "simreal.cli", "train", config, "--seed", str(seed), "--device", "cpu"]
            with open(args.out / f"seed_{seed}.train.log", "w") as log:
                subprocess.run([*train, "--run-dir", str(run_dir)], stdout=log, stderr=subprocess.STDOUT, check=True)
        evaluate = [sys.executable, "-m", "simreal.cli", "evaluate", str(run_dir), "--episodes", str(args.episodes)]
        subprocess.run([*evaluate, "--seed", "1000", "--json", str(report)], capture_output=True, check=True)
    return json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="hopper_ppo_dr")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/main_job"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda seed: evaluated(args.config, seed, args), args.seeds))
    rows = {"nominal": [r["source"]["nominal"]["returns"] for r in reports]}
    if all("randomized" in r["source"] for r in reports):
        rows["training distribution"] = [r["source"]["randomized"]["returns"] for r in reports]
    for target in reports[0]["targets"]:
        rows[target] = [r["targets"][target]["returns"] for r in reports]
    rng = np.random.default_rng(0)
    print(f"{args.config}, seeds {args.seeds}, {args.episodes} episodes each, evaluation seed 1000")
    print("| env | mean return over seeds [95% CI] | per-seed means | goal |")
    print("| --- | --- | --- | --- |")
    for name, groups in rows.items():
        low, high = mean_return_ci(groups, rng)
        mean = float(np.mean([np.mean(g) for g in groups]))
        per_seed = ", ".join(f"{np.mean(g):.0f}" for g in groups)
        goal = GOALS.get(name)
        verdict = "" if goal is None else f">= {goal}: {'met' if mean >= goal else 'missed'}"
        print(f"| {name} | {mean:.0f} [{low:.0f}, {high:.0f}] | {per_seed} | {verdict} |")


if __name__ == "__main__":
    main()
