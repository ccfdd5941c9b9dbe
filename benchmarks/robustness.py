"""Issue 14's figures: where the shipped hopper policies break, and what both cores buy a robustness map.

For each axis, ``simreal robustness policies/hopper_ppo_dr --params AXIS --against policies/hopper_ppo_nominal``
(the main job against the nominal-only baseline, the same episodes in every cell); the table gives per cell both
mean returns and the difference with its bootstrap 95% CI. Then one map timed with 1 and with 2 worker processes,
interleaved (the numbers must be identical; the ratio is the speed-up), for a 1-D map of 7 cells and 2-D maps
of 25 and of 49 cells (the last with twice the episodes), and the 1-D map with ``--against``.

    python benchmarks/robustness.py [--episodes 10] [--grid 7] [--out DIR] [--timing-only] [--timing-from K]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import stable_baselines3
import torch

from simreal.tools.map_files import write_map
from simreal.tools.robustness import robustness_map

AXES = ("torso_mass", "friction", "thigh_joint_gain", "action_delay_steps")
POLICIES = Path(__file__).resolve().parents[1] / "policies"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--grid", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/robustness"))
    parser.add_argument("--timing-only", action="store_true", help="skip the maps, time the workers only")
    parser.add_argument("--timing-from", type=int, default=0, help="skip the first K timed maps")
    args = parser.parse_args()
    policy, baseline = POLICIES / "hopper_ppo_dr", POLICIES / "hopper_ppo_nominal"
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    )
    print(f"stable-baselines3 {stable_baselines3.__version__}, torch {torch.__version__}")
    for axis in () if args.timing_only else AXES:
        result = robustness_map(policy, [axis], points=args.grid, episodes=args.episodes, seed=1000, against=baseline)
        write_map(result, args.out / axis)
        print(
            f"\n{axis} (training range of hopper_ppo_dr: {result.axes[0].training}; targets {result.axes[0].targets})"
        )
        print("| value | hopper_ppo_dr | hopper_ppo_nominal | difference [95% CI] |")
        print("| ---: | ---: | ---: | --- |")
        for row in result.rows(1000):
            low, high = row["difference_ci_low"], row["difference_ci_high"]
            print(
                f"| {row[axis]:g} | {row['mean_return']:.0f} | {row['against_mean_return']:.0f} "
                f"| {row['difference']:+.0f} [{low:+.0f}, {high:+.0f}] |"
            )
    timed = [
        (["torso_mass"], args.grid, args.episodes, None),
        (["torso_mass", "friction"], 5, args.episodes, None),
        (["torso_mass", "friction"], 7, 2 * args.episodes, None),
        (["torso_mass"], args.grid, args.episodes, baseline),
    ]
    for params, grid, episodes, against in timed[args.timing_from :]:
        seconds: dict[int, list[float]] = {1: [], 2: []}
        maps = {}
        for _ in range(2):
            for workers in (1, 2):
                start = time.perf_counter()
                maps[workers] = robustness_map(
                    policy, params, points=grid, episodes=episodes, workers=workers, against=against
                )
                seconds[workers].append(time.perf_counter() - start)
        assert maps[1].returns == maps[2].returns, "the numbers depend on the workers"
        assert maps[1].against == maps[2].against, "the numbers depend on the workers"
        one, two = min(seconds[1]), min(seconds[2])
        cells = grid ** len(params)
        print(
            f"\n{','.join(params)} map, {cells} cells x {episodes} episodes"
            f"{' --against ' + baseline.name if against else ''}: 2 workers take {two / one:.2f}x the time of 1"
        )
        print(f"(best of 2 interleaved runs each; 1 worker {one:.0f} s; identical returns)")


if __name__ == "__main__":
    main()
