"""Exported policies: parity with simreal, per-action latency on one core, and the deploy -> record -> identify loop.

1. Parity: for every shipped policy, both formats, the largest difference between the export's actions and simreal's
   deterministic ones over 1000 steps on ``severe`` (simreal's actions drive the env; episodes restart as they end).
2. Latency: per action, batch of one, one thread, interleaved rounds (median over rounds): ONNX (onnxruntime),
   TorchScript, stable-baselines3's own ``predict`` on the normalized input (the reference, measured in the same
   rounds) and simreal's runner (input building + normalization + predict); beside the control period.
3. The loop on ``severe``: the same policy's episodes recorded by ``simreal deploy`` (ONNX export) and by ``simreal
   collect`` on the same seeds, each identified by ``simreal sysid`` (every parameter and the delay, the transfer
   pipeline's settings); per parameter, whether each estimate lies inside the other's 90% interval.

    python benchmarks/export.py [--policies hopper_ppo_dr ...] [--rounds 30] [--steps 200] [--episodes 10]
                                [--no-loop] [--out benchmarks/results/export]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from simreal.deploy.deploy import deploy
from simreal.deploy.export import ExportedPolicy, action_difference, export_policy
from simreal.envs.factory import make_env
from simreal.envs.robots import load_target
from simreal.fileio import read_json
from simreal.runs.policy import load_policy
from simreal.sysid.collect import collect
from simreal.sysid.trajectories import save_trajectories

#: every shipped policy
SHIPPED = sorted(p.name for p in Path("policies").iterdir() if (p / "model.zip").is_file())
FORMATS = ("onnx", "torchscript")


def observations(policy: object, count: int) -> list[np.ndarray]:
    """``count`` observations the policy meets on ``severe`` (its own actions driving)."""
    _, target = load_target(policy.setup.spec, "severe")
    env = make_env(policy.setup.spec, fixed=target.parameters, effects=target.effects)
    runner = policy.runner()
    obs, info = env.reset(seed=0)
    action, seen = runner.reset(obs, info), []
    while len(seen) < count:
        seen.append(np.asarray(obs))
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, info = env.reset(seed=len(seen))
            action = runner.reset(obs, info)
        else:
            action = runner.step(obs)
    env.close()
    return seen


def latencies(source: Path, exports: dict[str, Path], rounds: int, steps: int) -> dict[str, float]:
    """Median over rounds of the mean seconds per action of each way to act, the ways interleaved per round."""
    policy = load_policy(source)
    seen = observations(policy, steps)
    runner = policy.runner()
    loaded = {fmt: ExportedPolicy(path) for fmt, path in exports.items()}
    inputs = []
    runner.reset(seen[0], {})
    for obs in seen:  # the normalized inputs SB3 acts on, built once: predict alone is timed
        runner.step(obs)
        inputs.append(runner.last_inputs.copy())

    def exported(fmt: str) -> None:
        loaded[fmt].reset()
        for obs in seen:
            loaded[fmt].act(obs)

    def sb3() -> None:
        for x in inputs:
            policy.model.predict(x, deterministic=True)

    def simreal_runner() -> None:
        runner.reset(seen[0], {})
        for obs in seen[1:]:
            runner.step(obs)

    ways = {
        **{fmt: (lambda f=fmt: exported(f)) for fmt in loaded},
        "sb3 predict": sb3,
        "simreal runner": simreal_runner,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    names = list(ways)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start = time.perf_counter()
            ways[name]()
            times[name].append((time.perf_counter() - start) / len(seen))
    return {name: float(np.median(values)) for name, values in times.items()}


def sysid(recording: Path, out: Path, log: Path) -> dict:
    command = [sys.executable, "-m", "simreal.cli", "sysid", str(recording), "--robot", "hopper", "--delay"]
    command += ["--budget", "3000", "--out", str(out.with_suffix(".yaml")), "--json", str(out)]
    with open(log, "w") as handle:
        subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=True)
    return read_json(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", nargs="+", default=SHIPPED)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/export"))
    parser.add_argument("--no-loop", action="store_true", help="parity and latency only")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    import onnxruntime
    import stable_baselines3

    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.processor() or '?'}, {os.cpu_count()} cores")
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
        f"stable-baselines3 {stable_baselines3.__version__}; one thread"
    )
    print(
        "\n| policy | state size | parity ONNX | parity TorchScript | ONNX us/action | TorchScript us/action "
        "| SB3 predict us/action | simreal runner us/action | ONNX / SB3 | ONNX / control period |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")  # fmt: skip
    for name in args.policies:
        source = Path("policies") / name
        exports = {fmt: args.out / f"{name}_{fmt}" for fmt in FORMATS}
        for fmt, folder in exports.items():
            export_policy(source, fmt, folder)
        worst = {fmt: action_difference(source, folder, "severe", 1000) for fmt, folder in exports.items()}
        timing = latencies(source, exports, args.rounds, args.steps)
        period = read_json(exports["onnx"] / "manifest.json")["control_period_s"]
        state = read_json(exports["onnx"] / "manifest.json")["state_size"]
        us = {k: v * 1e6 for k, v in timing.items()}
        print(
            f"| {name} | {state} | {worst['onnx']:.1e} | {worst['torchscript']:.1e} | {us['onnx']:.0f} "
            f"| {us['torchscript']:.0f} | {us['sb3 predict']:.0f} | {us['simreal runner']:.0f} "
            f"| {timing['onnx'] / timing['sb3 predict']:.2f} | {timing['onnx'] / period:.2%} |"
        )
    if args.no_loop:
        return
    # the loop on severe: deploy (ONNX) against collect, same policy and seeds
    source = Path("policies") / "hopper_ppo_dr"
    deployed = deploy(args.out / "hopper_ppo_dr_onnx", "severe", args.episodes, 0, args.out / "deployed.npz")
    save_trajectories(collect(source, "hopper", "severe", args.episodes, 0), args.out / "collected.npz")
    results = {
        way: sysid(args.out / f"{way}.npz", args.out / f"{way}_sysid.json", args.out / f"{way}_sysid.log")
        for way in ("deployed", "collected")
    }
    print(f"\nthe loop on severe, {args.episodes} episodes (deploy returns {np.mean(deployed.returns):.1f} mean):")
    print("| parameter | deployed estimate [90%] | collected estimate [90%] | each inside the other's interval |")
    print("| --- | --- | --- | --- |")
    a, b = (results[w]["parameters"] for w in ("deployed", "collected"))
    for parameter in a:
        x, y = a[parameter], b[parameter]
        (xl, xh), (yl, yh) = x["interval"], y["interval"]
        inside = xl <= y["estimate"] <= xh and yl <= x["estimate"] <= yh
        print(
            f"| {parameter} | {x['estimate']:.4f} [{xl:.4f}, {xh:.4f}] | {y['estimate']:.4f} [{yl:.4f}, {yh:.4f}] "
            f"| {'yes' if inside else 'no'} |"
        )
    delays = {way: result["action_delay_steps"] for way, result in results.items()}
    print(f"delay: deployed {delays['deployed']}, collected {delays['collected']}")


if __name__ == "__main__":
    main()
