"""What the abuse test modules share: the one-error-line assertion every refused case makes, and the kill a
training cannot catch."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback


def one_error_line(code: int, stdout: str, stderr: str, *expected: str) -> str:
    """Assert exit status 2 and one ``error:`` line on stderr, the last (a command may have said what it starts
    first), holding every ``expected`` text, and no traceback anywhere; return the line."""
    assert code == 2, (code, stdout[-3000:], stderr[-3000:])
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:] and "Traceback" not in stdout + stderr, stderr
    for text in expected:
        assert text in errors[0], (text, errors[0])
    return errors[0]


class Killed(BaseException):
    """What a kill does to the process: nothing after it runs (no handler catches it)."""


class KillAt(BaseCallback):
    """Kill the training once it reaches ``at`` timesteps."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at:
            raise Killed
        return True
