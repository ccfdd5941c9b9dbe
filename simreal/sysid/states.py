"""The MuJoCo states system identification starts from and compares with: recorded, or rebuilt from observations
(positions smoothed with the observed velocities, :mod:`simreal.sysid.smoothing`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from simreal.envs.spec import RobotSpec
from simreal.errors import DataError
from simreal.sysid.smoothing import increment_weight, position_velocity_pairs, smooth_positions
from simreal.sysid.trajectories import Trajectories

#: A velocity reading above this fraction of the observation's clip may have been clipped.
CLIP_MARGIN = 0.99


def rebuild_states(data: Trajectories, spec: RobotSpec, nq: int, nv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MuJoCo states from observations, for robots whose observation holds their state.

    Returns:
        ``(qpos, qvel, exact)``: the rebuilt states and, per row, whether the rebuild is exact (``False`` where a
        velocity sits at the observation's clip).

    Raises:
        DataError: the robot's observation does not determine its state.
    """
    layout = spec.observation
    if layout is None:
        raise DataError(f"{spec.robot}: its observation does not determine its state: record qpos and qvel")
    skipped = layout.skipped_positions
    n = len(data)
    qpos = np.zeros((n, nq))
    qpos[:, skipped:] = data.observations[:, : nq - skipped]
    qvel = data.observations[:, nq - skipped : nq - skipped + nv].copy()
    exact = np.ones(n, dtype=bool)
    if layout.velocity_clip is not None:
        exact = (np.abs(qvel) < layout.velocity_clip).all(axis=1)
    return qpos, qvel, exact


@dataclass
class States:
    """The states the fit starts from and compares with, per recorded row."""

    qpos: np.ndarray  # (n, nq)
    qvel: np.ndarray  # (n, nv)
    exact: np.ndarray  # (n,): False where a state cannot be trusted as a start (a velocity at the clip)
    rebuilt: bool  # rebuilt from observations rather than recorded
    position_noise: dict[int, float]  # qpos index -> estimated noise, for the coordinates that were smoothed
    smoothed_noise: dict[int, float] = field(default_factory=dict)  # qpos index -> error left after smoothing

    @property
    def observation_noise(self) -> float | None:
        """The sensor noise std estimated from the data (the median over smoothed coordinates), or ``None``."""
        return float(np.median(list(self.position_noise.values()))) if self.position_noise else None

    def noise_model(self) -> tuple[np.ndarray, np.ndarray]:
        """The error std of each state coordinate as the fit sees it: ``(qpos (nq,), qvel (nv,))``.

        Velocities are read with the sensor noise; smoothed positions keep what smoothing leaves; recorded states
        are exact.
        """
        nq, nv = self.qpos.shape[1], self.qvel.shape[1]
        noise = self.observation_noise or 0.0
        positions = np.full(nq, noise if self.rebuilt else 0.0)
        for q, left in self.smoothed_noise.items():
            positions[q] = left
        return positions, np.full(nv, noise if self.rebuilt else 0.0)


def fit_states(
    data: Trajectories, spec: RobotSpec, model: mujoco.MjModel, frame_skip: int, use_observations: bool, smooth: bool
) -> States:
    """The recorded MuJoCo states, or states rebuilt from observations (positions smoothed when ``smooth``).

    Raises:
        DataError: no qpos/qvel recorded and a robot whose observation does not hold its state.
    """
    if data.states is not None and not use_observations:
        return States(*data.states, np.ones(len(data), dtype=bool), False, {})
    qpos, qvel, exact = rebuild_states(data, spec, model.nq, model.nv)
    if not smooth:
        return States(qpos, qvel, exact, True, {})
    clip = spec.observation.velocity_clip if spec.observation else None
    # noise can put a clipped reading just under the clip: keep a margin
    velocity_ok = np.ones_like(qvel, dtype=bool) if clip is None else np.abs(qvel) < CLIP_MARGIN * clip
    skipped = spec.observation.skipped_positions if spec.observation else 0
    smoothed = smooth_positions(
        qpos,
        qvel=qvel,
        episode=data.episode,
        velocity_ok=velocity_ok,
        dt=model.opt.timestep * frame_skip,
        pairs=position_velocity_pairs(model, skipped),
        end_weight=increment_weight(model, frame_skip),
    )
    return States(smoothed.qpos, qvel, exact, True, smoothed.position_noise, smoothed.smoothed_noise)
