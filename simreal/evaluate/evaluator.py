"""Evaluate a policy in its source simulator and on targets, and measure the reality gap."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal.adaptation.rma import rma_extractor
from simreal.envs.coordinates import estimate_errors
from simreal.envs.inputs import InputLayout
from simreal.envs.privileged import DynamicsEstimator, DynamicsInputSpec
from simreal.envs.robots import load_targets
from simreal.envs.runner import ObservationScaling, PolicyRunner, run_episodes
from simreal.envs.spec import Effects, ParameterRange, RobotSpec, TargetSpec
from simreal.envs.vector import EnvFactory, vectorize
from simreal.evaluate.gap import mean_return_ci, reality_gap
from simreal.runs.policy import load_policy

SCHEMA = "simreal.evaluate/1"


@dataclass
class Returns:
    """Episode returns on one env, and the bootstrap 95% CI of their mean (when computed)."""

    returns: list[float]
    ci95: tuple[float, float] | None = None
    estimator_error: dict[str, float] | None = None

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mean_return": self.mean, "std_return": self.std}
        if self.ci95 is not None:
            data["mean_return_ci95"] = list(self.ci95)
        if self.estimator_error is not None:
            data["estimator_error"] = self.estimator_error
        return {**data, "returns": self.returns}


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

    Each evaluated env is a VecEnv of ``episodes`` plain copies running one episode each; the policy acts on all of
    them in one batch through a :class:`~simreal.envs.runner.PolicyRunner`. They are built once and reseeded with
    ``seed`` before each evaluation, so successive evaluations see the same episodes (common random numbers) and the
    same seed gives the same numbers.

    Args:
        spec: the robot.
        targets: the targets by name.
        episodes: episodes per env.
        seed: seed of the eval envs and of the bootstrap.
        layout: the policy's input.
        ranges: the training distribution, also evaluated (``None``: not evaluated; empty: nominal dynamics).
        effects: the training effects, applied with ``ranges``.
        estimator: the policy's dynamics estimator (``layout.source == "estimated"``).
    """

    def __init__(
        self,
        spec: RobotSpec,
        targets: Mapping[str, TargetSpec],
        episodes: int,
        seed: int,
        layout: InputLayout,
        ranges: Mapping[str, ParameterRange] | None = None,
        effects: Effects | None = None,
        estimator: DynamicsEstimator | None = None,
    ) -> None:
        self.episodes, self.seed, self.layout, self.estimator = episodes, seed, layout, estimator

        def envs(**pieces: Any) -> VecEnv:
            return vectorize(EnvFactory(spec, **pieces), episodes, seed)

        self._nominal = envs()
        self._randomized = envs(ranges=ranges, effects=effects) if ranges is not None else None
        self._targets = {
            name: envs(fixed=target.parameters, effects=target.effects) for name, target in targets.items()
        }

    def evaluate(self, model: BaseAlgorithm, statistics: VecNormalize | None) -> TransferReport:
        """Run the episodes and compute the gaps (bootstrap seeded with ``seed``)."""
        runner = PolicyRunner(
            model, self.layout, ObservationScaling.of(statistics), self.estimator, n_envs=self.episodes
        )
        nominal = episode_returns(runner, self._nominal, self.episodes, self.seed)
        randomized = None
        if self._randomized is not None:
            randomized = episode_returns(runner, self._randomized, self.episodes, self.seed)
        targets = {
            name: episode_returns(runner, venv, self.episodes, self.seed) for name, venv in self._targets.items()
        }
        rng = np.random.default_rng(self.seed)
        for returns in [nominal, randomized, *targets.values()]:
            if returns is not None:
                returns.ci95 = mean_return_ci([returns.returns], rng)
        gaps = {name: reality_gap(nominal.returns, r.returns, rng).as_dict() for name, r in targets.items()}
        return TransferReport(nominal, randomized, targets, gaps)

    def close(self) -> None:
        for venv in [self._nominal, self._randomized, *self._targets.values()]:
            if venv is not None:
                venv.close()


def episode_returns(runner: PolicyRunner, venv: VecEnv, episodes: int, seed: int) -> Returns:
    """Run ``episodes`` deterministic episodes of ``runner`` on ``venv`` (plain envs, reseeded with ``seed``) and
    return their raw returns, with the estimator's error when the policy estimates its dynamics (UP-OSI: mean
    absolute relative error of each multiplier over every step it acted on; RMA: relative latent error, on the
    inputs it acted on)."""
    model = runner.model
    extractor = rma_extractor(model)
    adapting = extractor if extractor is not None and extractor.is_adapting else None
    stats = run_episodes(runner, venv, episodes, seed, keep_inputs=adapting is not None)
    estimator_error = None
    if adapting is not None and stats.inputs:
        batch = torch.as_tensor(np.asarray(stats.inputs), dtype=torch.float32, device=model.device)
        # relative error of the estimated latent against the one encoded from the true parameters
        estimator_error = {"latent": float(adapting.latent_error(batch).mean())}
    if stats.estimates:
        # mean absolute relative error of each estimated multiplier (an offset: absolute, over its scale) over every
        # step of every episode
        names, offsets = runner.layout.dynamics, dict(runner.layout.offsets)
        relative = estimate_errors(names, stats.estimates, stats.truths, offsets)
        estimator_error = {
            name: float(e) for name, e in zip(runner.layout.dynamics, relative.mean(axis=0), strict=True)
        }
    return Returns(stats.returns, estimator_error=estimator_error)


def evaluate_run(
    source: str | os.PathLike[str],
    targets: list[str] | None = None,
    episodes: int = 10,
    seed: int = 0,
    device: str = "cpu",
    true_dynamics: bool = False,
    trust_pickles: bool = False,
) -> dict[str, Any]:
    """Evaluate a trained policy on its source simulator and on targets: the ``simreal evaluate`` document.

    Args:
        source: a run directory or a model file inside one.
        targets: target names or files (default: every target the robot ships).
        episodes: episodes per env.
        seed: seed of the envs and the bootstrap; same seed, same numbers.
        device: torch device for the policy.
        true_dynamics: give an adaptive policy the true dynamics instead of its estimator's (a simulator-only
            reference).
        trust_pickles: let a run holding stable-baselines3's pickles only load
            (:data:`~simreal.errors.TRUST_PICKLES`).

    Returns:
        A JSON-ready mapping: ``schema``, ``model``, ``robot``, ``algorithm``, ``episodes``, ``seed``, ``source``
        (``nominal`` and ``randomized``: mean, std and list of returns) and ``targets`` (per target: the same plus
        ``gap``, ``gap_ci95``, ``relative_gap``, ``relative_gap_ci95``).

    Raises:
        DataError: a missing or corrupt run, model or statistics file.
        SpecError: an unknown target, or two targets of the same name.
    """
    policy = load_policy(source, device=device, true_dynamics=true_dynamics, trust_pickles=trust_pickles)
    spec = policy.setup.spec
    chosen = load_targets(spec, targets or None)
    setup = policy.setup
    evaluator = TransferEvaluator(
        spec,
        targets=chosen,
        episodes=episodes,
        seed=seed,
        layout=policy.layout,
        ranges=setup.ranges,
        effects=setup.effects,
        estimator=policy.estimator,
    )
    try:
        report = evaluator.evaluate(policy.model, policy.statistics)
    finally:
        evaluator.close()
    return {
        "schema": SCHEMA,
        "model": str(policy.path),
        "robot": spec.robot,
        "algorithm": setup.config.algorithm.name,
        "episodes": episodes,
        "seed": seed,
        "deterministic": True,
        **({"dynamics_input": _dynamics_input(policy.dynamics_input)} if policy.dynamics_input else {}),
        **report.as_dict(),
    }


def _dynamics_input(spec: DynamicsInputSpec) -> dict[str, Any]:
    described: dict[str, Any] = {}
    if spec.adaptive:
        described.update(parameters=list(spec.names), source="true" if spec.estimator is None else "estimated")
    if spec.privileged is not None:
        # the critic's inputs stood at the middle of their ranges: nothing privileged was read
        described["privileged_critic"] = {"inputs": list(spec.privileged.names), "read": spec.privileged.truth}
    return described
