"""How sure an identification is, and how well its model fits: intervals, the misfit check and the dynamics gap.

Uncertainty: a sandwich (cluster-robust) covariance of the estimate, with episodes as clusters, from the residuals'
sensitivities to the parameters, plus (on rebuilt states) the variance of the robust fits about their mean; 90%
intervals from Student's t (one degree of freedom fewer than the episodes, or Welch-Satterthwaite's for the two
variances together), plus the optimizer's stopping precision. Misfit: the fitted window errors are compared with
those that the estimated noise alone leaves. The dynamics gap: the K-step error of the nominal and of the identified
parameters.

Each function that runs rollouts calls its ``update`` after each batch of them, so that progress moves through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

from simreal.envs.coordinates import from_coordinates
from simreal.envs.spec import RobotSpec
from simreal.sysid.simulator import Simulator
from simreal.sysid.states import States
from simreal.sysid.windows import Windows, state_vector

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
#: Finite-difference step (log space) of the sensitivities behind the intervals.
SENSITIVITY_STEP = 0.02
#: CMA-ES stops when its steps fall below this (log space, 0.1% on a multiplier); intervals are never narrower.
PRECISION = 1e-3


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


def sandwich_std(
    simulator: Simulator, windows: Windows, x: np.ndarray, scale: float | None, update: Callable[[], None]
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
        update()
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


def half_widths(log_std: np.ndarray, dof: np.ndarray | None, episodes: int) -> np.ndarray:
    """The intervals' half-widths (log space): Student's t quantile of ``CONFIDENCE`` times the standard deviations
    (``dof`` degrees of freedom; ``None``: one fewer than the episodes), plus what the optimizer's stopping precision
    leaves."""
    default_dof = max(episodes - 1, 1)
    quantiles = student_t.ppf(0.5 + CONFIDENCE / 2, default_dof if dof is None else dof) * np.ones(len(log_std))
    return quantiles * log_std + PRECISION


def intervals(
    spec: RobotSpec, names: list[str], x: np.ndarray, half_widths: np.ndarray, offsets: Mapping[str, float]
) -> dict[str, tuple[float, float]]:
    """Each parameter's interval in its own units, within its hard limits."""
    interval = {}
    for i, n in enumerate(names):
        low, high = from_coordinates([n, n], [x[i] - half_widths[i], x[i] + half_widths[i]], offsets)
        hard_low, hard_high = spec.parameters[n].hard_limits
        interval[n] = (float(max(low, hard_low)), float(min(high, hard_high)))
    return interval


def identifiable(
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


def check_misfit(
    simulator: Simulator,
    windows: Windows,
    x: np.ndarray,
    states: States,
    rng: np.random.Generator,
    update: Callable[[], None],
) -> Misfit | None:
    """Compare the fitted window errors with those the estimated noise alone leaves: predictions from start states
    perturbed by the noise, against the noise-free predictions plus noise on the compared states. ``None`` when
    the noise level is unknown (states rebuilt but not smoothed)."""
    if states.rebuilt and states.observation_noise is None:
        return None
    fitted = float(np.median(simulator.window_losses(x, windows)[0]))
    update()
    position_std, velocity_std = states.noise_model()
    skipped = simulator.skipped
    position_std = position_std.copy()
    position_std[:skipped] = 0.0  # not observed: rebuilt as 0, and the dynamics do not depend on it
    if not position_std.any() and not velocity_std.any():
        nominal = float(np.median(simulator.window_losses(np.zeros(len(x)), windows)[0]))
        noise = max(EXACT_FLOOR * nominal, EXACT_ABSOLUTE)
    else:
        clean = simulator.predict(x, windows)[0]
        update()
        draws = []
        for _ in range(2):
            qpos = windows.qpos + rng.normal(size=windows.qpos.shape) * position_std
            qvel = windows.qvel + rng.normal(size=windows.qvel.shape) * velocity_std
            perturbed = simulator.predict(x, windows, qpos, qvel)[0]
            update()
            measured = clean + rng.normal(size=clean.shape) * state_vector(position_std, velocity_std, skipped)
            draws.append(np.mean(((perturbed - measured) / windows.scale) ** 2, axis=(1, 2)))
        noise = float(np.median(np.concatenate(draws)))
    ratio = fitted / max(noise, 1e-300)
    return Misfit(ratio=float(ratio), fitted=fitted, noise=noise, flagged=bool(ratio > MISFIT_RATIO))


def likely_cause(spec: RobotSpec, names: list[str], delays: Sequence[int] | None) -> str:
    """What most likely leaves a flagged misfit: parameters left out, an unmodelled delay, or neither."""
    left_out = [n for n in spec.parameters if n not in names]
    if left_out:
        return f"parameters left out of the fit ({', '.join(left_out)}): identify them too (every parameter: name none)"
    if delays is None:
        return "an effect the fit does not model: an action delay (identify the delays too), or unlisted dynamics"
    return "an effect or dynamics outside the parameter catalogue (the model cannot reproduce the data)"


def dynamics_gap(
    simulator: Simulator, windows: Windows, log_estimate: np.ndarray, update: Callable[[], None]
) -> dict[str, float]:
    """The K-step error on ``windows`` of the nominal parameters and of the identified ones, and their ratio."""
    nominal = simulator.loss(np.zeros(len(log_estimate)), windows)
    update()
    identified = simulator.loss(log_estimate, windows)
    update()
    return {"nominal": nominal, "identified": identified, "ratio": nominal / max(identified, 1e-15)}
