"""stable-baselines3 callbacks, one job each: log the sampled dynamics, run the schedule, evaluate on targets,
checkpoint, write the config to TensorBoard (as the rows of :func:`config_table`).

Frequencies are given in total timesteps (summed over envs), as users think of them, and checked against the
model's ``num_timesteps``, so they hold whatever ``n_envs`` is and across ``--resume``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat

from simreal import compat
from simreal.envs.inputs import InputLayout
from simreal.envs.runner import ObservationScaling, PolicyRunner
from simreal.envs.spec import Effects, RobotSpec, TargetSpec
from simreal.evaluate.evaluator import TransferEvaluator
from simreal.evaluate.video import add_video, render_episode
from simreal.fileio import read_json
from simreal.runs.algorithms import statistics_of
from simreal.runs.config import TrainConfig
from simreal.runs.rundir import BEST, EVAL, save_best, save_checkpoint
from simreal.train.protocol import Schedule


def tensorboard_writer(callback: BaseCallback) -> Any:
    """The SummaryWriter behind the model's logger, or ``None`` when TensorBoard is not among its outputs."""
    for output in callback.logger.output_formats:
        if isinstance(output, TensorBoardOutputFormat):
            return compat.tensorboard_writer(output)
    return None


class _Periodic(BaseCallback):
    """Runs :meth:`fire` at the first rollout start after training passes a multiple of ``frequency`` total
    timesteps (0: never).

    Counting total timesteps rather than calls keeps the schedule after ``--resume`` and whatever ``n_envs`` is.
    Firing at a rollout's start, after the previous update, means a checkpoint's model has learned from every step
    it counts, and a resumed PPO run keeps the rollout boundaries, so it ends at the same total timesteps.
    """

    def __init__(self, frequency: int) -> None:
        super().__init__()
        self.frequency = frequency
        self._due = 0

    def _on_training_start(self) -> None:
        if self.frequency > 0:
            self._due = (self.num_timesteps // self.frequency + 1) * self.frequency

    def _on_rollout_start(self) -> None:
        if self.frequency > 0 and self.num_timesteps >= self._due:
            self._due = (self.num_timesteps // self.frequency + 1) * self.frequency
            self.fire()

    def _on_step(self) -> bool:
        return True

    @abstractmethod
    def fire(self) -> None:
        """What to do when due."""


class DynamicsLogger(BaseCallback):
    """Logs the dynamics of finished episodes: ``dr/<param>/mean`` over the last ``window`` episodes (a scalar at
    every log), and every ``histogram_every`` timesteps a histogram ``dr/<param>`` of the values sampled since; drawn
    effects alike (``dr/action_delay_steps/mean``...)."""

    def __init__(self, window: int = 100, histogram_every: int = 10_000) -> None:
        super().__init__()
        self.window, self.histogram_every = window, histogram_every
        self._recent: dict[str, deque[float]] = {}
        self._since: dict[str, list[float]] = {}
        self._next_histogram = histogram_every

    def _on_training_start(self) -> None:
        # a resumed run writes its next histogram where the interrupted one would have
        self._next_histogram = (self.num_timesteps // self.histogram_every + 1) * self.histogram_every

    def _on_step(self) -> bool:
        finished = False
        for info in self.locals.get("infos", ()):
            dynamics = info.get("dynamics")
            if dynamics is None or "episode" not in info:
                continue
            finished = True
            for name, value in {**dynamics, **info.get("effects", {})}.items():
                self._recent.setdefault(name, deque(maxlen=self.window)).append(value)
                self._since.setdefault(name, []).append(value)
        if finished:
            for name, values in self._recent.items():
                self.logger.record(f"dr/{name}/mean", float(np.mean(values)))
        if self.num_timesteps >= self._next_histogram:
            self._write_histograms()
        return True

    def _on_training_end(self) -> None:
        self._write_histograms()

    def _write_histograms(self) -> None:
        writer = tensorboard_writer(self)
        if writer is not None and self._since:
            for name, values in self._since.items():
                writer.add_histogram(f"dr/{name}", torch.as_tensor(values), self.num_timesteps)
            writer.flush()
        self._since = {}
        self._next_histogram = self.num_timesteps + self.histogram_every


class TransferEvalCallback(_Periodic):
    """Every ``frequency`` total timesteps: evaluate on nominal dynamics and on the targets, log
    ``eval/nominal/mean_return``, ``eval/randomized/mean_return``, ``eval/target/<t>/mean_return``,
    ``sim2real/gap/<t>`` and ``sim2real/relative_gap/<t>``, and save the best model by **nominal source return**
    (never by target return: the targets stand in for reality, and selecting on them would leak the test set).
    """

    def __init__(self, evaluator: TransferEvaluator, frequency: int, run_dir: Path) -> None:
        super().__init__(frequency)
        self.evaluator, self.run_dir = evaluator, run_dir
        self.best = -np.inf
        self.last_report: dict[str, Any] | None = None

    def fire(self) -> None:
        self.evaluate()

    def evaluate(self) -> dict[str, Any]:
        """Evaluate now and log; returns the report as a mapping."""
        statistics = statistics_of(self.training_env)
        report = self.evaluator.evaluate(self.model, statistics)
        # the model's count: the callback's own is stale outside learn() (the final evaluation)
        steps = self.model.num_timesteps
        scalars = {"eval/nominal/mean_return": report.nominal.mean}
        if report.randomized is not None:
            scalars["eval/randomized/mean_return"] = report.randomized.mean
        for name, returns in report.targets.items():
            scalars[f"eval/target/{name}/mean_return"] = returns.mean
            scalars[f"sim2real/gap/{name}"] = report.gaps[name]["gap"]
            scalars[f"sim2real/relative_gap/{name}"] = report.gaps[name]["relative_gap"]
            for parameter, error in (returns.estimator_error or {}).items():
                scalars[f"adaptation/estimator_error/{name}/{parameter}"] = error
        # straight to TensorBoard at this step: dumping SB3's logger here would also write the values it holds for
        # its next dump (the last update's train/ statistics) at a step it has already logged
        writer = tensorboard_writer(self)
        if writer is not None:
            for tag, value in scalars.items():
                writer.add_scalar(tag, value, steps)
            writer.flush()
        self.last_report = {"num_timesteps": steps, **report.as_dict()}
        if report.nominal.mean > self.best:
            self.best = report.nominal.mean
            save_best(self.model, self.training_env, self.run_dir, self.last_report)
        return self.last_report

    def state(self) -> dict[str, Any]:
        best = None if self.best == -np.inf else float(self.best)
        return {"best_nominal_return": best}

    def restore(self, state: dict[str, Any]) -> None:
        best = state.get("best_nominal_return")
        self.best = -np.inf if best is None else float(best)
        # an interrupted run may have written a better best/ after its checkpoint: never overwrite it with a worse one
        saved = read_json(self.run_dir / BEST / EVAL)
        if saved is not None:
            self.best = max(self.best, float(saved["source"]["nominal"]["mean_return"]))


class EvalVideo(_Periodic):
    """Every ``frequency`` total timesteps (with the evaluation) and at the end of training: render one episode of
    at most ``steps`` steps on nominal dynamics and on each target and log it as ``eval/video/<env>`` (an animated
    image; episode reset with ``seed``, deterministic actions)."""

    def __init__(
        self,
        frequency: int,
        spec: RobotSpec,
        targets: dict[str, TargetSpec],
        steps: int,
        size: int,
        seed: int,
        layout: InputLayout,
    ) -> None:
        super().__init__(frequency)
        self.spec, self.steps, self.size, self.seed, self.layout = spec, steps, size, seed, layout
        self.envs = {"nominal": ({}, Effects()), **{name: (t.parameters, t.effects) for name, t in targets.items()}}

    def fire(self) -> None:
        writer = tensorboard_writer(self)
        if writer is None:
            return
        statistics = statistics_of(self.training_env)
        runner = PolicyRunner(self.model, self.layout, ObservationScaling.of(statistics))
        for name, (fixed, effects) in self.envs.items():
            episode = render_episode(
                runner,
                self.spec,
                fixed,
                effects,
                seed=self.seed,
                max_steps=self.steps,
                width=self.size,
                height=self.size,
            )
            add_video(writer, f"eval/video/{name}", episode.frames, self.model.num_timesteps, episode.fps)

    def _on_training_end(self) -> None:
        self.fire()


class CheckpointEvery(_Periodic):
    """Every ``frequency`` total timesteps, write a complete checkpoint atomically (see
    :func:`simreal.runs.rundir.save_checkpoint`), with the state that ``state()`` returns."""

    def __init__(self, frequency: int, run_dir: Path, keep: int, state: Callable[[], dict[str, Any]]) -> None:
        super().__init__(frequency)
        self.run_dir, self.keep, self.state = run_dir, keep, state

    def fire(self) -> None:
        self.save()

    def save(self) -> Path:
        return save_checkpoint(self.model, self.training_env, self.run_dir, self.state(), self.keep)


class ScheduleCallback(BaseCallback):
    """Runs a randomization schedule in the training process and keeps every env's sampler in step with it.

    Samplers reach the envs through ``env_method`` (so also envs in ``SubprocVecEnv`` workers); every finished
    episode's last ``info`` and return go back to the schedule (ADR's boundary episodes report
    ``info["adr_boundary"]`` there). Logs ``dr/range/<param>/low`` and ``/high`` and the schedule's own scalars at
    every rollout, and whatever the schedule reports for an episode when it does.

    Args:
        schedule: the schedule (its state is restored by the caller on resume).
    """

    def __init__(self, schedule: Schedule) -> None:
        super().__init__()
        self.schedule = schedule

    def _on_training_start(self) -> None:
        self.schedule.update(self._progress())
        self._push()

    def _progress(self) -> float:
        # the whole run's budget: learn()'s own total_timesteps is what is left of it after a resume
        total = compat.total_timesteps(self.model)
        return self.num_timesteps / total if total else 1.0

    def _push(self) -> None:
        self.training_env.env_method("set_sampler", self.schedule.sampler())
        self._log_ranges()

    def _log_ranges(self) -> None:
        for name, r in self.schedule.ranges().items():
            self.logger.record(f"dr/range/{name}/low", r.low)
            self.logger.record(f"dr/range/{name}/high", r.high)
        for tag, value in self.schedule.scalars().items():
            self.logger.record(tag, value)

    def _on_rollout_start(self) -> None:
        if self.schedule.update(self._progress()):
            self._push()
        else:
            self._log_ranges()

    def _on_step(self) -> bool:
        changed = False
        for info in self.locals.get("infos", ()):
            if "episode" not in info:
                continue
            observation = self.schedule.observe(info, info["episode"]["r"])
            for tag, value in observation.scalars.items():
                self.logger.record(tag, value)
            changed = changed or observation.changed
        if changed:
            self._push()
        return True


def config_table(config: TrainConfig) -> list[tuple[str, str]]:
    """The resolved config flattened to ``(dotted key, value)`` rows, for logs and TensorBoard."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), child)
        else:
            rows.append((prefix, yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()))

    walk("", config.model_dump(mode="json"))
    return rows


class ConfigText(BaseCallback):
    """Writes the resolved config to TensorBoard as a text table, once."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__()
        self.config = config

    def _on_training_start(self) -> None:
        writer = tensorboard_writer(self)
        if writer is not None and self.num_timesteps == 0:  # a resumed run keeps the text its start wrote
            rows = "\n".join(f"| {key} | {value} |" for key, value in config_table(self.config))
            writer.add_text("config", f"| field | value |\n| --- | --- |\n{rows}", self.num_timesteps)

    def _on_step(self) -> bool:
        return True
