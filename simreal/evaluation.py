"""Evaluate a policy in its source simulator and on targets, and measure the reality gap."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal.config import TrainConfig
from simreal.errors import DataError, SpecError
from simreal.gap import reality_gap
from simreal.rundir import MODEL, VECNORMALIZE, find_run_dir, load_model, load_vecnormalize, saved_config
from simreal.spec import load_robot, load_target
from simreal.vecenv import EnvFactory, env_factory, make_eval_env, normalized_like

SCHEMA = "simreal.evaluate/1"


@dataclass
class Returns:
    """Episode returns on one env."""

    returns: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def as_dict(self) -> dict[str, Any]:
        return {"mean_return": self.mean, "std_return": self.std, "returns": self.returns}


@dataclass
class TransferReport:
    """Returns in the source simulator (nominal and training distribution) and on each target, with gaps."""

    nominal: Returns
    randomized: Returns | None
    targets: dict[str, Returns]
    gaps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON document ``simreal evaluate --json`` writes (less the header fields)."""
        source = {"nominal": self.nominal.as_dict()}
        if self.randomized is not None:
            source["randomized"] = self.randomized.as_dict()
        return {
            "source": source,
            "targets": {name: {**r.as_dict(), **self.gaps[name]} for name, r in self.targets.items()},
        }


class TransferEvaluator:
    """Evaluates policies of one robot on nominal dynamics, optionally the training distribution, and targets.

    Each evaluated env is a VecEnv of ``episodes`` copies running one episode each (the policy acts on all of them in
    one batch). They are built once and reseeded with ``seed`` before each evaluation, so successive evaluations see
    the same episodes (common random numbers) and the same seed gives the same numbers.

    Args:
        config: the training config (robot, training distribution, default targets).
        episodes: episodes per env.
        seed: seed of the eval envs and of the bootstrap.
        targets: target names or files (default: the config's ``eval.targets``, else every shipped target).
        randomized: also evaluate under the training distribution.
    """

    def __init__(
        self,
        config: TrainConfig,
        episodes: int,
        seed: int,
        targets: list[str] | None = None,
        randomized: bool = True,
    ) -> None:
        spec = load_robot(config.robot)
        chosen = targets if targets else (config.eval.targets or list(spec.targets))
        self.episodes, self.seed = episodes, seed
        self._nominal = make_eval_env(EnvFactory(config.robot, {"nominal": True}), seed, episodes)
        self._randomized = make_eval_env(env_factory(config), seed, episodes) if randomized else None
        self._targets: dict[str, VecEnv] = {}
        for target in chosen:
            name, target_spec = load_target(spec, target)
            if name in self._targets:
                raise SpecError(f"target {target}: another target is already called {name!r}")
            factory = EnvFactory(config.robot, {"target": target_spec.model_dump()})
            self._targets[name] = make_eval_env(factory, seed, episodes)

    def evaluate(self, model: BaseAlgorithm, statistics: VecNormalize | None) -> TransferReport:
        """Run the episodes and compute the gaps (bootstrap seeded with ``seed``)."""
        nominal = self._returns(model, self._nominal, statistics)
        randomized = self._returns(model, self._randomized, statistics) if self._randomized is not None else None
        targets = {name: self._returns(model, venv, statistics) for name, venv in self._targets.items()}
        rng = np.random.default_rng(self.seed)
        gaps = {name: reality_gap(nominal.returns, r.returns, rng).as_dict() for name, r in targets.items()}
        return TransferReport(nominal, randomized, targets, gaps)

    def _returns(self, model: BaseAlgorithm, venv: VecEnv, statistics: VecNormalize | None) -> Returns:
        venv.seed(self.seed)
        env = normalized_like(venv, statistics)
        returns, _ = evaluate_policy(
            model, env, n_eval_episodes=self.episodes, deterministic=True, return_episode_rewards=True, warn=False
        )
        return Returns([float(r) for r in returns])

    def close(self) -> None:
        for venv in [self._nominal, self._randomized, *self._targets.values()]:
            if venv is not None:
                venv.close()


@dataclass
class LoadedPolicy:
    """A model with what is needed to run it: its config and normalization statistics."""

    model: BaseAlgorithm
    config: TrainConfig
    statistics: VecNormalize | None
    path: Path


def load_policy(source: str | os.PathLike[str], device: str = "cpu") -> LoadedPolicy:
    """Load a policy from a run directory (its final model) or a model file inside a run directory.

    The VecNormalize statistics are the ``vecnormalize.pkl`` beside the model file.

    Raises:
        DataError: no such file or folder, no config for it, a corrupt model or statistics file.
    """
    path = Path(source)
    if path.is_dir():
        run_dir, model_path = path, path / MODEL
        if not model_path.exists():
            raise DataError(f"{path}: run directory has no {MODEL} (train it to the end, or name a checkpoint's)")
    elif path.is_file():
        model_path = path
        found = find_run_dir(path)
        if found is None:
            raise DataError(f"{path}: no config.yaml beside or above the model: cannot tell its robot")
        run_dir = found
    else:
        raise DataError(f"{path}: no such run directory or model file")
    config = saved_config(run_dir)
    model = load_model(model_path, config.algorithm.name, device=device)
    statistics = None
    stats_path = model_path.parent / VECNORMALIZE
    if stats_path.exists():
        dummy = make_eval_env(EnvFactory(config.robot, {"nominal": True}), seed=0)
        statistics = load_vecnormalize(stats_path, dummy)
    elif config.env.normalize.observations:
        raise DataError(f"{stats_path}: missing: the model was trained on normalized observations")
    expected = statistics.observation_space.shape if statistics is not None else None
    if expected is not None and model.observation_space.shape != expected:
        raise DataError(f"{stats_path}: observation size {expected} does not fit the model's")
    return LoadedPolicy(model, config, statistics, model_path)


def evaluate(
    source: str | os.PathLike[str],
    targets: list[str] | None = None,
    episodes: int = 10,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Evaluate a trained policy on its source simulator and on targets: the ``simreal evaluate`` document.

    Args:
        source: a run directory or a model file inside one.
        targets: target names or files (default: every target the robot ships).
        episodes: episodes per env.
        seed: seed of the envs and the bootstrap; same seed, same numbers.
        device: torch device for the policy.

    Returns:
        A JSON-ready mapping: ``schema``, ``model``, ``robot``, ``algorithm``, ``episodes``, ``seed``, ``source``
        (``nominal`` and ``randomized``: mean, std and list of returns) and ``targets`` (per target: the same plus
        ``gap``, ``gap_ci95``, ``relative_gap``, ``relative_gap_ci95``).
    """
    policy = load_policy(source, device=device)
    chosen = targets or list(load_robot(policy.config.robot).targets)
    evaluator = TransferEvaluator(policy.config, episodes, seed, targets=chosen)
    try:
        report = evaluator.evaluate(policy.model, policy.statistics)
    finally:
        evaluator.close()
    return {
        "schema": SCHEMA,
        "model": str(policy.path),
        "robot": policy.config.robot,
        "algorithm": policy.config.algorithm.name,
        "episodes": episodes,
        "seed": seed,
        "deterministic": True,
        **report.as_dict(),
    }
