"""What system identification found: the estimate, its intervals and checks, and the files made from them."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from simreal.envs.coordinates import from_coordinates
from simreal.sysid.fitting import Estimate, Fitting
from simreal.sysid.states import States
from simreal.sysid.uncertainty import CONFIDENCE, Misfit, half_widths, identifiable, intervals


@dataclass
class SysidResult:
    """What identification found (see :meth:`as_dict` for the JSON form)."""

    robot: str
    names: list[str]
    estimate: dict[str, float]
    interval: dict[str, tuple[float, float]]
    identifiable: dict[str, bool]
    misfit: Misfit | None
    delay: int | None
    delay_losses: dict[int, float]
    horizon: int
    gap: dict[str, dict[str, float]]
    truth: dict[str, float] | None
    limits: dict[str, tuple[float, float]]
    evaluations: int
    seconds: float
    states: str = "recorded"
    position_noise: dict[int, float] = field(default_factory=dict)
    observation_noise: float | None = None
    min_width: float = 0.1
    episodes: int = 0
    #: Each fit's estimate: the robust fits whose mean is the estimate (one fit on recorded states).
    fits: list[dict[str, float]] = field(default_factory=list)

    #: how the output file names its robot (:attr:`~simreal.envs.spec.RobotSpec.reference`): a shipped robot's
    #: name, a robot file's path or an inline robot's mapping; ``None``: the name
    base: str | dict[str, Any] | None = None
    #: the offsets among the names, name -> the width of its default training range
    offset_widths: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_estimate(
        cls,
        run: Fitting,
        estimate: Estimate,
        misfit: Misfit | None,
        gap: dict[str, dict[str, float]],
        smooth: bool,
        min_width: float,
        start: float,
    ) -> SysidResult:
        """The result of ``run``'s fits: the estimate in the parameters' own units, its intervals and whether each is
        identifiable, with the checks (``misfit``, ``gap``) and what identification was given (``smooth``,
        ``min_width``; ``start``: its :func:`time.perf_counter` at the start)."""
        spec, names, offsets, states = run.local.spec, run.local.names, run.local.offsets, run.states
        x = estimate.log_estimate
        log_std = np.sqrt(estimate.log_var)
        episodes = len(np.unique(estimate.windows.episode))
        widths = half_widths(log_std, estimate.dof, episodes)
        # a recording from simreal's simulator carries the multipliers it ran with: the truth to compare against
        truth = run.data.meta.get("dynamics") if run.data.meta.get("source") == "simulator" else None
        return cls(
            robot=spec.robot,
            base=spec.reference,
            names=names,
            estimate=dict(zip(names, from_coordinates(names, x, offsets).tolist(), strict=True)),
            interval=intervals(spec, names, x, widths, offsets),
            identifiable=identifiable(spec, names, log_std, widths, offsets, misfit),
            misfit=misfit,
            delay=estimate.delay,
            delay_losses=estimate.delay_losses,
            horizon=run.horizon,
            gap=gap,
            truth=None if truth is None else {n: float(truth.get(n, spec.parameters[n].neutral)) for n in names},
            limits={n: spec.parameters[n].hard_limits for n in names},
            evaluations=estimate.evaluations,
            seconds=time.perf_counter() - start,
            states=_describe(states, smooth),
            position_noise={int(q): float(v) for q, v in states.position_noise.items()},
            observation_noise=states.observation_noise,
            min_width=min_width,
            episodes=episodes,
            fits=[
                dict(zip(names, from_coordinates(names, fit, offsets).tolist(), strict=True)) for fit in estimate.fits
            ],
            offset_widths={n: spec.parameters[n].range[1] - spec.parameters[n].range[0] for n in offsets},
        )

    def errors(self) -> dict[str, float | None] | None:
        """Relative error of each estimate against the truth, when the data came from a simreal target (``None``
        for a true value of 0, where only the absolute error means something)."""
        if self.truth is None:
            return None
        return {
            n: abs(self.estimate[n] - self.truth[n]) / abs(self.truth[n]) if self.truth[n] != 0 else None
            for n in self.names
        }

    def covered(self) -> dict[str, bool] | None:
        """Whether each interval holds the truth, when it is known."""
        if self.truth is None:
            return None
        return {n: self.interval[n][0] <= self.truth[n] <= self.interval[n][1] for n in self.names}

    def ranges(self) -> dict[str, list[float]]:
        """Training ranges: each interval, widened to at least ``min_width`` of the estimate (``estimate * (1 +-
        min_width / 2)``; an offset's: of its default range's width ``w``, ``estimate +- w * min_width / 2``), within
        the parameter's limits."""
        ranges = {}
        for n in self.names:
            low, high = self.interval[n]
            spread = self.offset_widths.get(n, self.estimate[n])
            low = min(low, self.estimate[n] - spread * self.min_width / 2)
            high = max(high, self.estimate[n] + spread * self.min_width / 2)
            hard_low, hard_high = self.limits[n]
            ranges[n] = [max(low, hard_low), min(high, hard_high)]
        return ranges

    def _parameter(
        self, name: str, range_: list[float], errors: dict[str, float | None] | None, covered: dict[str, bool] | None
    ) -> dict[str, Any]:
        """One parameter's entry in :meth:`as_dict`: with its errors when the truth is known."""
        entry = {
            "estimate": self.estimate[name],
            "interval": list(self.interval[name]),
            "range": range_,
            "identifiable": self.identifiable[name],
        }
        if self.truth is not None and errors is not None and covered is not None:
            entry.update(
                truth=self.truth[name],
                absolute_error=abs(self.estimate[name] - self.truth[name]),
                relative_error=errors[name],
                covered=covered[name],
            )
        return entry

    def as_dict(self) -> dict[str, Any]:
        errors, covered = self.errors(), self.covered()
        defined = [e for e in (errors or {}).values() if e is not None]
        ranges = self.ranges()
        return {
            "schema": "simreal.sysid/2",
            "robot": self.robot,
            "confidence": CONFIDENCE,
            "parameters": {n: self._parameter(n, ranges[n], errors, covered) for n in self.names},
            "mean_relative_error": float(np.mean(defined)) if defined else None,
            "misfit": None if self.misfit is None else asdict(self.misfit),
            "action_delay_steps": self.delay,
            "delay_losses": {str(d): v for d, v in self.delay_losses.items()},
            "observation_noise": self.observation_noise,
            "horizon": self.horizon,
            "episodes": self.episodes,
            "states": self.states,
            "position_noise": {f"qpos_{q}": v for q, v in self.position_noise.items()},
            "dynamics_gap": self.gap,
            "fits": self.fits,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
        }

    def target_yaml(self, source: str) -> dict[str, Any]:
        """The output file: a target (the estimate and the identified effects) that also carries training ranges
        (the intervals, see :meth:`ranges`)."""
        effects: dict[str, Any] = {"action_delay_steps": self.delay or 0}
        if self.observation_noise is not None:
            effects["obs_noise_std"] = self.observation_noise
        return {
            "base": self.base if self.base is not None else self.robot,
            "description": f"identified by simreal sysid from {source}",
            "parameters": dict(self.estimate),
            "effects": effects,
            "ranges": self.ranges(),
        }


def _describe(states: States, smooth: bool) -> str:
    if not states.rebuilt:
        return "recorded"
    return "rebuilt from observations" + (", positions smoothed" if smooth else "")
