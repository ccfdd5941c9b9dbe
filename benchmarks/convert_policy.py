"""Rewrite a policy folder saved as stable-baselines3's pickles only (``model.zip``, ``vecnormalize.pkl``) into the
files simreal loads without unpickling (``weights.pt``, ``model.json``, ``vecnormalize.npz``), then prove the
conversion changed nothing: the policy loaded the safe way acts exactly as the pickled one on the same inputs.

    python benchmarks/convert_policy.py FOLDER [FOLDER ...]

Only for folders you trust: reading the pickles runs whatever code they carry. The pickles stay where they are
(stable-baselines3 users load them); the new files are written atomically beside them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from simreal.runs.model_files import has_model_files, write_model_files
from simreal.runs.policy import load_policy


def convert(folder: Path) -> int:
    """Write ``folder``'s safe files from its pickles; return how many observations were checked."""
    pickled = load_policy(folder, trust_pickles=True)
    env = pickled.statistics if pickled.statistics is not None else pickled.model.get_env()
    assert env is not None
    write_model_files(pickled.model, env, pickled.path.parent)
    safe = load_policy(folder)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(256, *pickled.model.observation_space.shape)).astype(np.float32)
    for model in (pickled.model, safe.model):
        model.policy.set_training_mode(False)
    with torch.no_grad():
        before, _ = pickled.model.predict(observations, deterministic=True)
        after, _ = safe.model.predict(observations, deterministic=True)
    if not np.array_equal(before, after):
        raise SystemExit(f"{folder}: the converted policy acts differently: nothing should differ")
    if (pickled.statistics is None) != (safe.statistics is None):
        raise SystemExit(f"{folder}: the converted policy lost or gained normalization statistics")
    if pickled.statistics is not None and safe.statistics is not None:
        for name in ("mean", "var"):
            if not np.array_equal(getattr(pickled.statistics.obs_rms, name), getattr(safe.statistics.obs_rms, name)):
                raise SystemExit(f"{folder}: the converted statistics differ ({name})")
    return len(observations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", type=Path, nargs="+")
    args = parser.parse_args()
    for folder in args.folders:
        if has_model_files(folder):
            print(f"{folder}: already holds simreal's own files")
            continue
        checked = convert(folder)
        print(f"{folder}: converted; the safe load acts identically on {checked} observations")


if __name__ == "__main__":
    main()
