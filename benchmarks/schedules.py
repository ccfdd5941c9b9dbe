"""Which randomization schedule transfers best? Nominal-only, fixed, curriculum and ADR on hopper, each with the
unmodeled effects randomized or not.

Every variant trains ``configs/hopper_ppo_dr.yaml`` (same PPO hyperparameters, history input, budget and seeds) with
its schedule and effects overridden: ``nominal`` draws no physical parameter, ``+effects`` draws the main job's
effect ranges (delay 0-2 steps, observation and action noise, observation bias), the others have no effects. Then
``simreal evaluate`` runs each final model on every shipped hopper target. Runs go two at a time (one per core). Per
variant and target the table gives the mean target return with a two-stage bootstrap 95% CI (seeds, then episodes
within a seed: the interval holds seed-to-seed variance), the relative gap pooled over seeds with its episode
bootstrap CI, and the per-seed means.

    python benchmarks/schedules.py [--timesteps 1000000] [--seeds 0 1 2] [--episodes 20] [--out DIR]
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

from simreal.evaluate.gap import mean_return_ci, reality_gap

EFFECTS = (
    "randomization.effects={action_delay_steps: [0, 2], obs_noise_std: [0.0, 0.02], action_noise_std: [0.0, 0.05], "
    "obs_bias_std: [0.0, 0.01]}"
)
NO_EFFECTS = "randomization.effects={}"
_SCHEDULES = {
    "fixed": ["randomization.schedule={kind: fixed}"],
    "curriculum": ["randomization.schedule={kind: curriculum, initial_fraction: 0.0, ramp_fraction: 0.5}"],
    "adr": [
        "randomization.schedule={kind: adr, initial_width: 0.05, step: 0.05, probability: 0.5, buffer_size: 10, "
        "thresholds: {low: 0.5, high: 0.8, relative: true}}"
    ],
}
SCHEDULES = {
    "nominal": ["randomization.enabled=false", NO_EFFECTS],  # no randomization at all
    **{name: [*settings, NO_EFFECTS] for name, settings in _SCHEDULES.items()},
    # no physical parameter drawn, the effects drawn
    "nominal+effects": ["randomization.parameters=[]", "randomization.schedule={kind: fixed}", EFFECTS],
    **{f"{name}+effects": [*settings, EFFECTS] for name, settings in _SCHEDULES.items()},
}


def run(command: list[str], log: Path) -> None:
    with open(log, "w") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=True)


def train_and_evaluate(schedule: str, seed: int, args: argparse.Namespace) -> Path:
    run_dir = args.out / f"{schedule}_{seed}"
    report = args.out / f"{schedule}_{seed}.json"
    if not report.exists():
        settings = [f"total_timesteps={args.timesteps}", "eval.frequency=100000", *SCHEDULES[schedule]]
        train = [sys.executable, "-m", "simreal.cli", "train", "hopper_ppo_dr", "--seed", str(seed)]
        # the schedules under plain randomization, as they were measured (ADR draws its own boundary episodes)
        train += ["--set", "robust.method=none", "--set", "algorithm.privileged_critic=false"]
        train += [item for s in settings for item in ("--set", s)] + ["--run-dir", str(run_dir), "--device", "cpu"]
        if not (run_dir / "model.zip").exists():
            run(train, args.out / f"{schedule}_{seed}.train.log")
        evaluate = [sys.executable, "-m", "simreal.cli", "evaluate", str(run_dir), "--episodes", str(args.episodes)]
        run([*evaluate, "--seed", "1000", "--json", str(report)], args.out / f"{schedule}_{seed}.eval.log")
    return report


def summarize(reports: dict[str, list[dict]]) -> str:
    targets = list(next(iter(reports.values()))[0]["targets"])
    lines = [
        "| variant | target | mean target return [95% CI over seeds and episodes] | relative gap [95% CI] "
        "| per-seed target means |",
        "| --- | --- | --- | --- | --- |",
    ]
    rng = np.random.default_rng(0)
    for schedule, runs in reports.items():
        nominal = np.concatenate([r["source"]["nominal"]["returns"] for r in runs])
        lines.append(
            f"| {schedule} | source nominal | {nominal.mean():.0f} | | "
            + ", ".join(f"{r['source']['nominal']['mean_return']:.0f}" for r in runs)
            + " |"
        )
        for target in targets:
            groups = [r["targets"][target]["returns"] for r in runs]
            returns = np.concatenate(groups)
            low, high = mean_return_ci(groups, rng)
            gap = reality_gap(nominal, returns, rng)
            per_seed = ", ".join(f"{r['targets'][target]['mean_return']:.0f}" for r in runs)
            lines.append(
                f"| {schedule} | {target} | {returns.mean():.0f} [{low:.0f}, {high:.0f}] | "
                f"{gap.relative_gap:.1%} [{gap.relative_gap_ci[0]:.1%}, {gap.relative_gap_ci[1]:.1%}] | {per_seed} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=list(SCHEDULES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/schedules"))
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    jobs = [(schedule, seed) for seed in args.seeds for schedule in args.schedules]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        paths = dict(zip(jobs, pool.map(lambda job: train_and_evaluate(*job, args), jobs), strict=True))
    reports = {s: [json.loads(paths[(s, seed)].read_text()) for seed in args.seeds] for s in args.schedules}
    table = summarize(reports)
    (args.out / "summary.md").write_text(table + "\n")
    print(
        f"{len(jobs)} runs of {args.timesteps} timesteps, seeds {args.seeds}, {args.episodes} episodes each, "
        f"{time.perf_counter() - start:.0f} s"
    )
    print(table)


if __name__ == "__main__":
    main()
