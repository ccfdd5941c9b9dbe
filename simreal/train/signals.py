"""SIGINT and SIGTERM (a cluster's preemption) during the learning: a callback that asks the training to stop at its
next step, so that the trainer saves a checkpoint there."""

from __future__ import annotations

import signal
import threading
from typing import Any, ClassVar

from stable_baselines3.common.callbacks import BaseCallback


class StopOnSignal(BaseCallback):
    """While training, SIGINT and SIGTERM ask the training to stop at its next step (a second SIGINT stops at once,
    as Python's default does). A context manager: installs the handlers on entry in the main thread (signals reach
    no other), puts the previous ones back on exit."""

    EXIT_CODES: ClassVar[dict[int, int]] = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def __init__(self) -> None:
        super().__init__()
        self.signal_name: str | None = None
        self.exit_code = 0
        self.dones: Any = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for number in self.EXIT_CODES:
                self._previous[number] = signal.signal(number, self._asked)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _asked(self, number: int, frame: object) -> None:
        self.signal_name, self.exit_code = signal.Signals(number).name, self.EXIT_CODES[number]
        if number == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def _on_step(self) -> bool:
        if self.signal_name is None:
            return True
        self.dones = self.locals.get("dones")  # the step just taken: whether it began new episodes
        return False
