"""A rich progress bar for training, as a stable-baselines3 callback (used by the CLI; the library never prints)."""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from stable_baselines3.common.callbacks import BaseCallback


class RichProgress(BaseCallback):
    """Shows timesteps, steps/s, ETA and the latest mean episode return.

    Args:
        total_timesteps: the run's total (a resumed run starts the bar where it stands).
        console: where to draw (stderr by default, so stdout stays clean for tables and JSON).
        description: the bar's label.
    """

    def __init__(self, total_timesteps: int, console: Console | None = None, description: str = "train") -> None:
        super().__init__()
        self.total = total_timesteps
        self.progress = Progress(
            TextColumn(f"[bold]{description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} steps/s"),
            TextColumn("return {task.fields[ret]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None
        self._start = (0.0, 0)

    def _on_training_start(self) -> None:
        self.progress.start()
        self._task = self.progress.add_task("train", total=self.total, completed=self.num_timesteps, rate="-", ret="-")
        self._start = (time.perf_counter(), self.num_timesteps)

    def _on_step(self) -> bool:
        if self.n_calls % 16 == 0:
            self._refresh()
        return True

    def _refresh(self) -> None:
        if self._task is None:  # not started
            return
        elapsed = time.perf_counter() - self._start[0]
        rate = (self.num_timesteps - self._start[1]) / elapsed if elapsed > 0 else 0.0
        episodes = self.model.ep_info_buffer
        ret = f"{np.mean([e['r'] for e in episodes]):.1f}" if episodes else "-"
        self.progress.update(self._task, completed=min(self.num_timesteps, self.total), rate=f"{rate:.0f}", ret=ret)

    def _on_training_end(self) -> None:
        self._refresh()
        self.progress.stop()
