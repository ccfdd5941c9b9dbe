"""How much of hopper's reality gap each transfer step closes, at what cost in target steps.

For each target and seed, with the main job's policy of that seed as the sim policy
(``benchmarks/results/main_job/seed_S``, see ``benchmarks/main_job.py``):

1. an oracle per target, as the pipeline's oracle stage builds it: the better of ``simreal finetune SRC --strategy
   full`` and ``simreal finetune SRC --from-scratch`` on the target, each with the sim budget (1M steps), trained
   once per target (``--oracle-seeds``) and shared by the seeds' pipelines;
2. ``simreal transfer`` with zero-shot, sysid (10 episodes, every parameter and the delay, CMA-ES budget 3000),
   200k steps of the policy continued in the identified simulator, fine-tuning from the sim policy (``full``,
   ``--finetune-steps``) against a from-scratch run of the same budget, and the shared oracle;
3. every strategy side by side, each from the sim policy with the same budget: full, head, partial, progressive, each
   with and without L2-SP (``--l2sp``), judged against the pipeline's from-scratch run.

Curve evaluations (at 0, 50k and 100k) are not counted against the fine-tuning budget (``--no-count-eval``): the
budget is training interaction, evaluation steps are reported apart. The pipelines' policies are evaluated on the
same 20 target episodes (seed 1000); the strategies by their own final evaluation (20 target episodes from seed
10000 + seed): the bootstrap treats the sets as independent samples either way. Jobs run two at a time (one per
core); finished jobs are skipped on a rerun.

    python benchmarks/transfer.py [--targets severe moderate] [--seeds 0 1 2] [--finetune-steps 100000]
                                  [--out benchmarks/results/transfer]
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
import yaml

from simreal.evaluate.gap import fraction_closed, mean_return_ci

STRATEGIES = ["full", "head", "partial", "progressive"]


def run(command: list[str], log: Path) -> None:
    with open(log, "w") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=True)


def cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "simreal.cli", *arguments]


#: the oracle's candidates and the ``simreal finetune`` flags that train each
CANDIDATES = {"scratch": ["--from-scratch"], "finetuned": ["--strategy", "full"]}


def candidate_folder(target: str, seed: int, name: str, args: argparse.Namespace) -> Path:
    return args.out / f"oracle_{target}_{seed}_{name}"


def candidate_finals(target: str, seed: int, args: argparse.Namespace) -> dict[str, float]:
    """Each oracle candidate's mean return in its own final evaluation."""
    return {
        name: json.loads((candidate_folder(target, seed, name, args) / "finetune.json").read_text())["final"][
            "mean_return"
        ]
        for name in CANDIDATES
    }


def oracle(target: str, seed: int, args: argparse.Namespace) -> Path:
    """The pipeline's oracle, trained once per target: the better of the sim policy fine-tuned on the target
    (``full``) and a policy from scratch there, each with the sim budget, by the mean of its own final evaluation
    (20 target episodes from seed 10000 + seed: not the episodes the pipelines are judged on)."""
    source = args.sources.format(seed=seed)
    for name, extra in CANDIDATES.items():
        folder = candidate_folder(target, seed, name, args)
        if not (folder / "finetune.json").exists():
            command = cli("finetune", source, "--target", target, "--steps", str(args.oracle_steps), *extra)
            command += ["--no-count-eval", "--eval-every", "100000", "--final-episodes", "20", "--seed", str(seed)]
            run([*command, "--run-dir", str(folder), "--device", "cpu"], args.out / f"{folder.name}.log")
    finals = candidate_finals(target, seed, args)
    return candidate_folder(target, seed, max(finals, key=finals.__getitem__), args)


def pipeline(target: str, seed: int, args: argparse.Namespace) -> Path:
    folder = args.out / f"pipeline_{target}_{seed}"
    if not (folder / "report.json").exists() or not json.loads((folder / "report.json").read_text())["complete"]:
        config = {
            "kind": "transfer",
            "target": target,
            "seed": seed,
            "episodes": 20,
            "eval_seed": 1000,
            "source": {"run": args.sources.format(seed=seed)},
            "stages": {
                "sysid": {"episodes": 10, "delay": True, "budget": args.sysid_budget},
                "identified": {"mode": "finetune", "timesteps": args.identified_steps},
                "finetune": {
                    "start": "source",
                    "steps": args.finetune_steps,
                    "strategy": "full",
                    "count_eval": False,
                    "eval_every": 50000,
                },
                "oracle": {"run": str(oracle(target, args.oracle_seeds[0], args))},
            },
        }
        path = args.out / f"pipeline_{target}_{seed}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        run(cli("transfer", str(path), "--out", str(folder), "--device", "cpu"), args.out / f"{path.stem}.log")
    return folder


def strategy(target: str, seed: int, name: str, l2sp: float, args: argparse.Namespace) -> Path:
    label = f"{name}{'+l2sp' if l2sp else ''}"
    folder = args.out / f"ft_{target}_{seed}_{label}"
    if not (folder / "finetune.json").exists():
        source = args.sources.format(seed=seed)
        command = cli("finetune", source, "--target", target, "--steps", str(args.finetune_steps))
        command += ["--strategy", name, "--l2sp", str(l2sp), "--no-count-eval", "--eval-every", "50000"]
        command += ["--seed", str(seed), "--baseline", str(args.out / f"pipeline_{target}_{seed}" / "scratch")]
        run([*command, "--run-dir", str(folder), "--device", "cpu"], args.out / f"ft_{target}_{seed}_{label}.log")
    return folder


def parallel(jobs: list, args: argparse.Namespace) -> list:
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        return list(pool.map(lambda job: job[0](*job[1:], args), jobs))


def returns_of(evaluation_json: Path, target: str) -> list[float]:
    return json.loads(evaluation_json.read_text())["targets"][target]["returns"]


def row(
    label: str, per_seed: dict[int, dict], zero: dict, oracle_returns: list[float], rng: np.random.Generator
) -> str:
    """One table row: mean over seeds with a two-stage CI, per-seed fractions of the gap closed, and the rest."""
    seeds = list(per_seed)
    groups = [per_seed[s]["returns"] for s in seeds]
    low, high = mean_return_ci(groups, rng)
    fractions = []
    for s in seeds:
        if per_seed[s]["returns"] is zero[s]:
            fractions.append("0 (reference)")
            continue
        closed = fraction_closed(zero[s], per_seed[s]["returns"], oracle_returns, rng)
        fractions.append(
            "undefined" if closed.value is None else f"{closed.value:.2f} [{closed.ci[0]:.2f}, {closed.ci[1]:.2f}]"
        )
    steps = "/".join(str(per_seed[s]["steps"]) for s in seeds)
    forgetting = ", ".join(per_seed[s].get("forgetting", "") for s in seeds)
    against = ", ".join(per_seed[s].get("against", "") for s in seeds)
    means = ", ".join(f"{np.mean(g):.0f}" for g in groups)
    mean = np.mean([np.mean(g) for g in groups])
    return (
        f"| {label} | {steps} | {mean:.0f} [{low:.0f}, {high:.0f}] | {means} | {'; '.join(fractions)} "
        f"| {forgetting} | {against} |"
    )


def stage(args: argparse.Namespace, target: str, name: str) -> dict[int, dict]:
    """A pipeline stage's evaluation returns and target steps per seed."""
    out = {}
    for s in args.seeds:
        folder = args.out / f"pipeline_{target}_{s}"
        report = json.loads((folder / "report.json").read_text())
        record = {r["stage"]: r for r in report["stages"]}[name]
        out[s] = {
            "returns": returns_of(folder / "evaluations" / f"{name}.json", target),
            "steps": record["target_steps_total"],
        }
        if "against_scratch" in record:
            against = record["against_scratch"]
            out[s]["against"] = f"{against['transfer']} {against['difference']:+.0f}"
        if "forgetting" in record:
            out[s]["forgetting"] = f"{record['forgetting']['drop']:.0f}"
    return out


def finetuned(args: argparse.Namespace, target: str, label: str) -> dict[int, dict]:
    """A strategy's evaluation returns, budget used, forgetting and verdict per seed."""
    out = {}
    for s in args.seeds:
        report = json.loads((args.out / f"ft_{target}_{s}_{label}" / "finetune.json").read_text())
        against = report["against_scratch"]
        out[s] = {
            "returns": report["final"]["returns"],
            "steps": report["budget"]["used"],
            "forgetting": f"{report['forgetting']['drop']:.0f}",
            "against": f"{against['transfer']} {against['difference']:+.0f}",
        }
    return out


def summarize(args: argparse.Namespace) -> str:
    rng = np.random.default_rng(0)
    lines = []
    for target in args.targets:
        first = args.out / f"pipeline_{target}_{args.seeds[0]}" / "evaluations"
        oracle_returns = returns_of(first / "oracle.json", target)
        zero = {s: returns_of(args.out / f"pipeline_{target}_{s}" / "evaluations" / "zero_shot.json", target)
                for s in args.seeds}  # fmt: skip
        finals = candidate_finals(target, args.oracle_seeds[0], args)
        candidates = ", ".join(f"{name} {mean:.0f}" for name, mean in finals.items())
        lines += [
            f"### {target}",
            "",
            f"Oracle (1 seed, {args.oracle_steps} target steps, {oracle(target, args.oracle_seeds[0], args).name}): "
            f"{np.mean(oracle_returns):.0f} on the pipelines' episodes; the candidates' own final evaluations: "
            f"{candidates}.",
            "",
            "| policy | target steps | target return, mean over seeds [95% CI] | per-seed returns "
            "| fraction of gap closed per seed [95% CI] | forgetting (source drop) per seed "
            "| vs from scratch per seed |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        zero_shot = {s: {**row_, "returns": zero[s]} for s, row_ in stage(args, target, "zero_shot").items()}
        lines.append(row("zero-shot", zero_shot, zero, oracle_returns, rng))
        identified = stage(args, target, "identified")
        lines.append(row("sysid + identified simulator", identified, zero, oracle_returns, rng))
        lines.append(row("from scratch", stage(args, target, "scratch"), zero, oracle_returns, rng))
        lines.append(
            row("fine-tuned: full (the pipeline's)", stage(args, target, "finetune"), zero, oracle_returns, rng)
        )
        for name in STRATEGIES:
            for l2sp in (0.0, args.l2sp):
                label = f"{name}{'+l2sp' if l2sp else ''}"
                if not all((args.out / f"ft_{target}_{s}_{label}" / "finetune.json").exists() for s in args.seeds):
                    continue  # the strategies phase was not run
                lines.append(row(f"fine-tuned: {label}", finetuned(args, target, label), zero, oracle_returns, rng))
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["severe", "moderate"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--oracle-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sources", default="benchmarks/results/main_job/seed_{seed}")
    parser.add_argument("--finetune-steps", type=int, default=100_000)
    parser.add_argument("--identified-steps", type=int, default=200_000)
    parser.add_argument("--oracle-steps", type=int, default=1_000_000)
    parser.add_argument("--l2sp", type=float, default=0.1)
    parser.add_argument("--sysid-budget", type=int, default=3000)
    parser.add_argument("--phases", nargs="+", default=["oracle", "pipeline", "strategies"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/transfer"))
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if "oracle" in args.phases:
        parallel([(oracle, t, s) for t in args.targets for s in args.oracle_seeds], args)
    if "pipeline" in args.phases:
        parallel([(pipeline, t, s) for s in args.seeds for t in args.targets], args)
    if "strategies" in args.phases:
        jobs = [
            (strategy, t, s, n, a)
            for s in args.seeds
            for t in args.targets
            for n in STRATEGIES
            for a in (0.0, args.l2sp)
        ]
        parallel(jobs, args)
    import stable_baselines3
    import torch

    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    elapsed = time.perf_counter() - start
    print(f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}; {elapsed:.0f} s")
    table = summarize(args)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
