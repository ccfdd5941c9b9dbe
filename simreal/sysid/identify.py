"""System identification: the simulator parameters that best explain recorded trajectories, with honest intervals.

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

Uncertainty: a sandwich (cluster-robust) covariance of the estimate, with episodes as clusters, from the residuals'
sensitivities to the parameters, plus (on rebuilt states) the variance of the robust fits about their mean; 90%
intervals from Student's t (one degree of freedom fewer than the episodes, or Welch-Satterthwaite's for the two
variances together), plus the optimizer's stopping precision. Misfit: the fitted window errors are compared with
those that the estimated noise alone leaves.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from simreal import seeding
from simreal.envs.spec import (
    RobotSpec,
    check_parameter,
    default_parameters,
    from_coordinates,
    load_robot,
    to_coordinates,
)
from simreal.sysid.simulator import Simulator
from simreal.sysid.states import States, fit_states
from simreal.sysid.trajectories import Trajectories
from simreal.sysid.windows import Windows, concatenate, make_windows, state_vector, window_starts

with warnings.catch_warnings():
    # cma announces on import that it cannot plot without matplotlib: simreal never plots through it
    warnings.filterwarnings("ignore", message="Could not import matplotlib")
    import cma

#: Coverage of the reported intervals.
CONFIDENCE = 0.90
#: A parameter is identifiable when its interval lies within this factor of the estimate on both sides (an offset:
#: within this factor less 1 of its default range's width), and the model fits the data.
IDENTIFIABLE_FACTOR = 1.1
#: The model misfits when the median window error is this many times what the estimated noise alone leaves.
MISFIT_RATIO = 3.0
#: With exact (recorded) states the noise leaves nothing: a fit must then bring the median window error below this
#: fraction of the nominal model's.
EXACT_FLOOR = 1e-3
#: ... and never below this (normalized squared error): data recorded at nominal dynamics leave nominal no error.
EXACT_ABSOLUTE = 1e-9
#: The delay screening fits see at most this many windows (the delays' losses differ by far more than the noise).
SCREEN_WINDOWS = 50
#: Default CMA-ES evaluations per identified parameter (CMA-ES needs more generations in more dimensions).
BUDGET_PER_PARAMETER = 600
#: The share of the budget that screens the candidate delays (at most: see ``SCREEN_DROP``).
SCREEN_SHARE = 0.3
#: Each delay's screen is compared with the others' this far through its share...
SCREEN_CHECKPOINT = 0.25
#: ... and goes no further when its loss is above this many times the best one's then.
SCREEN_DROP = 2.0
#: Independent robust fits (each on its own sample of windows) whose mean is the estimate on rebuilt states.
REPLICAS = 4
#: Stages of each robust fit: (share of its budget, CMA-ES initial step in log space).
STAGES = ((0.5, 0.2), (0.3, 0.05), (0.2, 0.02))
#: Finite-difference step (log space) of the sensitivities behind the intervals.
SENSITIVITY_STEP = 0.02
#: CMA-ES stops when its steps fall below this (log space, 0.1% on a multiplier); intervals are never narrower.
PRECISION = 1e-3


@dataclass(frozen=True)
class SysidProgress:
    """Where an identification stands, as its ``progress`` callback receives it.

    Attributes:
        stage: what runs now: ``"delay 2"`` and ``"delay 2, continued"`` (screening a candidate delay, in two
            parts: see ``SCREEN_DROP``), ``"fit 3/4, stage 1/3"`` (a robust fit;
            ``"fit"`` on recorded states), ``"intervals"`` (the sensitivities), ``"misfit check"``,
            ``"dynamics gap"``.
        evaluations: CMA-ES objective evaluations spent so far.
        budget: the evaluations planned in all (a fit stops early at the optimizer's precision, or overshoots by
            part of a generation).
        done: work done, in window rollouts (one candidate simulated over one window of K steps, the unit that
            costs time): every stage advances it, the checks after the fits too; it never decreases.
        total: the whole identification's work in that unit, the same on every call; ``done`` reaches it at the
            end.
        best: the current fit's best objective value (``None`` before the first fit's first generation); each
            fit and stage has its own objective (its windows, its robust scale), so it jumps between stages.
    """

    stage: str
    evaluations: int
    budget: int
    done: int
    total: int
    best: float | None


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
class Misfit:
    """How the fitted errors compare with what the noise explains.

    Attributes:
        ratio: median fitted window error / median window error the estimated noise alone leaves (or, with exact
            states, / ``EXACT_FLOOR`` x the nominal model's).
        fitted: the median fitted window error.
        noise: the median window error the noise alone leaves.
        flagged: ``ratio > MISFIT_RATIO``: the model cannot explain the data.
        cause: the likely cause, when flagged.
    """

    ratio: float
    fitted: float
    noise: float
    flagged: bool
    cause: str | None = None


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


def identify(
    data: Trajectories,
    robot: str | RobotSpec,
    params: Sequence[str] | None = None,
    horizon: int = 10,
    budget: int | None = None,
    seed: int = 0,
    delays: Sequence[int] | None = None,
    holdout: Trajectories | None = None,
    max_windows: int = 100,
    min_width: float = 0.1,
    use_observations: bool = False,
    smooth: bool | None = None,
    threads: int = 2,
    progress: Callable[[SysidProgress], None] | None = None,
) -> SysidResult:
    """Identify ``params`` of ``robot`` from ``data``.

    Args:
        data: the recording (checked against the robot).
        robot: the robot (a name, or its loaded spec).
        params: parameter names (default: all the robot's).
        horizon: K, the open-loop prediction horizon in control steps.
        budget: CMA-ES objective evaluations in all (default: ``BUDGET_PER_PARAMETER`` per parameter); with
            candidate delays, ``SCREEN_SHARE`` of it screens them (on at most ``SCREEN_WINDOWS`` windows each), and
            the rest goes to the fits; a delay screen stopped early (``SCREEN_DROP``) leaves its share unspent.
        seed: seed of CMA-ES and of the window subsampling.
        delays: candidate action delays to fit (e.g. ``range(4)``); ``None`` assumes no delay.
        holdout: other episodes for the dynamics gap on data not fitted.
        max_windows: at most this many windows (sampled) enter each fit's objective.
        min_width: training ranges span at least this fraction of the estimate.
        use_observations: rebuild states from observations even when qpos/qvel were recorded (as with a real robot).
        smooth: denoise rebuilt positions with the observed velocities (:mod:`simreal.sysid.smoothing`);
            default: whenever states are rebuilt from observations.
        threads: threads of MuJoCo's batched rollouts (each generation's candidates are evaluated together).
        progress: called with a :class:`SysidProgress` as each stage starts, after each CMA-ES generation and
            each batch of rollouts of the checks, and as each stage ends: one measure of the whole identification's
            work (``done`` of ``total``), for a progress bar and its ETA.

    Raises:
        SpecError: unknown parameter names.
        DataError: data that cannot be cut into windows.
    """
    start = time.perf_counter()
    spec = robot if isinstance(robot, RobotSpec) else load_robot(robot)
    names = list(params) if params else default_parameters(spec)
    for name in names:
        check_parameter(spec, name, "params")
    budget = BUDGET_PER_PARAMETER * len(names) if budget is None else budget
    local = Simulator(spec, names, threads=threads)
    offsets = local.offsets
    bounds = _bounds(spec, names, offsets)
    if smooth is None:
        smooth = use_observations or data.qpos is None
    states = fit_states(data, spec, local.model, local.frame_skip, use_observations, smooth)
    held_states, held_windows = None, 0
    if holdout is not None:
        held_states = fit_states(holdout, spec, local.model, local.frame_skip, use_observations, smooth)
        held_windows = min(max_windows, len(window_starts(holdout, held_states, horizon)))
    plan = _plan(
        len(names), budget, delays, states, min(max_windows, len(window_starts(data, states, horizon))), held_windows
    )
    run = _Fitting(local, data, states, bounds, horizon, max_windows, seed, _Tracker(progress, local, plan, budget))

    share, remaining = _budget_split(budget, delays)
    delay_losses: dict[int, float]
    if delays is None:
        delay, delay_losses, used, x = 0, {}, 0, np.zeros(len(names))
    else:
        delay, delay_losses, used, x = run.screen_delays(delays, share)
    if not states.rebuilt:
        fitted, x, spent, log_var, dof, replicas = run.exact_fit(delay, x, remaining, delays is not None)
    else:
        fitted, x, spent, log_var, dof, replicas = run.robust_fits(delay, x, remaining, delays is not None)
    used += spent
    log_std = np.sqrt(log_var)
    episodes = len(np.unique(fitted.episode))
    default_dof = max(episodes - 1, 1)
    quantiles = student_t.ppf(0.5 + CONFIDENCE / 2, default_dof if dof is None else dof) * np.ones(len(names))
    half_widths = quantiles * log_std + PRECISION  # plus what the optimizer's stopping precision leaves
    with run.tracker.stage("misfit check"):
        misfit = _misfit(local, fitted, x, states, np.random.default_rng(seed + seeding.MISFIT_NOISE), run.tracker)
    if misfit is not None and misfit.flagged:
        misfit.cause = _likely_cause(spec, names, delays)
    with run.tracker.stage("dynamics gap"):
        gap = {"fitted": _gap(local, fitted, x, len(names), run.tracker)}
        if holdout is not None and held_states is not None:
            held = make_windows(
                holdout, held_states, local.skipped, horizon, delay, max_windows,
                np.random.default_rng(seed + seeding.HOLDOUT_WINDOWS),
            )  # fmt: skip
            held.scale = fitted.scale
            gap["held_out"] = _gap(local, held, x, len(names), run.tracker)
    # a recording from simreal's simulator carries the multipliers it ran with: the truth to compare against
    truth = data.meta.get("dynamics") if data.meta.get("source") == "simulator" else None
    return SysidResult(
        robot=spec.robot,
        base=spec.reference,
        names=names,
        estimate=dict(zip(names, from_coordinates(names, x, offsets).tolist(), strict=True)),
        interval=_intervals(spec, names, x, half_widths, offsets),
        identifiable=_identifiable(spec, names, log_std, half_widths, offsets, misfit),
        misfit=misfit,
        delay=delay if delays is not None else None,
        delay_losses=delay_losses,
        horizon=horizon,
        gap=gap,
        truth=None if truth is None else {n: float(truth.get(n, spec.parameters[n].neutral)) for n in names},
        limits={n: spec.parameters[n].hard_limits for n in names},
        evaluations=used,
        seconds=time.perf_counter() - start,
        states=_describe(states, smooth),
        position_noise={int(q): float(v) for q, v in states.position_noise.items()},
        observation_noise=states.observation_noise,
        min_width=min_width,
        episodes=episodes,
        fits=[dict(zip(names, from_coordinates(names, fit, offsets).tolist(), strict=True)) for fit in replicas],
        offset_widths={n: spec.parameters[n].range[1] - spec.parameters[n].range[0] for n in offsets},
    )


@dataclass
class _Fitting:
    """One identification's fixed pieces, for its stages: the simulator, the recording and its states, the bounds
    (in coordinates), the horizon, the windows per fit, the seed and the progress tracker."""

    local: Simulator
    data: Trajectories
    states: States
    bounds: np.ndarray
    horizon: int
    max_windows: int
    seed: int
    tracker: _Tracker

    def windows(self, delay: int, count: int, rng_seed: int) -> Windows:
        return make_windows(
            self.data, self.states, self.local.skipped, self.horizon, delay, count, np.random.default_rng(rng_seed)
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

    def exact_fit(
        self, delay: int, x: np.ndarray, budget: int, screened: bool
    ) -> tuple[Windows, np.ndarray, int, np.ndarray, np.ndarray | None, list[np.ndarray]]:
        """The fast path, on recorded states: they are exact, every window agrees, and one plain least-squares fit
        is exact. ``(windows, estimate, evaluations, log-variance, degrees of freedom (None: the episodes'), fits)``.
        """
        fitted = self.windows(delay, self.max_windows, self.seed)
        fit_seed = self.seed + seeding.FINAL_FIT if screened else self.seed
        with self.tracker.stage("fit"):
            fit = _cma(
                self.local, fitted, self.bounds, budget, fit_seed, self.tracker, x0=x, step=0.05 if screened else 0.2
            )
        with self.tracker.stage("intervals"):
            log_var = _sandwich_std(self.local, fitted, fit.log_estimate, None, self.tracker) ** 2
        return fitted, fit.log_estimate, fit.evaluations, log_var, None, [fit.log_estimate]

    def robust_fits(
        self, delay: int, x: np.ndarray, budget: int, screened: bool
    ) -> tuple[Windows, np.ndarray, int, np.ndarray, np.ndarray | None, list[np.ndarray]]:
        """Independent robust fits on independent window samples: their mean is the estimate, and their spread is
        what the choice of windows and the optimizer's path leave in it (returns as :meth:`exact_fit`)."""
        replicas, parts, used = [], [], 0
        for replica in range(REPLICAS):
            part = self.windows(delay, self.max_windows, self.seed + replica)
            estimate, spent = _robust_fit(
                self.local,
                part,
                self.bounds,
                budget // REPLICAS,
                self.seed + replica,
                self.tracker,
                x,
                screened,
                replica,
            )
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
            within = _sandwich_std(self.local, fitted, x, scale, self.tracker) ** 2
        log_var = within + between
        # Welch-Satterthwaite degrees of freedom of the two variance estimates together
        episodes_df = max(len(np.unique(fitted.episode)) - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dof = log_var**2 / (within**2 / episodes_df + between**2 / (REPLICAS - 1))
        dof = np.where(np.isfinite(dof), np.maximum(dof, 1.0), 1.0)
        return fitted, x, used, log_var, dof, replicas


def _bounds(spec: RobotSpec, names: list[str], offsets: Mapping[str, float]) -> np.ndarray:
    """The search box, in coordinates, per parameter: its hard limits (a multiplier's floored at 1e-3)."""
    limits = np.array([spec.parameters[n].hard_limits for n in names], dtype=np.float64)
    multiplier = np.array([n not in offsets for n in names])[:, None]
    return to_coordinates(names, np.where(multiplier, limits.clip(min=1e-3), limits).T, offsets).T


def _intervals(
    spec: RobotSpec, names: list[str], x: np.ndarray, half_widths: np.ndarray, offsets: Mapping[str, float]
) -> dict[str, tuple[float, float]]:
    """Each parameter's interval in its own units, within its hard limits."""
    interval = {}
    for i, n in enumerate(names):
        low, high = from_coordinates([n, n], [x[i] - half_widths[i], x[i] + half_widths[i]], offsets)
        hard_low, hard_high = spec.parameters[n].hard_limits
        interval[n] = (float(max(low, hard_low)), float(min(high, hard_high)))
    return interval


def _identifiable(
    spec: RobotSpec,
    names: list[str],
    log_std: np.ndarray,
    half_widths: np.ndarray,
    offsets: Mapping[str, float],
    misfit: Misfit | None,
) -> dict[str, bool]:
    """A parameter is identifiable when its half-width is within tolerance and the model fits the data: in
    coordinates, a multiplier's within log(factor); an offset's within (factor - 1) of its default range's width
    (offsets have no estimate to be a factor of)."""
    flagged = misfit is not None and misfit.flagged
    identifiable = {}
    for i, n in enumerate(names):
        width = spec.parameters[n].range[1] - spec.parameters[n].range[0]
        tolerance = (IDENTIFIABLE_FACTOR - 1) * width / offsets[n] if n in offsets else np.log(IDENTIFIABLE_FACTOR)
        identifiable[n] = bool(np.isfinite(log_std[i]) and half_widths[i] <= tolerance and not flagged)
    return identifiable


def _robust_fit(
    simulator: Simulator,
    windows: Windows,
    bounds: np.ndarray,
    budget: int,
    seed: int,
    tracker: _Tracker,
    x: np.ndarray,
    warm: bool,
    replica: int,
) -> tuple[np.ndarray, int]:
    """The Cauchy M-estimate on ``windows`` in stages, each re-centring the scale on the median window error."""
    used = 0
    for stage, (share, step) in enumerate(STAGES):
        with tracker.stage(_fit_stage(replica, stage)):
            scale = max(float(np.median(simulator.window_losses(x, windows)[0])), 1e-15)
            fit = _cma(
                simulator,
                windows,
                bounds,
                _stage_budget(budget, share),
                seed + seeding.FINAL_FIT + stage,
                tracker,
                x0=x,
                step=step if (stage or warm) else 0.2,
                robust_scale=scale,
            )
        x, used = fit.log_estimate, used + fit.evaluations
    return x, used


def _fit_stage(replica: int, stage: int) -> str:
    return f"fit {replica + 1}/{REPLICAS}, stage {stage + 1}/{len(STAGES)}"


def _stage_budget(budget: int, share: float) -> int:
    return max(int(budget * share), 1)


def _budget_split(budget: int, delays: Sequence[int] | None) -> tuple[int, int]:
    """The evaluations each candidate delay's screen is planned to spend (0 without delays), and those left for the
    fits: what the screens were planned to spend is taken from the budget whether or not every delay was screened to
    the end."""
    if delays is None:
        return 0, max(budget, len(STAGES))
    share = int(budget * SCREEN_SHARE) // len(delays)
    return share, max(budget - share * len(delays), len(STAGES))


def _plan(
    p: int, budget: int, delays: Sequence[int] | None, states: States, fit_windows: int, held_windows: int
) -> dict[str, int]:
    """Each stage's work in window rollouts, as :func:`identify` will run it (from the planned budget: a fit that
    stops early shifts a little work to the next ones, which the progress display absorbs)."""
    plan: dict[str, int] = {}
    share, remaining = _budget_split(budget, delays)
    if delays is not None:
        checkpoint = int(share * SCREEN_CHECKPOINT)
        for d in delays:
            plan[f"delay {d}"] = checkpoint * min(SCREEN_WINDOWS, fit_windows)
        for d in delays:
            plan[f"delay {d}, continued"] = (share - checkpoint) * min(SCREEN_WINDOWS, fit_windows)
    if not states.rebuilt:
        fitted = fit_windows
        plan["fit"] = remaining * fit_windows
        plan["intervals"] = (2 * p + 1) * fitted
    else:
        fitted = REPLICAS * fit_windows
        for replica in range(REPLICAS):
            for stage, (stage_share, _) in enumerate(STAGES):
                # the median window error that re-centres the scale, then the stage's CMA-ES
                stage_budget = _stage_budget(remaining // REPLICAS, stage_share)
                plan[_fit_stage(replica, stage)] = (1 + stage_budget) * fit_windows
        plan["intervals"] = (1 + 2 * p + 1) * fitted
    # the fitted errors, the noise-free predictions and two noisy draws (see _misfit); nothing without a noise level
    plan["misfit check"] = 0 if states.rebuilt and states.observation_noise is None else 4 * fitted
    plan["dynamics gap"] = 2 * (fitted + held_windows)
    return plan


def _sandwich_std(
    simulator: Simulator, windows: Windows, x: np.ndarray, scale: float | None, tracker: _Tracker
) -> np.ndarray:
    """Standard deviations (log space) of the estimate (the Cauchy M-estimate, or least squares for ``scale=None``):
    the sandwich H^-1 B H^-1, B from the summed scores of each episode (windows of one episode share their
    errors)."""
    p = len(x)
    steps = SENSITIVITY_STEP * np.eye(p)
    batches = []
    # a couple of candidates a batch (the same rollouts as one batch), so that progress moves through this stage
    for candidates in np.array_split(np.vstack([x, x + steps, x - steps]), p + 1):
        batches.append(simulator.predict(candidates, windows))
        tracker.update()
    predicted = np.concatenate(batches)
    count = len(windows.qpos)
    residual = ((predicted[0] - windows.targets) / windows.scale).reshape(count, -1)
    slope = (predicted[1 : 1 + p] - predicted[1 + p :]) / (2 * SENSITIVITY_STEP) / windows.scale
    jacobian = slope.reshape(p, count, -1).transpose(1, 2, 0)  # (windows, errors, parameters)
    if not (np.isfinite(residual).all() and np.isfinite(jacobian).all()):
        return np.full(p, np.inf)
    n = residual.shape[1]
    # the robust loss's derivative at each window's error (1 for least squares)
    weight = np.ones(count) if scale is None else 1.0 / (scale + np.mean(residual**2, axis=1))
    scores = weight[:, None] * (2.0 / n) * np.einsum("wnp,wn->wp", jacobian, residual)
    hessian = (2.0 / n) * np.einsum("w,wnp,wnq->pq", weight, jacobian, jacobian) / count
    episodes = np.unique(windows.episode)
    if len(episodes) < 2:
        return np.full(p, np.inf)
    summed = np.array([scores[windows.episode == e].sum(axis=0) for e in episodes])
    meat = summed.T @ summed / count**2 * len(episodes) / (len(episodes) - 1)
    # a direction the data do not constrain has (near) zero curvature: the parameters along it are not pinned at all
    eigenvalues, vectors = np.linalg.eigh(hessian)
    flat = eigenvalues <= 1e-9 * max(float(eigenvalues.max()), 1e-300)
    kept = vectors[:, ~flat]
    inverse = kept @ np.diag(1.0 / eigenvalues[~flat]) @ kept.T
    covariance = inverse @ meat @ inverse
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    std[np.abs(vectors[:, flat]).sum(axis=1) > 1e-3] = np.inf
    return std


def _misfit(
    simulator: Simulator, windows: Windows, x: np.ndarray, states: States, rng: np.random.Generator, tracker: _Tracker
) -> Misfit | None:
    """Compare the fitted window errors with those the estimated noise alone leaves: predictions from start states
    perturbed by the noise, against the noise-free predictions plus noise on the compared states. ``None`` when
    the noise level is unknown (states rebuilt but not smoothed)."""
    if states.rebuilt and states.observation_noise is None:
        return None
    fitted = float(np.median(simulator.window_losses(x, windows)[0]))
    tracker.update()
    position_std, velocity_std = states.noise_model()
    skipped = simulator.skipped
    position_std = position_std.copy()
    position_std[:skipped] = 0.0  # not observed: rebuilt as 0, and the dynamics do not depend on it
    if not position_std.any() and not velocity_std.any():
        nominal = float(np.median(simulator.window_losses(np.zeros(len(x)), windows)[0]))
        noise = max(EXACT_FLOOR * nominal, EXACT_ABSOLUTE)
    else:
        clean = simulator.predict(x, windows)[0]
        tracker.update()
        draws = []
        for _ in range(2):
            qpos = windows.qpos + rng.normal(size=windows.qpos.shape) * position_std
            qvel = windows.qvel + rng.normal(size=windows.qvel.shape) * velocity_std
            perturbed = simulator.predict(x, windows, qpos, qvel)[0]
            tracker.update()
            measured = clean + rng.normal(size=clean.shape) * state_vector(position_std, velocity_std, skipped)
            draws.append(np.mean(((perturbed - measured) / windows.scale) ** 2, axis=(1, 2)))
        noise = float(np.median(np.concatenate(draws)))
    ratio = fitted / max(noise, 1e-300)
    return Misfit(ratio=float(ratio), fitted=fitted, noise=noise, flagged=bool(ratio > MISFIT_RATIO))


def _likely_cause(spec: RobotSpec, names: list[str], delays: Sequence[int] | None) -> str:
    left_out = [n for n in spec.parameters if n not in names]
    if left_out:
        return f"parameters left out of the fit ({', '.join(left_out)}): identify them too (every parameter: name none)"
    if delays is None:
        return "an effect the fit does not model: an action delay (identify the delays too), or unlisted dynamics"
    return "an effect or dynamics outside the parameter catalogue (the model cannot reproduce the data)"


def _describe(states: States, smooth: bool) -> str:
    if not states.rebuilt:
        return "recorded"
    return "rebuilt from observations" + (", positions smoothed" if smooth else "")


def _gap(
    simulator: Simulator, windows: Windows, log_estimate: np.ndarray, n: int, tracker: _Tracker
) -> dict[str, float]:
    nominal = simulator.loss(np.zeros(n), windows)
    tracker.update()
    identified = simulator.loss(log_estimate, windows)
    tracker.update()
    return {"nominal": nominal, "identified": identified, "ratio": nominal / max(identified, 1e-15)}


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
