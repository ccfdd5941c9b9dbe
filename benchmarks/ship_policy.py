"""Ship a trained run as a policy in ``policies/``: trim the run directory to what running it needs, evaluate it on
nominal dynamics, the training distribution and every shipped target, and write its model card.

    python benchmarks/ship_policy.py RUN_DIR NAME [--episodes 20] [--seed 1000] [--note TEXT]

``policies/NAME/`` gets the model's files (``weights.pt``, ``model.json``, ``vecnormalize.npz``, and stable-baselines3's
``model.zip``, ``vecnormalize.pkl``), ``config.yaml``, ``run.json``, ``eval.json`` (the
``simreal evaluate --json`` document) and ``MODEL_CARD.md`` (config, seed, budget, returns with bootstrap 95% CIs,
the commands that reproduce it). An existing ``policies/NAME`` is replaced only once the new one is complete.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import stable_baselines3
import torch
import yaml

import simreal
from simreal.evaluate.evaluator import evaluate_run
from simreal.fileio import replace_dir, staging_dir

KEEP = ("weights.pt", "model.json", "vecnormalize.npz", "model.zip", "vecnormalize.pkl", "config.yaml", "run.json")
#: an adaptive run's estimator and its training record, kept when the run has them
ADAPTIVE = ("osi.pt", "osi.json", "rma.json")


def card(name: str, report: dict, config: dict, run: dict, args: argparse.Namespace) -> str:
    def row(label: str, entry: dict) -> str:
        low, high = entry["mean_return_ci95"]
        gap = ""
        if "relative_gap" in entry:
            gap_low, gap_high = entry["relative_gap_ci95"]
            gap = f"{entry['relative_gap']:.1%} [{gap_low:.1%}, {gap_high:.1%}]"
        # as many decimals as returns of this size need (hopper's are in the thousands, reacher's near -5)
        scale = max(abs(entry["mean_return"]), abs(low), abs(high))
        d = 0 if scale >= 100 else 1 if scale >= 10 else 2
        mean, std = entry["mean_return"], entry["std_return"]
        return f"| {label} | {mean:.{d}f} [{low:.{d}f}, {high:.{d}f}] | {std:.{d}f} | {gap} |"

    rows = [row("source: nominal", report["source"]["nominal"])]
    if "randomized" in report["source"]:
        rows.append(row("source: training distribution", report["source"]["randomized"]))
    rows += [row(f"target: {target}", entry) for target, entry in report["targets"].items()]
    program = Path(run["command"][0]).name
    command = " ".join(["python -m simreal.cli" if program == "__main__.py" else program, *run["command"][1:]])
    return "\n".join(
        [
            f"# `{name}`",
            "",
            args.note or f"{config['algorithm']['name'].upper()} on {config['robot']}.",
            "",
            f"- robot: `{config['robot']}`; algorithm: `{config['algorithm']['name']}` (stable-baselines3)",
            f"- seed: {config['seed']}; budget: {config['total_timesteps']:,} timesteps "
            f"(trained: {run.get('num_timesteps', 0):,})",
            f"- trained with: `{command}` (simreal {run.get('simreal_version')}, commit "
            f"`{str(run.get('git_commit'))[:7]}`, device {run.get('device')})",
            f"- history input: {config['env'].get('history', 0)} steps",
            *([f"- reproduce: `{args.reproduce}`"] if args.reproduce else []),
            "",
            f"Evaluated {time.strftime('%Y-%m-%d')} with `simreal evaluate policies/{name} --episodes {args.episodes} "
            f"--seed {args.seed}` ({platform.machine()}, python {platform.python_version()}, simreal "
            f"{simreal.__version__}, stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}); "
            "deterministic actions; mean return with its bootstrap 95% CI over episodes (one training seed: the CI "
            "holds no seed-to-seed variance), relative gap to the nominal return with its CI:",
            "",
            "| env | mean return [95% CI] | std | relative gap [95% CI] |",
            "| --- | ---: | ---: | --- |",
            *rows,
            "",
            f"What reproduces where: on the machine that made this card ({_cpu()}, the same library builds), the "
            "evaluation command above gives these numbers to the last digit, every time. On another CPU (other "
            "vector instructions, another torch or MuJoCo build) the policy's matrix products round differently and "
            "a few hundred steps of a hopper turn that into other episodes: expect each mean within a few standard "
            "errors of the card's (the test suite allows 4), not the same digits.",
            "",
            "The training config (`config.yaml`):",
            "",
            "```yaml",
            yaml.safe_dump(config, sort_keys=False).strip(),
            "```",
            "",
        ]
    )


def _cpu() -> str:
    """The CPU's model name (Linux), else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--note", default="")
    parser.add_argument("--reproduce", default="", help="a command that trains the same policy (same seed, config)")
    parser.add_argument("--policies", type=Path, default=Path(__file__).resolve().parents[1] / "policies")
    args = parser.parse_args()
    final = args.policies / args.name
    staged = staging_dir(final)
    for file in KEEP:
        shutil.copy2(args.run_dir / file, staged / file)
    for file in ADAPTIVE:
        if (args.run_dir / file).exists():
            shutil.copy2(args.run_dir / file, staged / file)
    report = evaluate_run(staged, episodes=args.episodes, seed=args.seed)
    report["model"] = f"policies/{args.name}/model.zip"
    (staged / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    config = yaml.safe_load((staged / "config.yaml").read_text())
    run = json.loads((staged / "run.json").read_text())
    (staged / "MODEL_CARD.md").write_text(card(args.name, report, config, run, args))
    replace_dir(staged, final)
    print((final / "MODEL_CARD.md").read_text())


if __name__ == "__main__":
    main()
