"""What a video costs: rendering an episode offscreen against running it without rendering, in one interleaved run.

The shipped main-job policy on nominal hopper, 200 steps (one episode, reset with the same seed), once without
rendering and once rendering every step at 160x160 and at 480x480 (``simreal.evaluate.video.render_episode``; the
backend is whatever ``MUJOCO_GL`` names, or the one simreal picks when it is unset without a display; run it with
``MUJOCO_GL=egl`` and with ``MUJOCO_GL=osmesa`` to compare the two).

    MUJOCO_GL=egl python benchmarks/video.py [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from simreal.envs.factory import make_env
from simreal.evaluate.video import render_episode
from simreal.runs.policy import load_policy

POLICY = Path(__file__).resolve().parents[1] / "policies" / "hopper_ppo_dr"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    policy = load_policy(POLICY)
    setup = policy.setup
    pieces = (policy.runner(), setup.spec)
    common = {"seed": 0, "max_steps": args.steps}

    def plain() -> int:
        env = make_env(setup.spec, None, {}, None, history=setup.history)
        obs, _ = env.reset(seed=0)
        steps = 0
        for steps in range(1, args.steps + 1):  # noqa: B007 - the count is the result
            action, _ = policy.model.predict(policy.statistics.normalize_obs(np.asarray(obs)[None]), deterministic=True)
            obs, _, terminated, truncated, _ = env.step(action[0])
            if terminated or truncated:
                break
        env.close()
        return steps

    timings: dict[str, list[float]] = {"no rendering": [], "160x160": [], "480x480": []}
    frames = 0
    for _ in range(args.repeats):
        start = time.perf_counter()
        steps = plain()
        timings["no rendering"].append(time.perf_counter() - start)
        for size in (160, 480):
            start = time.perf_counter()
            episode = render_episode(*pieces, width=size, height=size, **common)
            timings[f"{size}x{size}"].append(time.perf_counter() - start)
            frames = len(episode.frames)
    print(
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
    )
    print(f"{steps} steps, {frames} frames; best of {args.repeats} interleaved runs:")
    reference = min(timings["no rendering"])
    for label, values in timings.items():
        print(f"  {label:12s} {min(values) / reference:6.1f}x the episode without rendering")


if __name__ == "__main__":
    main()
