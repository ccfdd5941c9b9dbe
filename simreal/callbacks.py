"""stable-baselines3 callbacks, one job each: log the sampled dynamics, evaluate on targets, checkpoint.

Frequencies are given in total timesteps (summed over envs), as users think of them, and checked against the
model's ``num_timesteps``, so they hold whatever ``n_envs`` is and across ``--resume``.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecNormalize

from simreal.evaluation import TransferEvaluator
from simreal.fileio import atomic_write_json
from simreal.rundir import save_checkpoint, save_model
from simreal.schedules import ADRSchedule, FixedSchedule


def tensorboard_writer(callback: BaseCallback) -> Any:
    """The SummaryWriter behind the model's logger, or ``None`` when TensorBoard is not among its outputs."""
    for output in callback.logger.output_formats:
        if isinstance(output, TensorBoardOutputFormat):
            return output.writer
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

    def fire(self) -> None:
        raise NotImplementedError


class DynamicsLogger(BaseCallback):
    """Logs the dynamics of finished episodes: ``dr/<param>/mean`` over the last ``window`` episodes (a scalar at
    every log), and every ``histogram_every`` timesteps a histogram ``dr/<param>`` of the values sampled since."""

    def __init__(self, window: int = 100, histogram_every: int = 10_000) -> None:
        super().__init__()
        self.window, self.histogram_every = window, histogram_every
        self._recent: dict[str, deque[float]] = {}
        self._since: dict[str, list[float]] = {}
        self._next_histogram = histogram_every

    def _on_step(self) -> bool:
        finished = False
        for info in self.locals.get("infos", ()):
            dynamics = info.get("dynamics")
            if dynamics is None or "episode" not in info:
                continue
            finished = True
            for name, value in dynamics.items():
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
        statistics = self.training_env if isinstance(self.training_env, VecNormalize) else None
        report = self.evaluator.evaluate(self.model, statistics)
        self.logger.record("eval/nominal/mean_return", report.nominal.mean)
        if report.randomized is not None:
            self.logger.record("eval/randomized/mean_return", report.randomized.mean)
        for name, returns in report.targets.items():
            self.logger.record(f"eval/target/{name}/mean_return", returns.mean)
            self.logger.record(f"sim2real/gap/{name}", report.gaps[name]["gap"])
            self.logger.record(f"sim2real/relative_gap/{name}", report.gaps[name]["relative_gap"])
        self.last_report = {"num_timesteps": self.num_timesteps, **report.as_dict()}
        if report.nominal.mean > self.best:
            self.best = report.nominal.mean
            save_model(self.model, self.training_env, self.run_dir / "best")
            atomic_write_json(self.run_dir / "best" / "eval.json", self.last_report)
        self.logger.dump(self.num_timesteps)
        return self.last_report

    def state(self) -> dict[str, Any]:
        best = None if self.best == -np.inf else float(self.best)
        return {"best_nominal_return": best}

    def restore(self, state: dict[str, Any]) -> None:
        best = state.get("best_nominal_return")
        self.best = -np.inf if best is None else float(best)


class CheckpointEvery(_Periodic):
    """Every ``frequency`` total timesteps, write a complete checkpoint atomically (see
    :func:`simreal.rundir.save_checkpoint`), with the state that ``state()`` returns."""

    def __init__(self, frequency: int, run_dir: Path, keep: int, state: Any) -> None:
        super().__init__(frequency)
        self.run_dir, self.keep, self.state = run_dir, keep, state

    def fire(self) -> None:
        self.save()

    def save(self) -> Path:
        return save_checkpoint(self.model, self.training_env, self.run_dir, self.state(), self.keep)


class ScheduleCallback(BaseCallback):
    """Runs a randomization schedule in the training process and keeps every env's ranges in step with it.

    Ranges reach the envs through ``env_method`` (so also envs in ``SubprocVecEnv`` workers); ADR's boundary episodes
    come back through ``info["adr_boundary"]`` beside the Monitor's episode return. Logs ``dr/range/<param>/low``
    and ``/high`` at every rollout, and for ADR ``dr/adr_entropy`` and ``dr/adr/<param>/<side>/mean_return`` each
    time a boundary is judged.

    Args:
        schedule: the schedule (its state is restored by the caller on resume).
    """

    def __init__(self, schedule: FixedSchedule) -> None:
        super().__init__()
        self.schedule = schedule

    def _on_training_start(self) -> None:
        self.schedule.update(self._progress())
        self.training_env.env_method("set_boundary_probability", self.schedule.boundary_probability)
        self._push()

    def _progress(self) -> float:
        total = self.locals.get("total_timesteps") or self.model._total_timesteps
        return self.num_timesteps / total if total else 1.0

    def _push(self) -> None:
        self.training_env.env_method("set_ranges", self.schedule.ranges())
        self._log_ranges()

    def _log_ranges(self) -> None:
        for name, r in self.schedule.ranges().items():
            self.logger.record(f"dr/range/{name}/low", r.low)
            self.logger.record(f"dr/range/{name}/high", r.high)
        if isinstance(self.schedule, ADRSchedule):
            self.logger.record("dr/adr_entropy", self.schedule.entropy())

    def _on_rollout_start(self) -> None:
        if self.schedule.update(self._progress()):
            self._push()
        else:
            self._log_ranges()

    def _on_step(self) -> bool:
        if not isinstance(self.schedule, ADRSchedule):
            return True
        moved = False
        for info in self.locals.get("infos", ()):
            if "episode" not in info:
                continue
            boundary = info.get("adr_boundary")
            if boundary is None:
                self.schedule.observe_reference(info["episode"]["r"])
                continue
            decision = self.schedule.observe(boundary[0], boundary[1], info["episode"]["r"])
            if decision is not None:
                self.logger.record(f"dr/adr/{decision.parameter}/{decision.side}/mean_return", decision.mean_return)
                moved = moved or decision.move != "keep"
        if moved:
            self._push()
        return True
