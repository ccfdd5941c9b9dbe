"""What keeping the episode in progress costs (``simreal.envs.replay.EpisodeReplay``, in every training env so that a
resume replays the episodes a checkpoint cut): steps and resets of the main job's env with the wrapper against the
same env without it, timed separately, interleaved round by round in one run; and, for a checkpoint of the main
job's 8 envs, the size of what it keeps and the time the resume spends replaying it.

    python benchmarks/episode_replay.py [--robot hopper] [--rounds 30] [--steps 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

# run as a script from benchmarks/: the env benchmark's timers, the same here
from env_throughput import time_resets, time_steps

from simreal.envs.replay import EpisodeReplay
from simreal.envs.vector import EnvFactory
from simreal.runs.setup import load_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="hopper_ppo_dr")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()

    setup = load_setup(args.config)
    factory = EnvFactory(
        setup.spec, setup.ranges, effects=setup.effects, history=setup.history, dynamics_input=setup.training_input
    )
    kept = factory()
    assert isinstance(kept, EpisodeReplay)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(args.steps, *kept.action_space.shape)).astype(np.float32)
    kept.reset(seed=0)
    other = factory().env  # the same stack without the EpisodeReplay on top
    other.reset(seed=0)
    step_ratios, reset_ratios, reset_extra = [], [], []
    for round_ in range(args.rounds):
        pair = [("kept", kept), ("plain", other)]
        if round_ % 2:
            pair.reverse()
        steps = {name: time_steps(env, actions) for name, env in pair}
        resets = {name: time_resets(env, 200) for name, env in pair}
        step_ratios.append(steps["kept"] / steps["plain"])
        reset_ratios.append(resets["kept"] / resets["plain"])
        reset_extra.append((resets["kept"] - resets["plain"]) / 200 / (steps["plain"] / len(actions)))

    # a checkpoint's share: 8 envs each in the middle of an episode of the robot's typical length
    envs = [factory() for _ in range(8)]
    for index, env in enumerate(envs):
        env.reset(seed=index)
        for action in actions[: 300 + 50 * index]:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
    logs = [env.episode_log() for env in envs]
    size = len(json.dumps(logs))
    fresh = [factory() for _ in range(8)]
    start = time.perf_counter()
    for env, log in zip(fresh, logs, strict=True):
        env.reset(seed=0)
        env.replay_episode(log)
    replay = time.perf_counter() - start
    steps = sum(len(log["actions"]) for log in logs)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"{args.config}, median of {args.rounds} rounds, with the episode kept / without:")
    quartiles = f"{np.percentile(step_ratios, 25):.3f}-{np.percentile(step_ratios, 75):.3f}"
    print(f"  step time {np.median(step_ratios):.3f} (quartiles {quartiles}); reset time {np.median(reset_ratios):.3f}")
    extra = np.median(reset_extra)
    print(f"  a reset adds what {extra:.2f} steps cost: over an episode of L steps, {extra:.2f} / L more")
    print(f"checkpoint of 8 envs: {steps} steps in progress, {size / 1e6:.2f} MB of JSON, replayed in {replay:.2f} s")


if __name__ == "__main__":
    main()
