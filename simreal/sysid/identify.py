"""System identification: the simulator parameters that best explain recorded trajectories.

The objective is the multi-step open-loop prediction error: from recorded states, the simulator is reset to the
state, replays the recorded actions for ``horizon`` control steps, and its states are compared with the recorded
ones, each dimension divided by its spread in the data. CMA-ES (the ``cma`` package) minimizes the mean squared error
over log-multipliers within the parameters' limits; each generation's candidates x windows run as one batch of
MuJoCo's native rollouts (``mujoco.rollout``) on a thread per core.
An optional discrete action delay is found by fitting each candidate delay.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simreal import seeding
from simreal.envs.spec import RobotSpec, check_parameter, load_robot
from simreal.sysid.simulator import Simulator
from simreal.sysid.states import States, fit_states
from simreal.sysid.trajectories import Trajectories
from simreal.sysid.windows import Windows, make_windows

with warnings.catch_warnings():
    # cma announces on import that it cannot plot without matplotlib: simreal never plots through it
    warnings.filterwarnings("ignore", message="Could not import matplotlib")
    import cma

#: A parameter whose 10% change moves the loss by less than this fraction is reported as not identifiable.
IDENTIFIABILITY_THRESHOLD = 0.01
#: The delay screening fits see at most this many windows (the delays' losses differ by far more than the noise).
SCREEN_WINDOWS = 50


@dataclass
class Fit:
    """One CMA-ES fit: the best point, CMA-ES's final spread, the loss and evaluations spent."""

    log_estimate: np.ndarray
    log_std: np.ndarray
    loss: float
    evaluations: int


@dataclass
class SysidResult:
    """What identification found (see :meth:`as_dict` for the JSON form)."""

    robot: str
    names: list[str]
    estimate: dict[str, float]
    spread: dict[str, float]
    identifiable: dict[str, bool]
    delay: int | None
    delay_losses: dict[int, float]
    k: float
    horizon: int
    gap: dict[str, dict[str, float]]
    truth: dict[str, float] | None
    limits: dict[str, tuple[float, float]]
    evaluations: int
    seconds: float
    states: str = "recorded"
    position_noise: dict[int, float] = field(default_factory=dict)

    def errors(self) -> dict[str, float | None] | None:
        """Relative error of each estimate against the truth, when the data came from a simreal target (``None``
        for a true value of 0, where only the absolute error means something)."""
        if self.truth is None:
            return None
        return {
            n: abs(self.estimate[n] - self.truth[n]) / abs(self.truth[n]) if self.truth[n] != 0 else None
            for n in self.names
        }

    def ranges(self) -> dict[str, list[float]]:
        """Training ranges around the estimate: ``estimate / spread**k .. estimate * spread**k``."""
        return {
            n: [self.estimate[n] / self.spread[n] ** self.k, self.estimate[n] * self.spread[n] ** self.k]
            for n in self.names
        }

    def as_dict(self) -> dict[str, Any]:
        errors = self.errors()
        defined = [e for e in (errors or {}).values() if e is not None]
        return {
            "schema": "simreal.sysid/1",
            "robot": self.robot,
            "parameters": {
                n: {
                    "estimate": self.estimate[n],
                    "spread": self.spread[n],
                    "range": self.ranges()[n],
                    "identifiable": self.identifiable[n],
                    **(
                        {
                            "truth": self.truth[n],
                            "absolute_error": abs(self.estimate[n] - self.truth[n]),
                            "relative_error": errors[n],
                        }
                        if errors is not None
                        else {}
                    ),
                }
                for n in self.names
            },
            "mean_relative_error": float(np.mean(defined)) if defined else None,
            "action_delay_steps": self.delay,
            "delay_losses": {str(d): v for d, v in self.delay_losses.items()},
            "horizon": self.horizon,
            "states": self.states,
            "position_noise": {f"qpos_{q}": v for q, v in self.position_noise.items()},
            "dynamics_gap": self.gap,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
        }

    def target_yaml(self, source: str) -> dict[str, Any]:
        """The output file: a target (the point estimate) that also carries training ranges (estimate +- k
        spread, clipped to the limits)."""
        ranges = {}
        for name, (low, high) in self.ranges().items():
            hard_low, hard_high = self.limits[name]
            ranges[name] = [max(low, hard_low), min(high, hard_high)]
        return {
            "base": self.robot,
            "description": f"identified by simreal sysid from {source}",
            "parameters": dict(self.estimate),
            "effects": {"action_delay_steps": self.delay or 0},
            "ranges": ranges,
        }


def identify(
    data: Trajectories,
    robot: str | RobotSpec,
    params: Sequence[str] | None = None,
    horizon: int = 10,
    budget: int = 1500,
    seed: int = 0,
    delays: Sequence[int] | None = None,
    holdout: Trajectories | None = None,
    max_windows: int = 200,
    k: float = 2.0,
    use_observations: bool = False,
    smooth: bool | None = None,
    threads: int = 2,
    progress: Callable[[str, int, int, float], None] | None = None,
) -> SysidResult:
    """Identify ``params`` of ``robot`` from ``data``.

    Args:
        data: the recording (checked against the robot).
        robot: the robot (a name, or its loaded spec).
        params: parameter names (default: all the robot's).
        horizon: K, the open-loop prediction horizon in control steps.
        budget: CMA-ES objective evaluations in all; with candidate delays, half of it screens them (on at most
            ``SCREEN_WINDOWS`` windows each) and the rest fits the best one.
        seed: seed of CMA-ES and of the window subsampling.
        delays: candidate action delays to fit (e.g. ``range(4)``); ``None`` assumes no delay.
        holdout: other episodes for the dynamics gap on data not fitted.
        max_windows: at most this many windows (sampled) enter the objective.
        k: training ranges are the estimate times/divided by ``spread**k``.
        use_observations: rebuild states from observations even when qpos/qvel were recorded (as with a real robot).
        smooth: denoise rebuilt positions with the observed velocities (:mod:`simreal.sysid.smoothing`);
            default: whenever states are rebuilt from observations.
        threads: threads of MuJoCo's batched rollouts (each generation's candidates are evaluated together).
        progress: called with ``(stage, evaluations, budget, best loss)``.

    Raises:
        SpecError: unknown parameter names.
        DataError: data that cannot be cut into windows.
    """
    start = time.perf_counter()
    spec = robot if isinstance(robot, RobotSpec) else load_robot(robot)
    names = list(params) if params else list(spec.parameters)
    for name in names:
        check_parameter(spec, name, "--params")
    local = Simulator(spec, names, threads=threads)
    bounds = np.log(np.array([spec.parameters[n].hard_limits for n in names]).clip(min=1e-3))
    if smooth is None:
        smooth = use_observations or data.qpos is None
    states = fit_states(data, spec, local.model, local.frame_skip, use_observations, smooth)

    def windows_for(recording: Trajectories, recorded: States, delay: int, count: int, rng_seed: int) -> Windows:
        return make_windows(recording, recorded, local.skipped, horizon, delay, count, np.random.default_rng(rng_seed))

    if delays is None:
        delay, delay_losses = 0, {}
        fitted = windows_for(data, states, 0, max_windows, seed)
        best = _cma(local, fitted, bounds, budget, seed, progress, "fit")
        used = best.evaluations
    else:
        # screen each candidate delay with a short fit on a few windows, then fit the best one on all of them
        screens = {}
        for d in delays:
            few = windows_for(data, states, d, min(SCREEN_WINDOWS, max_windows), seed)
            screens[d] = _cma(local, few, bounds, budget // (2 * len(delays)), seed, progress, f"delay {d}")
        delay = min(screens, key=lambda d: screens[d].loss)
        delay_losses = {d: f.loss for d, f in screens.items()}
        used = sum(f.evaluations for f in screens.values())
        fitted = windows_for(data, states, delay, max_windows, seed)
        best = _cma(
            local,
            fitted,
            bounds,
            max(budget - used, 1),
            seed + seeding.FINAL_FIT,
            progress,
            "fit",
            x0=screens[delay].log_estimate,
        )
        used += best.evaluations

    # identifiability: how much a 10% change of each parameter alone moves the loss
    steps = np.concatenate([-0.1 * np.eye(len(names)), 0.1 * np.eye(len(names))])
    probes = local.losses(np.vstack([best.log_estimate, best.log_estimate + steps]), fitted)
    base, shifted = probes[0], (probes[1 : 1 + len(names)] + probes[1 + len(names) :]) / 2
    identifiable = {
        n: bool((shifted[i] - base) / max(base, 1e-12) >= IDENTIFIABILITY_THRESHOLD) for i, n in enumerate(names)
    }

    gap = {"fitted": _gap(local, fitted, best.log_estimate, len(names))}
    if holdout is not None:
        held_states = fit_states(holdout, spec, local.model, local.frame_skip, use_observations, smooth)
        held = windows_for(holdout, held_states, delay, max_windows, seed + seeding.HOLDOUT_WINDOWS)
        held.scale = fitted.scale
        gap["held_out"] = _gap(local, held, best.log_estimate, len(names))
    # a recording from simreal's simulator carries the multipliers it ran with: the truth to compare against
    truth = data.meta.get("dynamics") if data.meta.get("source") == "simulator" else None
    return SysidResult(
        robot=spec.robot,
        names=names,
        estimate={n: float(np.exp(best.log_estimate[i])) for i, n in enumerate(names)},
        spread={n: float(np.exp(best.log_std[i])) for i, n in enumerate(names)},
        identifiable=identifiable,
        delay=delay if delays is not None else None,
        delay_losses=delay_losses,
        k=k,
        horizon=horizon,
        gap=gap,
        truth=None if truth is None else {n: float(truth.get(n, 1.0)) for n in names},
        limits={n: spec.parameters[n].hard_limits for n in names},
        evaluations=used,
        seconds=time.perf_counter() - start,
        states=_describe(states, smooth),
        position_noise={int(q): float(v) for q, v in states.position_noise.items()},
    )


def _describe(states: States, smooth: bool) -> str:
    if not states.rebuilt:
        return "recorded"
    return "rebuilt from observations" + (", positions smoothed" if smooth else "")


def _gap(simulator: Simulator, windows: Windows, log_estimate: np.ndarray, n: int) -> dict[str, float]:
    nominal = simulator.loss(np.zeros(n), windows)
    identified = simulator.loss(log_estimate, windows)
    return {"nominal": nominal, "identified": identified, "ratio": nominal / max(identified, 1e-15)}


def _cma(
    simulator: Simulator,
    windows: Windows,
    bounds: np.ndarray,
    budget: int,
    seed: int,
    progress: Callable[[str, int, int, float], None] | None,
    stage: str,
    x0: np.ndarray | None = None,
) -> Fit:
    options = {
        "bounds": [list(bounds[:, 0]), list(bounds[:, 1])],
        "seed": seed + seeding.CMA,
        "maxfevals": max(budget, 1),
        "verbose": -9,
        # 1e-3 in log space is 0.1% on a multiplier: below any useful accuracy, and CMA-ES stops there
        "tolfun": 1e-12,
        "tolx": 1e-3,
    }
    start = np.zeros(len(simulator.names)) if x0 is None else x0
    es = cma.CMAEvolutionStrategy(start, 0.2 if x0 is None else 0.05, options)
    while not es.stop():
        candidates = es.ask()
        es.tell(candidates, list(simulator.losses(np.array(candidates), windows)))  # a generation in one batch
        if progress is not None:
            progress(stage, es.result.evaluations, budget, float(es.result.fbest))
    result = es.result
    return Fit(np.asarray(result.xbest), np.asarray(result.stds), float(result.fbest), int(result.evaluations))
