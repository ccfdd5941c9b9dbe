"""The fits of system identification: the simulator parameters that best explain recorded trajectories.

The objective is the multi-step open-loop prediction error: from recorded states, the simulator is reset to the
state, replays the recorded actions for ``horizon`` control steps, and its states are compared with the recorded
ones, each dimension divided by its spread in the data. With states rebuilt from noisy observations, each window's
mean squared error enters through a Cauchy M-estimator, ``log(1 + error / c)``, ``c`` the median window error at
the current estimate, re-centred over a few stages: a handful of windows (contacts, where a small error in the
start state changes what happens) have errors hundreds of times the rest, and a plain mean lets them pull the
estimate by 10-20%. With recorded (exact) states a plain least-squares fit is exact and faster. CMA-ES (the ``cma``
package) minimizes the objective over log-multipliers within the parameters' limits; each generation's candidates x
windows run as one batch of MuJoCo's native rollouts (``mujoco.rollout``) on a thread per core. An optional
discrete action delay is found by fitting each candidate delay.

The stages count their work (window rollouts) against the plan of :mod:`~simreal.sysid.progress`, for the
identification's progress callback.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from simreal import seeding
from simreal.envs.coordinates import to_coordinates
from simreal.envs.spec import RobotSpec
from simreal.sysid.progress import (
    REPLICAS,
    SCREEN_CHECKPOINT,
    SCREEN_DROP,
    SCREEN_WINDOWS,
    STAGES,
    SysidProgress,
    budget_split,
    fit_stage,
    plan,
    stage_budget,
)
from simreal.sysid.simulator import Simulator
from simreal.sysid.states import States, fit_states
from simreal.sysid.trajectories import Trajectories
from simreal.sysid.uncertainty import PRECISION, sandwich_std
from simreal.sysid.windows import Windows, concatenate, make_windows, window_starts

with warnings.catch_warnings():
    # cma announces on import that it cannot plot without matplotlib: simreal never plots through it
    warnings.filterwarnings("ignore", message="Could not import matplotlib")
    import cma


class _Tracker:
    """Counts the work of a plan of stages (window rollouts: the simulator's own count) for a progress callback.

    Each stage advances ``done`` by what it runs, up to its planned share, and ends at exactly its planned share:
    a fit that stops early, or overshoots by part of a generation, leaves ``done`` monotone and ending at ``total``.
    """

    def __init__(
        self,
        callback: Callable[[SysidProgress], None] | None,
        simulator: Simulator,
        plan: dict[str, int],
        budget: int,
    ) -> None:
        self.callback = callback
        self.simulator = simulator
        self.plan = plan
        self.total = sum(plan.values())
        self.budget = budget
        self.finished = 0  # planned work of the stages done
        self.evaluations = 0  # CMA-ES evaluations of the stages done
        self.best: float | None = None
        self.current = ""
        self._stage_start = 0
        self._stage_evaluations = 0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.current, self._stage_start, self._stage_evaluations = name, self.simulator.rollouts, 0
        self.update()
        yield
        self.finished += self.plan[name]
        self.evaluations += self._stage_evaluations
        self._stage_evaluations = 0
        self._report(self.finished)

    def update(self, evaluations: int | None = None, best: float | None = None) -> None:
        """Report the current stage's progress (``evaluations``: the stage's own so far)."""
        if evaluations is not None:
            self._stage_evaluations = evaluations
        if best is not None:
            self.best = best
        used = min(self.simulator.rollouts - self._stage_start, self.plan[self.current])
        self._report(self.finished + used)

    def _report(self, done: int) -> None:
        if self.callback is not None:
            evaluations = self.evaluations + self._stage_evaluations
            self.callback(SysidProgress(self.current, evaluations, self.budget, done, self.total, self.best))


@dataclass
class Fit:
    """One CMA-ES fit: the best point, the loss and evaluations spent."""

    log_estimate: np.ndarray
    loss: float
    evaluations: int


@dataclass
class Estimate:
    """What the fits found, in coordinates (log-multipliers; an offset over its scale).

    Attributes:
        windows: the windows fitted (the robust fits' together).
        log_estimate: the estimate (on rebuilt states, the mean of the robust fits).
        evaluations: CMA-ES evaluations spent, the delay screens' included.
        log_var: the estimate's variance.
        dof: the degrees of freedom of its intervals (``None``: one fewer than the episodes').
        fits: each fit's estimate (one fit on recorded states).
        delay: the action delay found (``None``: no delay screened, the fits assumed none).
        delay_losses: each screened delay's loss.
    """

    windows: Windows
    log_estimate: np.ndarray
    evaluations: int
    log_var: np.ndarray
    dof: np.ndarray | None
    fits: list[np.ndarray]
    delay: int | None = None
    delay_losses: dict[int, float] = field(default_factory=dict)


@dataclass
class Fitting:
    """One identification's fixed pieces, for its stages: the simulator, the recording and its states, the held-out
    recording and its states, the bounds (in coordinates), the horizon, the windows per fit, the seed and the
    progress tracker."""

    local: Simulator
    data: Trajectories
    states: States
    held_out: tuple[Trajectories, States] | None
    bounds: np.ndarray
    horizon: int
    max_windows: int
    seed: int
    tracker: _Tracker

    @classmethod
    def prepare(
        cls,
        spec: RobotSpec,
        names: list[str],
        data: Trajectories,
        holdout: Trajectories | None,
        *,
        horizon: int,
        max_windows: int,
        seed: int,
        use_observations: bool,
        smooth: bool,
        threads: int,
        budget: int,
        delays: Sequence[int] | None,
        progress: Callable[[SysidProgress], None] | None,
    ) -> Fitting:
        """The simulator, the states of ``data`` and ``holdout``, and the plan of the work that
        :func:`~simreal.sysid.identify.identify` (whose arguments these are) will run on them."""
        local = Simulator(spec, names, threads=threads)
        bounds = _bounds(spec, names, local.offsets)
        states = fit_states(data, spec, local.model, local.frame_skip, use_observations, smooth)
        held_out, held_windows = None, 0
        if holdout is not None:
            held_states = fit_states(holdout, spec, local.model, local.frame_skip, use_observations, smooth)
            held_out = (holdout, held_states)
            held_windows = min(max_windows, len(window_starts(holdout, held_states, horizon)))
        fit_windows = min(max_windows, len(window_starts(data, states, horizon)))
        work = plan(len(names), budget, delays, states, fit_windows, held_windows)
        tracker = _Tracker(progress, local, work, budget)
        return cls(local, data, states, held_out, bounds, horizon, max_windows, seed, tracker)

    def windows(self, delay: int, count: int, rng_seed: int) -> Windows:
        return make_windows(
            self.data,
            states=self.states,
            skipped=self.local.skipped,
            horizon=self.horizon,
            delay=delay,
            max_windows=count,
            rng=np.random.default_rng(rng_seed),
        )

    def held_out_windows(self, estimate: Estimate) -> Windows | None:
        """Windows of the held-out recording (``None`` without one) at the estimate's delay, scaled as the fitted
        ones."""
        if self.held_out is None:
            return None
        held = make_windows(
            *self.held_out, self.local.skipped, self.horizon, estimate.delay or 0, self.max_windows,
            np.random.default_rng(self.seed + seeding.HOLDOUT_WINDOWS),
        )  # fmt: skip
        held.scale = estimate.windows.scale
        return held

    def fit(self, budget: int, delays: Sequence[int] | None) -> Estimate:
        """Screen the candidate ``delays`` (``None``: assume no delay), then fit at the best one: exactly on
        recorded states, robustly on rebuilt ones."""
        share, remaining = budget_split(budget, delays)
        delay_losses: dict[int, float]
        if delays is None:
            delay, delay_losses, used, x = 0, {}, 0, np.zeros(len(self.local.names))
        else:
            delay, delay_losses, used, x = self.screen_delays(delays, share)
        fits = self.robust_fits if self.states.rebuilt else self.exact_fit
        estimate = fits(delay, x, remaining, delays is not None)
        return replace(
            estimate,
            evaluations=used + estimate.evaluations,
            delay=delay if delays is not None else None,
            delay_losses=delay_losses,
        )

    def screen_delays(self, delays: Sequence[int], share: int) -> tuple[int, dict[int, float], int, np.ndarray]:
        """Screen each candidate delay with a short plain fit on a few windows: ``(the best delay, each one's loss,
        evaluations spent, the best one's estimate)``.

        A delay whose loss is far above the best one's a quarter of the way through is not screened further (a wrong
        delay leaves an error no parameter removes: on hopper 26x the right one's), and the screens that go on end
        exactly as uninterrupted ones would.
        """
        names = len(self.local.names)
        few = {d: self.windows(d, min(SCREEN_WINDOWS, self.max_windows), self.seed) for d in delays}
        searches = {d: _strategy(names, self.bounds, share, self.seed, None, 0.2) for d in delays}
        screens = {}
        for d in delays:
            with self.tracker.stage(f"delay {d}"):
                screens[d] = _run(searches[d], self.local, few[d], self.tracker, until=int(share * SCREEN_CHECKPOINT))
        leader = min(f.loss for f in screens.values())
        for d in delays:
            with self.tracker.stage(f"delay {d}, continued"):
                if screens[d].loss <= SCREEN_DROP * leader:
                    screens[d] = _run(searches[d], self.local, few[d], self.tracker)
        delay = min(screens, key=lambda d: screens[d].loss)
        used = sum(f.evaluations for f in screens.values())
        return delay, {d: f.loss for d, f in screens.items()}, used, screens[delay].log_estimate

    def exact_fit(self, delay: int, x: np.ndarray, budget: int, screened: bool) -> Estimate:
        """The fast path, on recorded states: they are exact, every window agrees, and one plain least-squares fit
        is exact."""
        fitted = self.windows(delay, self.max_windows, self.seed)
        fit_seed = self.seed + seeding.FINAL_FIT if screened else self.seed
        with self.tracker.stage("fit"):
            fit = _cma(
                self.local, fitted, self.bounds, budget, fit_seed, self.tracker, x0=x, step=0.05 if screened else 0.2
            )
        with self.tracker.stage("intervals"):
            log_var = sandwich_std(self.local, fitted, fit.log_estimate, None, self.tracker.update) ** 2
        return Estimate(fitted, fit.log_estimate, fit.evaluations, log_var, None, [fit.log_estimate])

    def robust_fits(self, delay: int, x: np.ndarray, budget: int, screened: bool) -> Estimate:
        """Independent robust fits on independent window samples: their mean is the estimate, and their spread is
        what the choice of windows and the optimizer's path leave in it."""
        replicas, parts, used = [], [], 0
        for replica in range(REPLICAS):
            part = self.windows(delay, self.max_windows, self.seed + replica)
            estimate, spent = self.robust_fit(part, budget // REPLICAS, self.seed + replica, x, screened, replica)
            replicas.append(estimate)
            parts.append(part)
            used += spent
        fitted = concatenate(parts)
        x = np.mean(replicas, axis=0)
        with self.tracker.stage("intervals"):
            scale = max(float(np.median(self.local.window_losses(x, fitted)[0])), 1e-15)
            # the variance of one fit about their mean, not a quarter of it: the fits start from the same point
            # (the delay screen's estimate) on windows of the same episodes, and on this rough objective CMA-ES
            # stops where its start and path lead it, so their errors are not independent and their mean is
            # not four times surer than one of them (on two hopper recordings with 12 free parameters, a quarter
            # of it left errors whose root mean square was 1.6-1.7 standard deviations, and called parameters
            # identifiable whose intervals missed the truth)
            between = np.var(replicas, axis=0, ddof=1)
            within = sandwich_std(self.local, fitted, x, scale, self.tracker.update) ** 2
        log_var = within + between
        # Welch-Satterthwaite degrees of freedom of the two variance estimates together
        episodes_df = max(len(np.unique(fitted.episode)) - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dof = log_var**2 / (within**2 / episodes_df + between**2 / (REPLICAS - 1))
        dof = np.where(np.isfinite(dof), np.maximum(dof, 1.0), 1.0)
        return Estimate(fitted, x, used, log_var, dof, replicas)

    def robust_fit(
        self, windows: Windows, budget: int, seed: int, x: np.ndarray, warm: bool, replica: int
    ) -> tuple[np.ndarray, int]:
        """The Cauchy M-estimate on ``windows`` in stages, each re-centring the scale on the median window error."""
        used = 0
        for stage, (share, step) in enumerate(STAGES):
            with self.tracker.stage(fit_stage(replica, stage)):
                scale = max(float(np.median(self.local.window_losses(x, windows)[0])), 1e-15)
                fit = _cma(
                    self.local,
                    windows,
                    self.bounds,
                    stage_budget(budget, share),
                    seed + seeding.FINAL_FIT + stage,
                    self.tracker,
                    x0=x,
                    step=step if (stage or warm) else 0.2,
                    robust_scale=scale,
                )
            x, used = fit.log_estimate, used + fit.evaluations
        return x, used


def _bounds(spec: RobotSpec, names: list[str], offsets: Mapping[str, float]) -> np.ndarray:
    """The search box, in coordinates, per parameter: its hard limits (a multiplier's floored at 1e-3)."""
    limits = np.array([spec.parameters[n].hard_limits for n in names], dtype=np.float64)
    multiplier = np.array([n not in offsets for n in names])[:, None]
    return to_coordinates(names, np.where(multiplier, limits.clip(min=1e-3), limits).T, offsets).T


def _cma(
    simulator: Simulator,
    windows: Windows,
    bounds: np.ndarray,
    budget: int,
    seed: int,
    tracker: _Tracker,
    x0: np.ndarray | None = None,
    step: float = 0.2,
    robust_scale: float | None = None,
) -> Fit:
    """A whole CMA-ES fit of ``budget`` evaluations."""
    search = _strategy(len(simulator.names), bounds, budget, seed, x0, step)
    return _run(search, simulator, windows, tracker, robust_scale)


@dataclass
class _Search:
    """A CMA-ES run that can pause and resume: cma draws from numpy's global generator, so each run keeps its own
    state of it, and runs interleaved draw what they would have drawn one after another."""

    es: cma.CMAEvolutionStrategy
    random_state: Any


def _strategy(p: int, bounds: np.ndarray, budget: int, seed: int, x0: np.ndarray | None, step: float) -> _Search:
    """CMA-ES in log-multiplier space within ``bounds``, for at most ``budget`` evaluations."""
    options = {
        "bounds": [list(bounds[:, 0]), list(bounds[:, 1])],
        "seed": seed + seeding.CMA,
        "maxfevals": max(budget, 1),
        "verbose": -9,
        # 1e-3 in log space is 0.1% on a multiplier: below any useful accuracy, and CMA-ES stops there
        "tolfun": 1e-12,
        "tolx": PRECISION,
    }
    start = np.zeros(p) if x0 is None else np.clip(x0, bounds[:, 0], bounds[:, 1])
    es = cma.CMAEvolutionStrategy(start, step, options)  # seeds numpy's global generator with options["seed"]
    return _Search(es, np.random.get_state())


def _run(
    search: _Search,
    simulator: Simulator,
    windows: Windows,
    tracker: _Tracker,
    robust_scale: float | None = None,
    until: int | None = None,
) -> Fit:
    """Run CMA-ES until it stops (its budget, its precision), or until it has spent ``until`` evaluations in all;
    a run resumed later goes on exactly as if it had never paused."""
    es = search.es
    first = int(es.result.evaluations)
    np.random.set_state(search.random_state)
    while not es.stop() and (until is None or es.result.evaluations < until):
        candidates = es.ask()
        # a generation in one batch
        es.tell(candidates, list(simulator.losses(np.array(candidates), windows, robust_scale)))
        tracker.update(int(es.result.evaluations) - first, float(es.result.fbest))
    search.random_state = np.random.get_state()
    result = es.result
    return Fit(np.asarray(result.xbest), float(result.fbest), int(result.evaluations))
