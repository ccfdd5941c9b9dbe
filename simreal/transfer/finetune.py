"""Fine-tune a sim-trained policy on a target under a budget of target steps, or train the from-scratch baseline.

The fine-tuned run directory is a run directory like any other (``config.yaml``, ``model.zip``,
``vecnormalize.pkl``, ``tb/``), so ``simreal evaluate`` and ``simreal collect`` take it as they are; ``finetune.json``
adds what fine-tuning measured: the sample-efficiency curve (target return against target steps used), the final
target return, forgetting (the drop in source return), and negative transfer against a from-scratch baseline.
The envs it evaluates on are :mod:`~simreal.transfer.finetune_evaluations`'s; the report's statistics, and the
baseline's reading, :mod:`~simreal.transfer.finetune_report`'s.

stable-baselines3 pitfalls handled here:

- ``load()`` restores the source run's optimizer state: fine-tuning starts fresh optimizers, one parameter group per
  layer, so a layer unfrozen later starts with no moments (:func:`~simreal.transfer.layers.fresh_optimizers`);
- its learning-rate schedule overwrites every parameter group on each update: layer factors are reapplied after it;
- ``VecNormalize`` statistics come from the source run (fresh ones would scramble the inputs) and are frozen unless
  ``update_normalization``;
- SAC's ``learning_starts`` would spend target steps on random actions: a fine-tuned SAC acts with its policy and
  learns from the first step; its replay buffer is not in the model zip and starts empty (target data only);
- ``reset_num_timesteps=True``: the learning-rate schedule runs over the fine-tuning budget, not the source run's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv
from torch.utils.tensorboard import SummaryWriter

from simreal.adaptation.osi import OSI_FILE
from simreal.envs.factory import robot_sizes
from simreal.envs.inputs import InputLayout
from simreal.envs.privileged import DynamicsInputSpec
from simreal.envs.robots import load_target
from simreal.envs.spec import TargetSpec
from simreal.envs.vector import EnvFactory, vectorize
from simreal.errors import ConfigError
from simreal.evaluate.gap import mean_return_ci
from simreal.fileio import atomic_write_json
from simreal.locks import hold
from simreal.runs.algorithms import (
    new_model,
    normalized_for,
    resolve_device,
    statistics_of,
    training_envs,
    warm_start,
)
from simreal.runs.config import AdaptationConfig, TrainConfig
from simreal.runs.policy import LoadedPolicy, load_policy
from simreal.runs.rundir import CONFIG, record_end, record_start, save_model, write_config
from simreal.runs.setup import TrainingSetup
from simreal.transfer.config import FinetuneSettings
from simreal.transfer.finetune_evaluations import Evaluations
from simreal.transfer.finetune_report import REPORT, SCHEMA, against_scratch, forgetting, read_baseline, summary
from simreal.transfer.layers import Layer, depth, fresh_optimizers, policy_layers, set_trainable, standard_optimizers
from simreal.transfer.strategies import L2SP, trainable_top


@dataclass
class Budget:
    """Target steps spent: training interaction, and curve evaluations (counted against the budget or not)."""

    steps: int
    count_eval: bool
    train_steps: int = 0
    eval_steps: int = 0

    @property
    def used(self) -> int:
        """Steps counted against the budget."""
        return self.train_steps + (self.eval_steps if self.count_eval else 0)

    def affords(self, steps: int) -> bool:
        return self.used + steps <= self.steps

    def as_dict(self) -> dict[str, int]:
        """The report's ``budget``: the steps allowed, spent training, spent evaluating, counted."""
        return {"steps": self.steps, "train_steps": self.train_steps, "eval_steps": self.eval_steps, "used": self.used}


@dataclass
class FinetuneResult:
    """What fine-tuning left behind: the run directory and its ``finetune.json`` document."""

    run_dir: Path
    report: dict[str, Any]


def finetune(
    source: str | Path,
    target: str,
    settings: FinetuneSettings,
    run_dir: str | Path,
    *,
    device: str = "cpu",
    baseline: str | Path | None = None,
    callbacks: Sequence[BaseCallback] = (),
    command: list[str] | None = None,
    trust_pickles: bool = False,
) -> FinetuneResult:
    """Fine-tune the policy of run ``source`` on ``target`` (or train a fresh one there, ``strategy: scratch``).

    Args:
        source: the sim-trained run directory (or a model file inside one). ``scratch`` takes its config only.
        target: a target name or YAML of the source's robot.
        settings: budget, strategy and evaluation settings.
        run_dir: the new run directory.
        device: ``auto``, ``cpu`` or ``cuda``.
        baseline: a from-scratch fine-tuning run (same robot, target and budget) to judge negative transfer against.
        callbacks: extra stable-baselines3 callbacks (the CLI's progress bar).
        command: the command line to record (default: ``sys.argv``).
        trust_pickles: let a source holding stable-baselines3's pickles only load (see
            :data:`simreal.errors.TRUST_PICKLES`).

    Returns:
        The run directory and its report (also written to ``finetune.json``).

    Raises:
        DataError: the source or baseline is not a usable run.
        ConfigError: ``run_dir`` already holds a run, or a baseline that does not fit.
        SpecError: an unknown target.
        BusyError: another process holds ``run_dir``.
    """
    started = time.perf_counter()
    device = resolve_device(device)
    # every input is read before the run directory is made: a bad one leaves nothing behind
    policy = load_policy(source, device=device, trust_pickles=trust_pickles)
    target_name, target_spec = load_target(policy.setup.spec, target)
    against = read_baseline(baseline, policy.setup, target_name, settings) if baseline is not None else None
    inputs = _Inputs(policy, target_name, target_spec, against, baseline, started)
    threads = torch.get_num_threads()
    try:
        with hold(run_dir, "run directory"):
            return _finetune(
                inputs,
                settings=settings,
                run_dir=Path(run_dir),
                device=device,
                callbacks=callbacks,
                command=command,
                trust_pickles=trust_pickles,
            )
    finally:
        torch.set_num_threads(threads)  # the caller's setting back (the run sets its own, config.torch_threads)


@dataclass
class _Inputs:
    """What a fine-tuning reads before its run directory is made: the source policy, the target, the baseline's
    returns, and when the work started."""

    policy: LoadedPolicy
    target_name: str
    target_spec: TargetSpec
    against: dict[str, Any] | None
    baseline: str | Path | None
    started: float


def _finetune(
    inputs: _Inputs,
    settings: FinetuneSettings,
    run_dir: Path,
    device: str,
    callbacks: Sequence[BaseCallback],
    command: list[str] | None,
    trust_pickles: bool,
) -> FinetuneResult:
    """:func:`finetune` into a run directory this process holds."""
    policy, target_name, target_spec = inputs.policy, inputs.target_name, inputs.target_spec
    against, baseline, started = inputs.against, inputs.baseline, inputs.started
    setup = policy.setup
    scratch = settings.strategy == "scratch"
    if (run_dir / CONFIG).exists() or (run_dir / REPORT).exists():
        raise ConfigError(f"{run_dir}: already holds a run (choose another run directory)")
    run_dir.mkdir(parents=True, exist_ok=True)
    config, dynamics_input, layout = _recipe(policy, settings)
    torch.set_num_threads(config.torch_threads or 1)

    venv = vectorize(_on_target(setup, target_spec, dynamics_input), config.env.n_envs, settings.seed)
    evaluation = Evaluations(setup, target_spec, settings, layout, None if scratch else policy.estimator)
    try:
        model = _model(policy, config, venv, settings, device, layout, trust_pickles)
        source_before = None if scratch else evaluation.source(model, policy.statistics)
        tracker, penalty = _learn(model, config, settings, run_dir, device, command, evaluation, callbacks)
        statistics = statistics_of(training_envs(model))
        final = evaluation.target(model, statistics, final=True)
        source_after = None if scratch else evaluation.source(model, statistics)
        save_model(model, training_envs(model), run_dir)
        if dynamics_input is not None and dynamics_input.estimator is not None:
            dynamics_input.estimator.save(run_dir / OSI_FILE)  # the fine-tuned policy keeps its estimator
        record_end(run_dir, model.num_timesteps)
    finally:
        evaluation.close()
        venv.close()

    rng = np.random.default_rng(settings.seed)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "source": str(policy.path),
        "robot": setup.spec.robot,
        "algorithm": config.algorithm.name,
        "target": target_name,
        "settings": {**settings.model_dump(), "lr_scale": settings.learning_rate_scale},
        "budget": {**tracker.budget.as_dict(), "eval_counted": settings.count_eval, "final_eval_steps": final["steps"]},
        **tracker.summary(),
        "l2sp_distance": penalty.distance(),
        "final": summary(final["returns"], rng),
        "seconds": time.perf_counter() - started,
    }
    if source_before is not None and source_after is not None:  # not from scratch
        report["forgetting"] = forgetting(source_before["returns"], source_after["returns"], rng)
    if against is not None:
        report["against_scratch"] = against_scratch(final["returns"], against, str(baseline), rng)
    atomic_write_json(run_dir / REPORT, report)
    return FinetuneResult(run_dir, report)


def _learn(
    model: BaseAlgorithm,
    config: TrainConfig,
    settings: FinetuneSettings,
    run_dir: Path,
    device: str,
    command: list[str] | None,
    evaluation: Evaluations,
    callbacks: Sequence[BaseCallback],
) -> tuple[_FinetuneCallback, L2SP]:
    """Train ``model`` on the target until the budget is spent, with fresh optimizers (one group per layer), the
    L2-SP penalty and the strategy's trainable layers; the run directory records the start. The standard optimizers
    are back after.

    Returns:
        The callback (its budget, curve and schedule of trainable layers) and the penalty (its distance).
    """
    layers = policy_layers(model)
    fresh_optimizers(model, settings.layer_decay)
    penalty = L2SP(layers, settings.l2sp)
    set_random_seed(settings.seed, using_cuda=device == "cuda")
    write_config(run_dir, config)
    record_start(run_dir, command, device, 0)
    model.set_logger(Logger(str(run_dir / "tb"), [TensorBoardOutputFormat(str(run_dir / "tb"))]))
    budget = Budget(settings.steps, settings.count_eval)
    tracker = _FinetuneCallback(settings, budget, layers, penalty, evaluation, run_dir / "tb")
    try:
        model.learn(settings.steps, callback=CallbackList([tracker, *callbacks]), reset_num_timesteps=True)
        tracker.finish()
    finally:
        tracker.close()
        penalty.remove()
        standard_optimizers(model)
    return tracker, penalty


def _on_target(setup: TrainingSetup, target: TargetSpec, dynamics_input: DynamicsInputSpec | None) -> EnvFactory:
    """The target's envs, with the source's history and dynamics input."""
    return EnvFactory(
        setup.spec,
        fixed=target.parameters,
        effects=target.effects,
        history=setup.history,
        dynamics_input=dynamics_input,
    )


def _recipe(
    policy: LoadedPolicy, settings: FinetuneSettings
) -> tuple[TrainConfig, DynamicsInputSpec | None, InputLayout]:
    """The config, dynamics input and input layout the fine-tuned (or fresh) policy trains with.

    A fresh policy (``strategy: scratch``) is a plain one: an adaptive source's estimator belongs to the source's
    policy, and on the target nothing is privileged for an asymmetric critic to read.
    """
    setup = policy.setup
    if settings.strategy != "scratch":
        return setup.config, policy.dynamics_input, policy.layout
    symmetric = setup.config.algorithm.model_copy(update={"privileged_critic": False})
    plain = {"seed": settings.seed, "adaptation": AdaptationConfig(), "algorithm": symmetric}
    return setup.config.model_copy(update=plain), None, InputLayout(*robot_sizes(setup.spec), history=setup.history)


def _model(
    policy: LoadedPolicy,
    config: TrainConfig,
    venv: VecEnv,
    settings: FinetuneSettings,
    device: str,
    layout: InputLayout,
    trust_pickles: bool,
) -> BaseAlgorithm:
    """The model to train on the target: the source's (its statistics carried over) or a fresh one."""
    if settings.strategy != "scratch":
        scale, update = settings.learning_rate_scale, settings.update_normalization
        built = policy.setup.input_layout()  # the layout the source's model was built for
        return warm_start(
            policy.path, config, venv, device, built, scale, update_normalization=update, trust_pickles=trust_pickles
        )
    return new_model(config, normalized_for(venv, config), device, layout)


class _FinetuneCallback(BaseCallback):
    """Keeps the budget, evaluates on the target along the way (the sample-efficiency curve, logged under
    ``transfer/`` against target steps used), and unfreezes layers on ``progressive``'s schedule."""

    def __init__(
        self,
        settings: FinetuneSettings,
        budget: Budget,
        layers: list[Layer],
        penalty: L2SP,
        evaluation: Evaluations,
        folder: Path,
    ) -> None:
        super().__init__()
        self.settings, self.budget, self.layers, self.penalty = settings, budget, layers, penalty
        self.evaluation = evaluation
        self.writer = SummaryWriter(log_dir=str(folder))
        self.curve: list[dict[str, Any]] = []
        self.skipped = 0
        self.schedule: list[dict[str, Any]] = []
        self._next_eval = 0
        self._depth = depth(layers)
        self._top: int | None | str = "unset"
        self._rng = np.random.default_rng(settings.seed)
        self._apply_strategy()

    def _apply_strategy(self) -> None:
        progress = self.budget.used / self.budget.steps
        top = trainable_top(self.settings.strategy, progress, self._depth, self.settings.trainable_layers)
        if top != self._top:
            self._top = top
            names = set_trainable(self.layers, top)
            self.schedule.append({"target_steps": self.budget.used, "trainable": names})
            self.writer.add_scalar("transfer/trainable_layers", top or self._depth, self.budget.used)

    def _on_training_start(self) -> None:
        self._maybe_evaluate()

    def summary(self) -> dict[str, Any]:
        """The report's ``curve``, the curve evaluations skipped (a counted one whose episodes could run past the
        budget), and the schedule of trainable layers."""
        return {"curve": self.curve, "curve_evaluations_skipped": self.skipped, "trainable_schedule": self.schedule}

    def _on_step(self) -> bool:
        self.budget.train_steps = self.model.num_timesteps
        self._maybe_evaluate()
        self._apply_strategy()
        # stop before a step that would pass the budget: every env steps at once
        return self.budget.affords(self.training_env.num_envs)

    def _maybe_evaluate(self) -> None:
        if self.budget.train_steps < self._next_eval:
            return
        self._next_eval = self.budget.train_steps + self.settings.evaluation_interval
        self._evaluate_within_budget()

    def _evaluate_within_budget(self) -> None:
        """Evaluate, unless a counted evaluation could overrun the budget: then it is skipped (and counted)."""
        if self.budget.count_eval and not self.budget.affords(
            self.evaluation.curve_episodes * self.evaluation.max_episode_steps
        ):
            self.skipped += 1
            return
        self._evaluate()

    def _evaluate(self) -> None:
        spent = self.budget.used  # the target experience behind the evaluated policy
        result = self.evaluation.target(self.model, statistics_of(training_envs(self.model)))
        self.budget.eval_steps += result["steps"]
        returns = result["returns"]
        low, high = mean_return_ci([returns], self._rng)
        point = {
            "target_steps": spent,
            "train_steps": self.budget.train_steps,
            "eval_steps": self.budget.eval_steps,
            "mean_return": float(np.mean(returns)),
            "mean_return_ci95": [low, high],
        }
        self.curve.append(point)
        step = spent
        self.writer.add_scalar("transfer/target_return", point["mean_return"], step)
        self.writer.add_scalar("transfer/target_return_ci_low", low, step)
        self.writer.add_scalar("transfer/target_return_ci_high", high, step)
        self.writer.add_scalar("transfer/train_steps", self.budget.train_steps, step)
        self.writer.add_scalar("transfer/l2sp_distance", self.penalty.distance(), step)

    def finish(self) -> None:
        """The curve's last point, at the end of the budget (when it was not just taken and fits the budget)."""
        self.budget.train_steps = self.model.num_timesteps
        if self.curve and self.curve[-1]["train_steps"] == self.budget.train_steps:
            return
        self._evaluate_within_budget()

    def close(self) -> None:
        self.writer.close()
