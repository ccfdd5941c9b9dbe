"""Train PPO or SAC on a robot's randomized (or nominal) envs, and resume a run exactly where it stopped.

One resolved config in (:class:`~simreal.runs.setup.TrainingSetup`), one run directory out
(:mod:`simreal.runs.rundir`). The library does not print: progress reaches the caller through the stable-baselines3
callbacks it passes in. Where a call starts (a new run, or a checkpoint put back exactly as it stood) is
:mod:`~simreal.train.resume`'s; the stop on SIGINT and SIGTERM is :mod:`~simreal.train.signals`'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.utils import set_random_seed
from torch.utils.tensorboard import SummaryWriter

from simreal import compat, seeding
from simreal.adaptation.osi import OSI_FILE, OSIEstimator, UniversalPolicy, train_osi
from simreal.adaptation.rma import rma_extractor, train_adapter
from simreal.envs.rendering import require_rendering
from simreal.envs.vector import EnvFactory, vectorize
from simreal.errors import Interrupted
from simreal.evaluate.evaluator import TransferEvaluator
from simreal.fileio import atomic_write_json
from simreal.locks import hold
from simreal.runs.algorithms import new_model, normalized_for, resolve_device, statistics_of, training_envs, warm_start
from simreal.runs.rundir import EVAL, record_end, record_start, save_model, saved_config, write_config
from simreal.runs.setup import TrainingSetup
from simreal.train.callbacks import (
    CheckpointEvery,
    ConfigText,
    DynamicsLogger,
    EvalVideo,
    ScheduleCallback,
    TransferEvalCallback,
)
from simreal.train.protocol import Schedule
from simreal.train.resume import StartingPoint, checkpoint_state, restore, starting_point
from simreal.train.schedules import build_schedule
from simreal.train.signals import StopOnSignal


@dataclass
class TrainResult:
    """What a training call left behind.

    Attributes:
        run_dir: the run directory.
        start_timesteps: where this call started (0 for a new run, the checkpoint's count for a resumed one).
        num_timesteps: where the run stands now.
        final_eval: the final evaluation (also in ``eval.json``).
        passed_over: a resume's damaged checkpoints, newer than the one it started from: what is wrong with each.
    """

    run_dir: Path
    start_timesteps: int
    num_timesteps: int
    final_eval: dict[str, Any]
    passed_over: list[str] = field(default_factory=list)

    @property
    def trained(self) -> int:
        """Timesteps trained by this call."""
        return self.num_timesteps - self.start_timesteps


def train(
    setup: TrainingSetup,
    run_dir: str | Path,
    *,
    device: str = "auto",
    resume: bool = False,
    callbacks: Sequence[BaseCallback] = (),
    command: list[str] | None = None,
    init: str | Path | None = None,
    on_resume: Callable[[Path | None, list[str]], None] | None = None,
    trust_pickles: bool = False,
) -> TrainResult:
    """Train the config's algorithm, evaluating on targets and checkpointing as it says.

    Args:
        setup: the resolved config; for ``resume``, the run's own (see :func:`simreal.runs.setup.resume_setup`).
        run_dir: the run directory (created; must be new unless ``resume``).
        device: ``auto``, ``cpu`` or ``cuda``.
        resume: continue from the run's latest checkpoint: model, normalization, replay buffer, schedule, and every
            env's random streams, so each env draws the dynamics and noise it would have drawn next; stop at
            ``setup.config.total_timesteps``.
        callbacks: extra stable-baselines3 callbacks (the CLI passes its progress bar).
        command: the command line to record (default: ``sys.argv``).
        init: a new run starts from this model file's weights and normalization statistics instead of fresh ones
            (warm start, e.g. continuing a policy in an identified simulator); the config's learning rate and
            schedule apply from the start.
        on_resume: called before a resume trains, with the checkpoint it starts from (``None``: the run was killed
            before its first one and starts over) and what is wrong with each newer, damaged checkpoint it passed
            over (the CLI says so before the training starts).
        trust_pickles: resume from, or start from ``init``, stable-baselines3's pickles alone (a run saved before
            simreal kept its own files, a foreign model): see :data:`simreal.errors.TRUST_PICKLES`.

    Returns:
        The run directory, the timesteps it started from and reached, and the last evaluation.

    While the policy learns, SIGINT and SIGTERM (a cluster's preemption) stop the training at its next step and save
    a checkpoint there; :class:`~simreal.errors.Interrupted` then says where to resume from. (A run resumed from that
    checkpoint goes on from there: it differs from an uninterrupted run by the rollout the signal cut short, which a
    periodic checkpoint, taken between rollouts, never does.)

    Raises:
        ConfigError: a new run into a folder that already holds a run.
        DataError: nothing to resume, or no intact checkpoint.
        BusyError: another process holds the run directory.
        SetupError: ``eval.video_steps`` set where this process cannot render (``MUJOCO_GL``).
        Interrupted: SIGINT or SIGTERM stopped the training (a checkpoint was saved).
    """
    run_dir = Path(run_dir)
    device = resolve_device(device)
    if setup.config.eval.video_steps:
        require_rendering()  # before anything is written: a missing GL setup is one line, not a failed run
    if resume:
        saved_config(run_dir)  # a folder that holds no run is one line naming what to do
    threads = torch.get_num_threads()
    try:
        with hold(run_dir, "run directory"):
            return _train(setup, run_dir, device, resume, callbacks, command, init, on_resume, trust_pickles)
    finally:
        torch.set_num_threads(threads)  # the caller's setting back (the run sets its own, config.torch_threads)


def _build(
    setup: TrainingSetup, point: StartingPoint, device: str, init: str | Path | None, trust_pickles: bool
) -> tuple[BaseAlgorithm, Schedule]:
    """The training envs, the schedule and the model: new, warm-started from ``init``, or the checkpoint's."""
    config = setup.config
    factory = EnvFactory(
        setup.spec, setup.ranges, effects=setup.effects, history=setup.history, dynamics_input=setup.training_input
    )
    venv = vectorize(factory, config.env.n_envs, config.seed, subprocesses=config.env.vec_env == "subproc")
    try:
        schedule = build_schedule(setup)
        schedule.restore(point.state.get("schedule", {}))
        if config.randomization.enabled:
            venv.env_method("set_sampler", schedule.sampler())  # before the first reset draws any dynamics
        layout = setup.input_layout()
        if point.checkpoint is None and init is not None:
            model = warm_start(Path(init), config, venv, device, layout, trust_pickles=trust_pickles)
            set_random_seed(config.seed, using_cuda=device == "cuda")  # loading reseeded with the init's seed
        elif point.checkpoint is None:
            model = new_model(config, normalized_for(venv, config, setup.pinned(layout)), device, layout)
        else:
            model = restore(setup, venv, point.checkpoint, point.state, device, trust_pickles)
    except BaseException:
        venv.close()
        raise
    extractor = rma_extractor(model)
    if extractor is not None:
        # phase 1 trains on the encoded truth, also when a finished RMA run is resumed with a bigger budget
        extractor.use_encoder()
    return model, schedule


def _train(
    setup: TrainingSetup,
    run_dir: Path,
    device: str,
    resume: bool,
    callbacks: Sequence[BaseCallback],
    command: list[str] | None,
    init: str | Path | None,
    on_resume: Callable[[Path | None, list[str]], None] | None,
    trust_pickles: bool,
) -> TrainResult:
    """:func:`train` in a run directory this process holds."""
    config = setup.config
    point = starting_point(setup, run_dir, resume, trust_pickles)
    if resume and on_resume is not None:
        on_resume(point.checkpoint, point.passed_over)
    torch.set_num_threads(config.torch_threads or 1)
    set_random_seed(config.seed, using_cuda=device == "cuda")
    model, schedule = _build(setup, point, device, init, trust_pickles)
    venv = training_envs(model)
    write_config(run_dir, config)
    record_start(run_dir, command, device, point.timesteps)
    # events the interrupted run logged after its checkpoint are hidden; those at the checkpoint's step came before it
    purge = point.timesteps + 1 if point.checkpoint is not None else 0 if point.restarted else None
    model.set_logger(_tensorboard(run_dir / "tb", purge_step=purge))

    evaluator = _evaluator(setup)
    evaluation = TransferEvalCallback(evaluator, config.eval.frequency, run_dir)
    evaluation.restore(point.state)
    checkpoints = CheckpointEvery(
        config.checkpoint.frequency,
        run_dir,
        config.checkpoint.keep,
        lambda: checkpoint_state(model, evaluation, schedule),
    )
    stop = StopOnSignal()  # last: it sees each step after the others have
    scheduling = [ScheduleCallback(schedule)] if config.randomization.enabled else []
    videos = [_videos(setup)] if config.eval.video_steps else []
    everything = CallbackList(
        [DynamicsLogger(), ConfigText(config), *scheduling, evaluation, *videos, checkpoints, *callbacks, stop]
    )
    try:
        _learn(
            model,
            callbacks=everything,
            stop=stop,
            total=config.total_timesteps,
            new=point.checkpoint is None,
            checkpoints=checkpoints,
            run_dir=run_dir,
        )
        if config.adaptation.kind == "rma":
            _train_adapter(setup, model, run_dir)  # the policy now acts on the adaptation module's estimate
        elif setup.adaptive:
            estimator = _train_estimator(setup, model, run_dir)
            # the final evaluation is the deployable pair's: the policy given the estimator's dynamics
            evaluator.close()
            evaluator = _evaluator(setup, estimator)
            evaluation.evaluator = evaluator
        final = evaluation.evaluate()
        if model.num_timesteps > point.timesteps or point.checkpoint is None:
            checkpoints.save()
        save_model(model, venv, run_dir)
        atomic_write_json(run_dir / EVAL, final)
        record_end(run_dir, model.num_timesteps)
    finally:
        evaluator.close()
        venv.close()
    return TrainResult(run_dir, point.timesteps, model.num_timesteps, final, point.passed_over)


def _learn(
    model: BaseAlgorithm,
    callbacks: CallbackList,
    stop: StopOnSignal,
    total: int,
    new: bool,
    checkpoints: CheckpointEvery,
    run_dir: Path,
) -> None:
    """Learn up to ``total`` timesteps; a signal stops it at its next step with a checkpoint saved there.

    Raises:
        Interrupted: SIGINT or SIGTERM stopped the learning.
    """
    remaining = total - model.num_timesteps
    if remaining <= 0:
        callbacks.init_callback(model)
        return
    with stop:  # signals during the learning only: later phases stop as Python's defaults say
        model.learn(remaining, callback=callbacks, reset_num_timesteps=new, tb_log_name="")
    if stop.signal_name is not None:
        if stop.dones is not None:  # stopped between a step and its bookkeeping: the episodes as they stand
            obs, _, original = compat.rollout_state(model)
            compat.set_rollout_state(model, obs, stop.dones, original)
        checkpoints.save()
        raise Interrupted(run_dir, model.num_timesteps, stop.signal_name, stop.exit_code)


def _videos(setup: TrainingSetup) -> EvalVideo:
    """The evaluation videos of a run (``eval.video_steps``)."""
    config = setup.config
    return EvalVideo(
        config.eval.frequency,
        setup.spec,
        setup.targets,
        config.eval.video_steps,
        config.eval.video_size,
        seed=config.seed + seeding.EVALUATION,
        layout=setup.input_layout(),
    )


def _evaluator(setup: TrainingSetup, estimator: OSIEstimator | None = None) -> TransferEvaluator:
    """The evaluation envs of a run: nominal, the training distribution and the targets; an adaptive policy given
    the true dynamics, or its ``estimator``'s."""
    layout = setup.input_layout("estimated", estimator.history) if estimator is not None else setup.input_layout()
    return TransferEvaluator(
        setup.spec,
        setup.targets,
        setup.config.eval.episodes,
        seed=setup.config.seed + seeding.EVALUATION,
        layout=layout,
        ranges=setup.ranges,
        effects=setup.effects,
        estimator=estimator,
    )


def _train_adapter(setup: TrainingSetup, model: BaseAlgorithm, run_dir: Path) -> None:
    """RMA's second phase: train the adaptation module on-policy, log each round under ``adaptation/rma/``, write
    ``rma.json``."""
    writer = SummaryWriter(log_dir=str(run_dir / "tb"))

    def log(round_: int, report: dict[str, Any]) -> None:
        writer.add_scalar("adaptation/rma/loss", report["loss"], round_)
        writer.add_scalar("adaptation/rma/latent_error", report["latent_error_before"], round_)
        writer.flush()

    try:
        reports = train_adapter(model, setup.config.adaptation.rma, seed=setup.config.seed + seeding.OSI, log=log)
    finally:
        writer.close()
    atomic_write_json(run_dir / "rma.json", {"parameters": list(setup.adaptive), "rounds": reports})


def _train_estimator(setup: TrainingSetup, model: BaseAlgorithm, run_dir: Path) -> OSIEstimator:
    """UP-OSI's second phase: train the estimator on the universal policy's rollouts, log its held-out error per
    round under ``adaptation/``, and write ``osi.pt`` and ``osi.json``."""
    adaptation = setup.config.adaptation
    env = training_envs(model)
    writer = SummaryWriter(log_dir=str(run_dir / "tb"))

    def log(round_: int, report: dict[str, Any]) -> None:
        writer.add_scalar("adaptation/osi/loss", report["loss"], round_)
        for name, error in report["held_out"].items():
            writer.add_scalar(f"adaptation/osi/relative_error/{name}", error["relative_error"], round_)
            writer.add_scalar(f"adaptation/osi/log_rmse/{name}", error["log_rmse"], round_)
        writer.flush()

    try:
        universal = UniversalPolicy(
            model,
            statistics=statistics_of(env),
            spec=setup.spec,
            ranges=setup.ranges,
            effects=setup.effects,
            layout=setup.input_layout(),
            history=adaptation.history,
        )
        estimator, reports = train_osi(
            universal,
            adaptation.osi,
            seed=setup.config.seed + seeding.OSI,
            log=log,
        )
    finally:
        writer.close()
    estimator.save(run_dir / OSI_FILE)
    atomic_write_json(run_dir / "osi.json", {"parameters": list(setup.adaptive), "rounds": reports})
    return estimator


class _TensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard output, opened with a purge step: a resumed run hides what the interrupted one logged past
    its checkpoint, so TensorBoard shows no step twice."""

    def __init__(self, folder: str, purge_step: int | None) -> None:
        super().__init__(folder)
        if purge_step is not None:
            compat.set_tensorboard_writer(self, SummaryWriter(log_dir=folder, purge_step=purge_step))


def _tensorboard(folder: Path, purge_step: int | None) -> Logger:
    return Logger(folder=str(folder), output_formats=[_TensorBoard(str(folder), purge_step)])
