"""Denoise positions rebuilt from noisy observations, using the velocities observed beside them.

A robot's observation holds joint positions and joint velocities, each with sensor noise. Over one control step a
position moves by the integral of its velocity, which the observed velocities give far more precisely than two
noisy position readings do. For each position coordinate and episode the smoother solves the least-squares problem

    min_p  sum_t (p_t - y_t)^2 / sigma_p^2  +  sum_t (p_{t+1} - p_t - dt * (u_t + u_{t+1}) / 2)^2 / s^2

(``y`` observed positions, ``u`` observed velocities, ``sigma_p`` the position noise, ``s`` the integration error of
one step), a tridiagonal system solved with ``scipy.linalg.solveh_banded``. The position noise is estimated from the
data: the median absolute one-step residual ``y_{t+1} - y_t - dt (u_t + u_{t+1}) / 2`` (robust to the few steps
where contacts make the trapezoid rule wrong). Steps where a velocity sat at the observation's clip carry no
integration constraint. Velocities are left as observed: their noise cannot be told from the motion without knowing
the dynamics being identified.

On noise-free data the estimated noise is the integration error itself (about 1e-5 on hopper) and the smoother
leaves positions practically unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.linalg import solveh_banded

from simreal.sysid.trajectories import episode_rows

#: Scale from the median absolute deviation to the standard deviation of a normal distribution.
MAD_TO_STD = 1.4826
#: Smallest noise level the smoother assumes (keeps the system well conditioned on exact data).
NOISE_FLOOR = 1e-9
#: Lag-one correlation of the one-step residual below which it is taken as measurement noise (white noise: -0.5).
NOISE_CORRELATION = -0.42
#: Fewest usable steps to estimate a coordinate's noise from.
MIN_STEPS = 20
#: Huber threshold, in integration-error units, beyond which a step's integration constraint is down-weighted.
HUBER_K = 3.0
#: Reweighting passes of the robust solve.
ROBUST_ITERATIONS = 4


@dataclass
class SmoothedStates:
    """Positions after smoothing, and the noise estimated for each smoothed position coordinate."""

    qpos: np.ndarray  # (n, nq)
    position_noise: dict[int, float]  # qpos index -> estimated noise std of the readings (position units)
    smoothed_noise: dict[int, float]  # qpos index -> the error std left after smoothing (position units)


def position_velocity_pairs(model: mujoco.MjModel, skipped: int) -> list[tuple[int, int]]:
    """``(qpos index, qvel index)`` of every position coordinate that integrates one velocity coordinate.

    Hinge and slide joints pair one to one; a free joint's translation pairs with its (world-frame) linear velocity;
    quaternions (free and ball joints) have no such pair and are left as observed. Positions below ``skipped`` are
    not observed and are left out.
    """
    pairs = []
    for joint in range(model.njnt):
        kind, qadr, vadr = int(model.jnt_type[joint]), model.jnt_qposadr[joint], model.jnt_dofadr[joint]
        if kind in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            pairs.append((int(qadr), int(vadr)))
        elif kind == int(mujoco.mjtJoint.mjJNT_FREE):
            pairs.extend((int(qadr + i), int(vadr + i)) for i in range(3))
    return [(q, v) for q, v in pairs if q >= skipped]


def smooth_positions(
    qpos: np.ndarray,
    qvel: np.ndarray,
    episode: np.ndarray,
    velocity_ok: np.ndarray,
    dt: float,
    pairs: list[tuple[int, int]],
    end_weight: float = 0.5,
) -> SmoothedStates:
    """Smooth the paired position coordinates of rebuilt states (see the module docstring).

    Args:
        qpos: positions rebuilt from observations, ``(n, nq)``; rows of one episode are consecutive control steps.
        qvel: velocities rebuilt from observations, ``(n, nv)``.
        episode: the episode of each row.
        velocity_ok: ``(n, nv)``, ``False`` where a velocity is not trustworthy (at the observation's clip).
        dt: the control step in seconds.
        pairs: ``(qpos index, qvel index)`` to smooth, from :func:`position_velocity_pairs`.
        end_weight: the weight of the velocity at the end of a step in its position increment (see
            :func:`increment_weight`).

    Returns:
        The smoothed positions and the estimated noise of each smoothed coordinate.
    """
    out = qpos.copy()
    runs = episode_rows(episode)
    noise: dict[int, float] = {}
    left: dict[int, float] = {}
    for q, v in pairs:
        increments = [_increments(qvel[rows, v], dt, end_weight) for rows in runs]
        residuals = [np.diff(qpos[rows, q]) - step for rows, step in zip(runs, increments, strict=True)]
        usable = [velocity_ok[rows[:-1], v] & velocity_ok[rows[1:], v] for rows in runs]
        residual, keep = np.concatenate(residuals), np.concatenate(usable)
        if keep.sum() < MIN_STEPS or _lag_one_correlation(residuals, usable) > NOISE_CORRELATION:
            continue  # too few steps, or the residual is the integration rule's error rather than noise
        # the residual holds two position noises (variance 2 sigma^2) plus a small integration error
        sigma = max(MAD_TO_STD * float(np.median(np.abs(residual[keep]))) / np.sqrt(2), NOISE_FLOOR)
        noise[q] = sigma
        # the observed velocities carry noise too: assume the same level in velocity units (one sensor noise level)
        step_error = max(dt * sigma / np.sqrt(2), NOISE_FLOOR)
        errors = []
        for rows, step, step_ok in zip(runs, increments, usable, strict=True):
            out[rows, q], used = _solve(qpos[rows, q], step, step_ok, sigma, step_error)
            errors.append(used)
        left[q] = _posterior_std(sigma, float(np.median(errors)))
    return SmoothedStates(out, noise, left)


def _posterior_std(sigma: float, step_error: float) -> float:
    # the smoother's posterior precision is tridiagonal, w + 2c on the diagonal and -c beside it (w = 1/sigma^2,
    # c = 1/step_error^2); inside a long chain the diagonal of its inverse is 1 / sqrt(w^2 + 4 w c)
    w, c = 1.0 / sigma**2, 1.0 / step_error**2
    return float((w * w + 4.0 * w * c) ** -0.25)


def _lag_one_correlation(residuals: list[np.ndarray], usable: list[np.ndarray]) -> float:
    # white position noise makes consecutive residuals y_{t+1} - y_t - ... share one noise term with opposite signs
    # (correlation -0.5); an integration rule's error drifts smoothly (correlation near 0 or positive)
    pairs = []
    for r, ok in zip(residuals, usable, strict=True):
        both = ok[1:] & ok[:-1]
        pairs.append(np.stack([r[:-1][both], r[1:][both]]))
    a, b = np.concatenate(pairs, axis=1)
    bound = 5 * MAD_TO_STD * float(np.median(np.abs(np.concatenate([a, b])))) + NOISE_FLOOR
    a, b = np.clip(a, -bound, bound), np.clip(b, -bound, bound)  # impacts would dominate a plain correlation
    return float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else 0.0


def increment_weight(model: mujoco.MjModel, frame_skip: int) -> float:
    """How a control step's position increment splits between its start and end velocities.

    RK4 and the implicit integrators follow the trapezoid rule (0.5); MuJoCo's semi-implicit Euler moves each
    substep by the velocity at its end, which for a steady acceleration over ``n`` substeps gives ``(n + 1) / 2n``.
    """
    if int(model.opt.integrator) == int(mujoco.mjtIntegrator.mjINT_EULER):
        return (frame_skip + 1) / (2 * frame_skip)
    return 0.5


def _increments(u: np.ndarray, dt: float, end_weight: float) -> np.ndarray:
    return dt * ((1 - end_weight) * u[:-1] + end_weight * u[1:])


def _solve(
    y: np.ndarray, increments: np.ndarray, step_ok: np.ndarray, sigma: float, step_error: float
) -> tuple[np.ndarray, float]:
    if len(y) < 2:
        return y.copy(), step_error
    weights = np.where(step_ok, 1.0, 0.0)
    smoothed = y
    for _ in range(ROBUST_ITERATIONS):
        smoothed = _weighted_solve(y, increments, weights / step_error**2, 1.0 / sigma**2)
        mismatch = np.abs(np.diff(smoothed) - increments)
        # the integration rule's own error (large when noise-free data move fast) bounds how much it can be trusted
        if step_ok.any():
            step_error = max(step_error, MAD_TO_STD * float(np.median(mismatch[step_ok])))
        # Huber weights: a step the integration rule gets badly wrong (an impact) loses its pull on the positions
        weights = np.where(step_ok, 1.0 / np.maximum(mismatch / (HUBER_K * step_error), 1.0), 0.0)
    return smoothed, step_error


def _weighted_solve(y: np.ndarray, increments: np.ndarray, c: np.ndarray, w: float) -> np.ndarray:
    # normal equations (w I + D^T C D) p = w y + D^T C b, D the first difference: tridiagonal, symmetric
    n = len(y)
    diagonal = np.full(n, w)
    diagonal[:-1] += c
    diagonal[1:] += c
    banded = np.zeros((2, n))
    banded[0, 1:] = -c
    banded[1] = diagonal
    rhs = w * y
    rhs[:-1] -= c * increments
    rhs[1:] += c * increments
    return solveh_banded(banded, rhs)
