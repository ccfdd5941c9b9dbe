"""What loading a policy without unpickling costs: ``load_policy`` on a shipped policy's own files (the model rebuilt
from its config, weights read with ``weights_only=True``, statistics from an npz) against ``load_policy`` with
``trust_pickles=True`` on a copy holding stable-baselines3's pickles only (the reference), interleaved round by
round in one run; and the bytes each form adds to the folder.

    python benchmarks/safe_loading.py [--policy policies/hopper_ppo_dr] [--rounds 20]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import stable_baselines3
import torch

from simreal.runs.model_files import MODEL_INFO, STATISTICS, WEIGHTS
from simreal.runs.policy import load_policy


def timed(load) -> float:
    start = time.perf_counter()
    load()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, default=Path("policies/hopper_ppo_dr"))
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pickled = Path(tmp) / "pickled"
        shutil.copytree(args.policy, pickled)
        for name in (WEIGHTS, MODEL_INFO, STATISTICS):
            (pickled / name).unlink()
        load_policy(args.policy), load_policy(pickled, trust_pickles=True)  # warm the imports and caches
        safe, reference = [], []
        for _ in range(args.rounds):
            safe.append(timed(lambda: load_policy(args.policy)))
            reference.append(timed(lambda: load_policy(pickled, trust_pickles=True)))
    ratios = np.array(safe) / np.array(reference)
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    own = sum((args.policy / name).stat().st_size for name in (WEIGHTS, MODEL_INFO, STATISTICS))
    theirs = sum((args.policy / name).stat().st_size for name in ("model.zip", "vecnormalize.pkl"))
    versions = f"torch {torch.__version__}, stable-baselines3 {stable_baselines3.__version__}"
    print(f"{platform.processor() or platform.machine()}, {versions}")
    print(f"{args.policy}: {args.rounds} interleaved rounds")
    reference_ms = np.median(reference) * 1e3
    print(f"safe load / pickled load: x{median:.2f} (quartiles {q1:.2f}-{q3:.2f}), pickled: {reference_ms:.0f} ms")
    print(f"simreal's files {own / 1024:.0f} KiB beside stable-baselines3's {theirs / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
