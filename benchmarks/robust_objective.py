"""Robust objective and asymmetric critic against plain randomization: the main job (``hopper_ppo_dr``) trained
four ways, each final model evaluated on nominal dynamics and the shipped targets and mapped along every axis of its
training range (others nominal).

Variants: ``plain`` (``robust.method=none``, ``algorithm.privileged_critic=false``: the main job before either
existed), ``asymmetric`` (``algorithm.privileged_critic=true``), ``weakest`` (``robust.method=weakest``, the
config's bins), ``weakest_asymmetric`` (both: the main job since). Runs missing from ``--out`` are trained two at a time
(one per core); existing ones are evaluated as they are.

Per run: ``simreal evaluate RUN --episodes E --seed 1000``, and for each randomized axis ``simreal robustness RUN
--params AXIS --range LOW:HIGH --grid G --episodes M --seed 1000`` over exactly its training range, whose JSON
``coverage`` gives the worst cell relative to nominal and the share of the range at or above 70% of nominal. The
tables give per variant the mean over seeds with a two-stage bootstrap 95% CI (seeds, then episodes).

    python benchmarks/robust_objective.py [--variants plain weakest ...] [--seeds 0 1 2] [--phase train|all]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from simreal.evaluate.gap import mean_return_ci
from simreal.runs.rundir import saved_config
from simreal.runs.setup import resolve

VARIANTS = {
    "plain": ["robust.method=none", "algorithm.privileged_critic=false"],
    "asymmetric": ["robust.method=none", "algorithm.privileged_critic=true"],
    "weakest": ["robust.method=weakest", "algorithm.privileged_critic=false"],
    "weakest_asymmetric": ["robust.method=weakest", "algorithm.privileged_critic=true"],
}
GOALS = {"nominal": 3000, "mild": 2600, "moderate": 2000, "severe": 1000}
CLI = [sys.executable, "-m", "simreal.cli"]


def trained(args: argparse.Namespace, variant: str, seed: int) -> Path:
    run_dir = args.out / variant / f"seed_{seed}"
    if not (run_dir / "model.zip").exists():
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        overrides = [item for pair in VARIANTS[variant] for item in ("--set", pair)]
        command = [*CLI, "train", args.config, "--seed", str(seed), "--device", "cpu", *overrides]
        if (run_dir / "config.yaml").exists():
            command = [*CLI, "train", "--resume", str(run_dir), "--device", "cpu"]
        else:
            command += ["--run-dir", str(run_dir)]
        with open(run_dir.parent / f"seed_{seed}.train.log", "w") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    return run_dir


def evaluated(args: argparse.Namespace, run_dir: Path) -> dict:
    report = run_dir / "benchmark_eval.json"
    if not report.exists():
        command = [*CLI, "evaluate", str(run_dir), "--episodes", str(args.episodes), "--seed", "1000"]
        subprocess.run([*command, "--json", str(report)], capture_output=True, check=True)
    return json.loads(report.read_text())


def mapped(args: argparse.Namespace, run_dir: Path) -> dict[str, dict]:
    """Each axis's robustness JSON over its training range (one worker: two runs are mapped at once)."""
    setup = resolve(saved_config(run_dir))
    maps = {}
    for axis, r in setup.ranges.items():
        out = run_dir / "benchmark_maps" / axis
        if not (out / "robustness.json").exists():
            command = [*CLI, "robustness", str(run_dir), "--params", axis, "--range", f"{r.low}:{r.high}"]
            command += ["--grid", str(args.grid), "--episodes", str(args.map_episodes), "--seed", "1000"]
            subprocess.run([*command, "--workers", "1", "--out", str(out)], capture_output=True, check=True)
        maps[axis] = json.loads((out / "robustness.json").read_text())["coverage"]["policy"]["axes"][axis]
    return maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="hopper_ppo_dr")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--grid", type=int, default=5)
    parser.add_argument("--map-episodes", type=int, default=6)
    parser.add_argument("--phase", choices=["train", "all"], default="all")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/robust_objective"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [(variant, seed) for seed in args.seeds for variant in args.variants]
    with ThreadPoolExecutor(min(2, os.cpu_count() or 1)) as pool:
        runs = list(pool.map(lambda job: trained(args, *job), jobs))
    if args.phase == "train":
        return
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda run: evaluated(args, run), runs))
        maps = list(pool.map(lambda run: mapped(args, run), runs))
    rng = np.random.default_rng(0)
    print(f"{args.config}, seeds {args.seeds}, {args.episodes} evaluation episodes each, evaluation seed 1000")
    print("| variant | env | mean return over seeds [95% CI] | per-seed means | goal |")
    print("| --- | --- | --- | --- | --- |")
    for variant in args.variants:
        mine = [r for (v, _), r in zip(jobs, reports, strict=True) if v == variant]
        rows = {"nominal": [r["source"]["nominal"]["returns"] for r in mine]}
        for target in mine[0]["targets"]:
            rows[target] = [r["targets"][target]["returns"] for r in mine]
        for name, groups in rows.items():
            low, high = mean_return_ci(groups, rng)
            means = ", ".join(f"{np.mean(g):.0f}" for g in groups)
            mean = np.mean([np.mean(g) for g in groups])
            print(f"| {variant} | {name} | {mean:.0f} [{low:.0f}, {high:.0f}] | {means} | {GOALS.get(name, '')} |")
    print()
    print(f"Single-axis maps over each training range: {args.grid} cells, {args.map_episodes} episodes per cell")
    print("| variant | axis | worst cell / nominal (per seed) | share of range >= 70% nominal (per seed) |")
    print("| --- | --- | --- | --- |")
    for variant in args.variants:
        mine = [m for (v, _), m in zip(jobs, maps, strict=True) if v == variant]
        for axis in mine[0]:
            coverage = [m[axis] for m in mine]
            worst = ", ".join(f"{c['worst_relative']:.0%}" for c in coverage)
            share = ", ".join(f"{c['fraction_at_70']:.0%}" for c in coverage)
            print(f"| {variant} | {axis} | {worst} | {share} |")
    print()
    print("| variant | axes with worst cell >= 60% of nominal (per seed) | weakest axis: worst / nominal (per seed) |")
    print("| --- | --- | --- |")
    for variant in args.variants:
        mine = [m for (v, _), m in zip(jobs, maps, strict=True) if v == variant]
        met = ", ".join(f"{sum(c['worst_relative'] >= 0.6 for c in m.values())}/{len(m)}" for m in mine)
        weakest = [min(m.items(), key=lambda item: item[1]["worst_relative"]) for m in mine]
        named = ", ".join(f"{c['worst_relative']:.0%} ({axis})" for axis, c in weakest)
        print(f"| {variant} | {met} | {named} |")


if __name__ == "__main__":
    main()
