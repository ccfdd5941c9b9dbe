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
sensitivities to the parameters; 90% intervals from Student's t with one degree of freedom fewer than the episodes,
plus the optimizer's stopping precision. Misfit: the fitted window errors are compared with those that the
estimated noise alone leaves.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from simreal import seeding
from simreal.envs.spec import RobotSpec, check_parameter, load_robot
from simreal.sysid.simulator import Simulator
from simreal.sysid.states import States, fit_states
from simreal.sysid.trajectories import Trajectories
from simreal.sysid.windows import Windows, concatenate, make_windows, state_vector

with warnings.catch_warnings():
    # cma announces on import that it cannot plot without matplotlib: simreal never plots through it
    warnings.filterwarnings("ignore", message="Could not import matplotlib")
    import cma

#: Coverage of the reported intervals.
CONFIDENCE = 0.90
#: A parameter is identifiable when its interval lies within this factor of the estimate on both sides (and the
#: model fits the data).
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
#: The share of the budget that screens the candidate delays.
SCREEN_SHARE = 0.3
#: Independent robust fits (each on its own sample of windows) whose mean is the estimate on rebuilt states.
REPLICAS = 4
#: Stages of each robust fit: (share of its budget, CMA-ES initial step in log space).
STAGES = ((0.5, 0.2), (0.3, 0.05), (0.2, 0.02))
#: Finite-difference step (log space) of the sensitivities behind the intervals.
SENSITIVITY_STEP = 0.02
#: CMA-ES stops when its steps fall below this (log space, 0.1% on a multiplier); intervals are never narrower.
PRECISION = 1e-3


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
        min_width / 2)``), within the parameter's limits."""
        ranges = {}
        for n in self.names:
            low, high = self.interval[n]
            low = min(low, self.estimate[n] * (1 - self.min_width / 2))
            high = max(high, self.estimate[n] * (1 + self.min_width / 2))
            hard_low, hard_high = self.limits[n]
            ranges[n] = [max(low, hard_low), min(high, hard_high)]
        return ranges

    def as_dict(self) -> dict[str, Any]:
        errors, covered = self.errors(), self.covered()
        defined = [e for e in (errors or {}).values() if e is not None]
        ranges = self.ranges()
        return {
            "schema": "simreal.sysid/2",
            "robot": self.robot,
            "confidence": CONFIDENCE,
            "parameters": {
                n: {
                    "estimate": self.estimate[n],
                    "interval": list(self.interval[n]),
                    "range": ranges[n],
                    "identifiable": self.identifiable[n],
                    **(
                        {
                            "truth": self.truth[n],
                            "absolute_error": abs(self.estimate[n] - self.truth[n]),
                            "relative_error": errors[n],
                            "covered": covered[n],
                        }
                        if errors is not None and covered is not None
                        else {}
                    ),
                }
                for n in self.names
            },
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
            "base": self.robot,
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
    progress: Callable[[str, int, int, float], None] | None = None,
) -> SysidResult:
    """Identify ``params`` of ``robot`` from ``data``.

    Args:
        data: the recording (checked against the robot).
        robot: the robot (a name, or its loaded spec).
        params: parameter names (default: all the robot's).
        horizon: K, the open-loop prediction horizon in control steps.
        budget: CMA-ES objective evaluations in all (default: ``BUDGET_PER_PARAMETER`` per parameter); with
            candidate delays, ``SCREEN_SHARE`` of it screens them (on at most ``SCREEN_WINDOWS`` windows each), and
            the rest goes to the fits.
        seed: seed of CMA-ES and of the window subsampling.
        delays: candidate action delays to fit (e.g. ``range(4)``); ``None`` assumes no delay.
        holdout: other episodes for the dynamics gap on data not fitted.
        max_windows: at most this many windows (sampled) enter each fit's objective.
        min_width: training ranges span at least this fraction of the estimate.
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
    budget = BUDGET_PER_PARAMETER * len(names) if budget is None else budget
    local = Simulator(spec, names, threads=threads)
    bounds = np.log(np.array([spec.parameters[n].hard_limits for n in names]).clip(min=1e-3))
    if smooth is None:
        smooth = use_observations or data.qpos is None
    states = fit_states(data, spec, local.model, local.frame_skip, use_observations, smooth)

    def windows_for(recording: Trajectories, recorded: States, delay: int, count: int, rng_seed: int) -> Windows:
        return make_windows(recording, recorded, local.skipped, horizon, delay, count, np.random.default_rng(rng_seed))

    x, used, delay_losses = np.zeros(len(names)), 0, {}
    if delays is None:
        delay = 0
    else:
        # screen each candidate delay with a short plain fit on a few windows, then fit the best one on all of them
        screens = {}
        share = int(budget * SCREEN_SHARE) // len(delays)
        for d in delays:
            few = windows_for(data, states, d, min(SCREEN_WINDOWS, max_windows), seed)
            screens[d] = _cma(local, few, bounds, share, seed, progress, f"delay {d}")
        delay = min(screens, key=lambda d: screens[d].loss)
        delay_losses = {d: f.loss for d, f in screens.items()}
        used = sum(f.evaluations for f in screens.values())
        x = screens[delay].log_estimate
    remaining = max(budget - used, len(STAGES))
    if not states.rebuilt:
        # the fast path: recorded states are exact, every window agrees, and one plain least-squares fit is exact
        fitted = windows_for(data, states, delay, max_windows, seed)
        fit_seed = seed if delays is None else seed + seeding.FINAL_FIT
        step = 0.2 if delays is None else 0.05
        fit = _cma(local, fitted, bounds, remaining, fit_seed, progress, "fit", x0=x, step=step)
        x, used = fit.log_estimate, used + fit.evaluations
        log_var, dof = _sandwich_std(local, fitted, x, None) ** 2, None
    else:
        # independent robust fits on independent window samples: their mean is the estimate, and their spread is
        # what the choice of windows and the optimizer's path leave in it
        replicas, parts = [], []
        for replica in range(REPLICAS):
            part = windows_for(data, states, delay, max_windows, seed + replica)
            estimate, spent = _robust_fit(
                local, part, bounds, remaining // REPLICAS, seed + replica, progress, x, delays is not None, replica
            )
            replicas.append(estimate)
            parts.append(part)
            used += spent
        fitted = concatenate(parts)
        x = np.mean(replicas, axis=0)
        scale = max(float(np.median(local.window_losses(x, fitted)[0])), 1e-15)
        between = np.var(replicas, axis=0, ddof=1) / REPLICAS
        within = _sandwich_std(local, fitted, x, scale) ** 2
        log_var = within + between
        # Welch-Satterthwaite degrees of freedom of the two variance estimates together
        episodes_df = max(len(np.unique(fitted.episode)) - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dof = log_var**2 / (within**2 / episodes_df + between**2 / (REPLICAS - 1))
        dof = np.where(np.isfinite(dof), np.maximum(dof, 1.0), 1.0)
    log_std = np.sqrt(log_var)
    episodes = len(np.unique(fitted.episode))
    default_dof = max(episodes - 1, 1)
    quantiles = student_t.ppf(0.5 + CONFIDENCE / 2, default_dof if dof is None else dof) * np.ones(len(names))
    interval = {}
    for i, n in enumerate(names):
        # the statistical half-width plus what the optimizer's stopping precision leaves (all of it on exact data)
        half = quantiles[i] * log_std[i] + PRECISION
        low, high = np.exp(x[i] - half), np.exp(x[i] + half)
        hard_low, hard_high = spec.parameters[n].hard_limits
        interval[n] = (float(max(low, hard_low)), float(min(high, hard_high)))
    misfit = _misfit(local, fitted, x, states, np.random.default_rng(seed + seeding.MISFIT_NOISE))
    if misfit is not None and misfit.flagged:
        misfit.cause = _likely_cause(spec, names, delays)
    estimate = {n: float(np.exp(x[i])) for i, n in enumerate(names)}
    identifiable = {
        n: bool(
            np.isfinite(log_std[i])
            and np.exp(quantiles[i] * log_std[i] + PRECISION) <= IDENTIFIABLE_FACTOR
            and not (misfit is not None and misfit.flagged)
        )
        for i, n in enumerate(names)
    }

    gap = {"fitted": _gap(local, fitted, x, len(names))}
    if holdout is not None:
        held_states = fit_states(holdout, spec, local.model, local.frame_skip, use_observations, smooth)
        held = windows_for(holdout, held_states, delay, max_windows, seed + seeding.HOLDOUT_WINDOWS)
        held.scale = fitted.scale
        gap["held_out"] = _gap(local, held, x, len(names))
    # a recording from simreal's simulator carries the multipliers it ran with: the truth to compare against
    truth = data.meta.get("dynamics") if data.meta.get("source") == "simulator" else None
    return SysidResult(
        robot=spec.robot,
        names=names,
        estimate=estimate,
        interval=interval,
        identifiable=identifiable,
        misfit=misfit,
        delay=delay if delays is not None else None,
        delay_losses=delay_losses,
        horizon=horizon,
        gap=gap,
        truth=None if truth is None else {n: float(truth.get(n, 1.0)) for n in names},
        limits={n: spec.parameters[n].hard_limits for n in names},
        evaluations=used,
        seconds=time.perf_counter() - start,
        states=_describe(states, smooth),
        position_noise={int(q): float(v) for q, v in states.position_noise.items()},
        observation_noise=states.observation_noise,
        min_width=min_width,
        episodes=episodes,
    )


def _robust_fit(
    simulator: Simulator,
    windows: Windows,
    bounds: np.ndarray,
    budget: int,
    seed: int,
    progress: Callable[[str, int, int, float], None] | None,
    x: np.ndarray,
    warm: bool,
    replica: int,
) -> tuple[np.ndarray, int]:
    """The Cauchy M-estimate on ``windows`` in stages, each re-centring the scale on the median window error."""
    used = 0
    for stage, (share, step) in enumerate(STAGES):
        scale = max(float(np.median(simulator.window_losses(x, windows)[0])), 1e-15)
        fit = _cma(
            simulator,
            windows,
            bounds,
            max(int(budget * share), 1),
            seed + seeding.FINAL_FIT + stage,
            progress,
            f"fit {replica + 1}/{REPLICAS}, stage {stage + 1}/{len(STAGES)}",
            x0=x,
            step=step if (stage or warm) else 0.2,
            robust_scale=scale,
        )
        x, used = fit.log_estimate, used + fit.evaluations
    return x, used


def _sandwich_std(simulator: Simulator, windows: Windows, x: np.ndarray, scale: float | None) -> np.ndarray:
    """Standard deviations (log space) of the estimate (the Cauchy M-estimate, or least squares for ``scale=None``):
    the sandwich H^-1 B H^-1, B from the summed scores of each episode (windows of one episode share their
    errors)."""
    p = len(x)
    steps = SENSITIVITY_STEP * np.eye(p)
    predicted = simulator.predict(np.vstack([x, x + steps, x - steps]), windows)
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
    simulator: Simulator, windows: Windows, x: np.ndarray, states: States, rng: np.random.Generator
) -> Misfit | None:
    """Compare the fitted window errors with those the estimated noise alone leaves: predictions from start states
    perturbed by the noise, against the noise-free predictions plus noise on the compared states. ``None`` when
    the noise level is unknown (states rebuilt but not smoothed)."""
    if states.rebuilt and states.observation_noise is None:
        return None
    fitted = float(np.median(simulator.window_losses(x, windows)[0]))
    position_std, velocity_std = states.noise_model()
    skipped = simulator.skipped
    position_std = position_std.copy()
    position_std[:skipped] = 0.0  # not observed: rebuilt as 0, and the dynamics do not depend on it
    if not position_std.any() and not velocity_std.any():
        nominal = float(np.median(simulator.window_losses(np.zeros(len(x)), windows)[0]))
        noise = max(EXACT_FLOOR * nominal, EXACT_ABSOLUTE)
    else:
        clean = simulator.predict(x, windows)[0]
        draws = []
        for _ in range(2):
            qpos = windows.qpos + rng.normal(size=windows.qpos.shape) * position_std
            qvel = windows.qvel + rng.normal(size=windows.qvel.shape) * velocity_std
            perturbed = simulator.predict(x, windows, qpos, qvel)[0]
            measured = clean + rng.normal(size=clean.shape) * state_vector(position_std, velocity_std, skipped)
            draws.append(np.mean(((perturbed - measured) / windows.scale) ** 2, axis=(1, 2)))
        noise = float(np.median(np.concatenate(draws)))
    ratio = fitted / max(noise, 1e-300)
    return Misfit(ratio=float(ratio), fitted=fitted, noise=noise, flagged=bool(ratio > MISFIT_RATIO))


def _likely_cause(spec: RobotSpec, names: list[str], delays: Sequence[int] | None) -> str:
    left_out = [n for n in spec.parameters if n not in names]
    if left_out:
        return f"parameters left out of the fit ({', '.join(left_out)}): identify them too (drop --params)"
    if delays is None:
        return "an effect the fit does not model: an action delay (try --delay), or dynamics outside the catalogue"
    return "an effect or dynamics outside the parameter catalogue (the model cannot reproduce the data)"


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
    step: float = 0.2,
    robust_scale: float | None = None,
) -> Fit:
    options = {
        "bounds": [list(bounds[:, 0]), list(bounds[:, 1])],
        "seed": seed + seeding.CMA,
        "maxfevals": max(budget, 1),
        "verbose": -9,
        # 1e-3 in log space is 0.1% on a multiplier: below any useful accuracy, and CMA-ES stops there
        "tolfun": 1e-12,
        "tolx": PRECISION,
    }
    start = np.zeros(len(simulator.names)) if x0 is None else np.clip(x0, bounds[:, 0], bounds[:, 1])
    es = cma.CMAEvolutionStrategy(start, step, options)
    while not es.stop():
        candidates = es.ask()
        # a generation in one batch
        es.tell(candidates, list(simulator.losses(np.array(candidates), windows, robust_scale)))
        if progress is not None:
            progress(stage, es.result.evaluations, budget, float(es.result.fbest))
    result = es.result
    return Fit(np.asarray(result.xbest), float(result.fbest), int(result.evaluations))
