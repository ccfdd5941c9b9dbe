"""Evaluate a policy in its source simulator and on targets, and measure the reality gap."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal.envs.privileged import DynamicsInputSpec
from simreal.envs.spec import Effects, ParameterRange, RobotSpec, TargetSpec, load_target
from simreal.envs.vector import EnvFactory, normalized_like, vectorize
from simreal.errors import SpecError
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

    Each evaluated env is a VecEnv of ``episodes`` copies running one episode each (the policy acts on all of them in
    one batch). They are built once and reseeded with ``seed`` before each evaluation, so successive evaluations see
    the same episodes (common random numbers) and the same seed gives the same numbers.

    Args:
        spec: the robot.
        targets: the targets by name.
        episodes: episodes per env.
        seed: seed of the eval envs and of the bootstrap.
        ranges: the training distribution, also evaluated (``None``: not evaluated; empty: nominal dynamics).
        effects: the training effects, applied with ``ranges``.
        history: steps of history in the policy's input (0: none).
        dynamics_input: an adaptive policy's dynamics input (true or estimated log-multipliers; ``None``: none).
    """

    def __init__(
        self,
        spec: RobotSpec,
        targets: Mapping[str, TargetSpec],
        episodes: int,
        seed: int,
        ranges: Mapping[str, ParameterRange] | None = None,
        effects: Effects | None = None,
        history: int = 0,
        dynamics_input: DynamicsInputSpec | None = None,
    ) -> None:
        self.episodes, self.seed, self.dynamics_input = episodes, seed, dynamics_input

        def envs(**pieces: Any) -> VecEnv:
            factory = EnvFactory(spec, history=history, dynamics_input=dynamics_input, **pieces)
            return vectorize(factory, episodes, seed)

        self._nominal = envs()
        self._randomized = envs(ranges=ranges, effects=effects) if ranges is not None else None
        self._targets = {
            name: envs(fixed=target.parameters, effects=target.effects) for name, target in targets.items()
        }

    def evaluate(self, model: BaseAlgorithm, statistics: VecNormalize | None) -> TransferReport:
        """Run the episodes and compute the gaps (bootstrap seeded with ``seed``)."""
        nominal = self._returns(model, self._nominal, statistics)
        randomized = self._returns(model, self._randomized, statistics) if self._randomized is not None else None
        targets = {name: self._returns(model, venv, statistics) for name, venv in self._targets.items()}
        rng = np.random.default_rng(self.seed)
        for returns in [nominal, randomized, *targets.values()]:
            if returns is not None:
                returns.ci95 = mean_return_ci([returns.returns], rng)
        gaps = {name: reality_gap(nominal.returns, r.returns, rng).as_dict() for name, r in targets.items()}
        return TransferReport(nominal, randomized, targets, gaps)

    def _returns(self, model: BaseAlgorithm, venv: VecEnv, statistics: VecNormalize | None) -> Returns:
        return episode_returns(model, venv, statistics, self.episodes, self.seed, self.dynamics_input)

    def close(self) -> None:
        for venv in [self._nominal, self._randomized, *self._targets.values()]:
            if venv is not None:
                venv.close()


def episode_returns(
    model: BaseAlgorithm,
    venv: VecEnv,
    statistics: VecNormalize | None,
    episodes: int,
    seed: int,
    dynamics_input: DynamicsInputSpec | None = None,
) -> Returns:
    """Run ``episodes`` deterministic episodes of ``model`` on ``venv`` (reseeded with ``seed``; normalized like
    ``statistics``) and return their raw returns, with the estimator's error when the policy estimates its dynamics
    (UP-OSI: mean absolute relative error of each multiplier over every step; RMA: relative latent error)."""
    venv.seed(seed)
    env = normalized_like(venv, statistics)
    errors: list[np.ndarray] = []
    # RMA: the adaptation module lives in the policy; its error is measured on the inputs the policy acted on
    extractor = getattr(model.policy, "features_extractor", None)
    latent = hasattr(extractor, "latent_error") and bool(extractor.adapting)
    seen: list[np.ndarray] = []

    def record(local: dict[str, Any], _: dict[str, Any]) -> None:
        info = local["info"]
        if "dynamics_estimate" in info:
            errors.append(np.abs(np.exp(info["dynamics_estimate"] - info["log_multipliers"]) - 1.0))
        if latent:
            seen.append(np.array(local["observations"][local["i"]]))

    returns, _ = evaluate_policy(
        model,
        env,
        n_eval_episodes=episodes,
        deterministic=True,
        return_episode_rewards=True,
        warn=False,
        callback=record if latent or (dynamics_input is not None and dynamics_input.estimator) else None,
    )
    estimator_error = None
    if seen:
        batch = torch.as_tensor(np.asarray(seen), dtype=torch.float32, device=model.device)
        # relative error of the estimated latent against the one encoded from the true parameters
        estimator_error = {"latent": float(extractor.latent_error(batch).mean())}
    if errors:
        # mean absolute relative error of each estimated multiplier over every step of every episode
        mean = np.mean(errors, axis=0)
        estimator_error = {name: float(e) for name, e in zip(dynamics_input.names, mean, strict=True)}
    return Returns([float(r) for r in returns], estimator_error=estimator_error)


def evaluate_run(
    source: str | os.PathLike[str],
    targets: list[str] | None = None,
    episodes: int = 10,
    seed: int = 0,
    device: str = "cpu",
    true_dynamics: bool = False,
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

    Returns:
        A JSON-ready mapping: ``schema``, ``model``, ``robot``, ``algorithm``, ``episodes``, ``seed``, ``source``
        (``nominal`` and ``randomized``: mean, std and list of returns) and ``targets`` (per target: the same plus
        ``gap``, ``gap_ci95``, ``relative_gap``, ``relative_gap_ci95``).

    Raises:
        DataError: a missing or corrupt run, model or statistics file.
        SpecError: an unknown target, or two targets of the same name.
    """
    policy = load_policy(source, device=device, true_dynamics=true_dynamics)
    spec = policy.setup.spec
    chosen: dict[str, TargetSpec] = {}
    for target in targets or list(spec.targets):
        name, target_spec = load_target(spec, target)
        if name in chosen:
            raise SpecError(f"target {target}: another target is already called {name!r}")
        chosen[name] = target_spec
    setup = policy.setup
    evaluator = TransferEvaluator(
        spec,
        chosen,
        episodes,
        seed,
        ranges=setup.ranges,
        effects=setup.effects,
        history=setup.history,
        dynamics_input=policy.dynamics_input,
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
