"""A config is resolved once, at the top: the stages below never reload the spec or re-resolve the ranges."""

from __future__ import annotations

import sys
from collections import Counter

import yaml

import simreal.envs.ranges as ranges_module
import simreal.envs.robots as robots_module
from simreal.runs.setup import load_setup
from simreal.train.trainer import train

COUNTED = {
    "load_robot": robots_module,
    "resolve_ranges": ranges_module,
    "load_target": robots_module,
    "load_target_file": robots_module,
}


def count_spec_calls(monkeypatch) -> Counter:
    """Count the calls of the loading and resolving functions of robots and ranges, wherever they were imported."""
    calls: Counter = Counter()
    for name, home in COUNTED.items():
        original = getattr(home, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("simreal") and getattr(module, name, None) is original:
                monkeypatch.setattr(module, name, counted)
    return calls


def test_a_training_run_resolves_its_config_once(tmp_path, monkeypatch):
    config = {
        "robot": "hopper",
        "total_timesteps": 256,
        "randomization": {"schedule": {"kind": "adr"}, "effects": {"obs_noise_std": 0.01}},
        "algorithm": {"name": "ppo", "hyperparameters": {"n_steps": 64, "batch_size": 64, "n_epochs": 1}},
        "env": {"n_envs": 2},
        "eval": {"frequency": 128, "episodes": 1, "targets": ["mild", "severe"]},
        "checkpoint": {"frequency": 128},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    calls = count_spec_calls(monkeypatch)
    setup = load_setup(path)
    assert calls == Counter(load_robot=1, resolve_ranges=1, load_target=2)
    calls.clear()
    train(setup, tmp_path / "run", device="cpu")
    assert calls == Counter()  # the envs, the evaluator and the schedule took the resolved pieces
