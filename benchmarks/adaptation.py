"""Issue 13's goals: do the adaptive policies beat plain randomization on every shipped hopper target with zero target
steps, and the universal policy given the true parameters on the targets outside the training ranges?

For each seed: ``simreal train hopper_ppo_uposi`` and ``simreal train hopper_ppo_rma`` (the main job's recipe, budget
and seeds, plus the adaptive parts), each evaluated on nominal dynamics and every shipped target with its own
estimate (``simreal evaluate RUN --episodes 20 --seed 1000``) and with the true parameters (``--true-dynamics``: the
universal policy alone, RMA's base policy on the encoded truth). Plain randomization is the main job
(``benchmarks/results/main_job/seed_S.json``, see ``benchmarks/main_job.py``: the same evaluation). The table gives
per target the mean return over seeds with a two-stage bootstrap 95% CI (seeds, then episodes), the per-seed means,
and each estimator's error on the target. Runs go two at a time (one per core); finished ones are skipped.

    python benchmarks/adaptation.py [--seeds 0 1 2] [--episodes 20] [--set key=value ...] [--out DIR]
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

import numpy as np

from simreal.evaluate.gap import mean_return_ci

KINDS = ("uposi", "rma")


def run(command: list[str], log: Path) -> None:
    with open(log, "w") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=True)


def trained_and_evaluated(kind: str, seed: int, args: argparse.Namespace) -> None:
    run_dir = args.out / f"{kind}_{seed}"
    cli = [sys.executable, "-m", "simreal.cli"]
    if not (run_dir / "eval.json").exists():
        command = [*cli, "train", f"hopper_ppo_{kind}", "--seed", str(seed), "--run-dir", str(run_dir)]
        command += [item for setting in args.set for item in ("--set", setting)] + ["--device", "cpu"]
        run(command, args.out / f"{kind}_{seed}.train.log")
    for suffix, flags in (("", []), (".true", ["--true-dynamics"])):
        report = args.out / f"{kind}_{seed}{suffix}.json"
        if not report.exists():
            evaluate = [*cli, "evaluate", str(run_dir), "--episodes", str(args.episodes), "--seed", "1000"]
            run([*evaluate, "--json", str(report), *flags], args.out / f"{kind}_{seed}{suffix}.eval.log")


def summarize(args: argparse.Namespace) -> str:
    rng = np.random.default_rng(0)
    policies = {"plain randomization (main job)": [args.plain.format(seed=s) for s in args.seeds]}
    for kind, label in (("uposi", "UP-OSI"), ("rma", "RMA")):
        policies[f"{label}, its estimate"] = [args.out / f"{kind}_{s}.json" for s in args.seeds]
        policies[f"{label}, true parameters"] = [args.out / f"{kind}_{s}.true.json" for s in args.seeds]
    reports = {label: [json.loads(Path(p).read_text()) for p in paths] for label, paths in policies.items()}
    envs = ["nominal", *reports["plain randomization (main job)"][0]["targets"]]
    lines = [
        "| env | policy | mean return over seeds [95% CI] | per-seed means | estimator error (mean over seeds) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for env in envs:
        for label, runs in reports.items():
            rows = [r["source"]["nominal"] if env == "nominal" else r["targets"][env] for r in runs]
            groups = [row["returns"] for row in rows]
            low, high = mean_return_ci(groups, rng)
            mean = np.mean([np.mean(g) for g in groups])
            errors = [row["estimator_error"] for row in rows if row.get("estimator_error")]
            error = (
                ", ".join(f"{name} {np.mean([e[name] for e in errors]):.0%}" for name in errors[0]) if errors else ""
            )
            per_seed = ", ".join(f"{np.mean(g):.0f}" for g in groups)
            lines.append(f"| {env} | {label} | {mean:.0f} [{low:.0f}, {high:.0f}] | {per_seed} | {error} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--set", action="append", default=[], help="--set for both trainings (a smaller budget)")
    parser.add_argument("--plain", default="benchmarks/results/main_job/seed_{seed}.json")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/adaptation"))
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    jobs = [(kind, seed) for seed in args.seeds for kind in KINDS]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(lambda job: trained_and_evaluated(*job, args), jobs))
    import stable_baselines3
    import torch

    elapsed = time.perf_counter() - start
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}; {elapsed:.0f} s")
    table = summarize(args)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
