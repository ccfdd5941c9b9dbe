"""The simulator system identification scores parameter candidates with: MuJoCo's native batched rollouts
(``mujoco.rollout``) over windows, one thread per core."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import mujoco
import numpy as np
from mujoco import rollout

from simreal.envs.coordinates import from_coordinates, offset_scales
from simreal.envs.dynamics import DynamicsModel
from simreal.envs.mujoco_base import make_base_env, mujoco_env
from simreal.envs.spec import RobotSpec
from simreal.sysid.windows import Windows


class Simulator:
    """Scores parameter candidates on windows with MuJoCo's native batched rollouts (``mujoco.rollout``), one thread
    per core, one model copy per candidate of a generation."""

    def __init__(self, spec: RobotSpec, names: Sequence[str], threads: int = 2) -> None:
        self.spec = spec
        env = make_base_env(spec)
        self.model = mujoco_env(env).model
        self.frame_skip = mujoco_env(env).frame_skip
        self.dynamics = DynamicsModel(self.spec, self.model)
        self.names = list(names)
        self.index = self.dynamics.index_of(tuple(self.names))
        #: the offsets among the names, name -> scale: their candidates are offsets over scale, not logarithms
        self.offsets = offset_scales(spec, self.names)
        self.skipped = self.spec.observation.skipped_positions if self.spec.observation else 0
        self.ctrl_low, self.ctrl_high = self.model.actuator_ctrlrange.T.copy()
        self._models: list[mujoco.MjModel] = []
        self._datas = [mujoco.MjData(self.model) for _ in range(max(threads, 1))]
        self._state_spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self._nstate = mujoco.mj_stateSize(self.model, self._state_spec)
        self._cache: tuple[Windows, np.ndarray, np.ndarray] | None = None
        #: Window rollouts run so far (one candidate over one window of K steps): the unit of work of progress.
        self.rollouts = 0

    def _models_for(self, candidates: np.ndarray) -> list[mujoco.MjModel]:
        while len(self._models) < len(candidates):
            self._models.append(copy.deepcopy(self.model))
        for model, coordinates in zip(self._models, candidates, strict=False):
            values = self.dynamics.neutral.copy()
            values[self.index] = from_coordinates(self.names, coordinates, self.offsets)
            self.dynamics.apply_array(model, mujoco.MjData(model), values)
        return self._models[: len(candidates)]

    def _states(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        data = mujoco.MjData(self.model)
        states = np.empty((len(qpos), self._nstate))
        for w in range(len(qpos)):
            mujoco.mj_resetData(self.model, data)
            data.qpos[:], data.qvel[:] = qpos[w], qvel[w]
            mujoco.mj_getState(self.model, data, states[w], self._state_spec)
        return states

    def _inputs(self, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
        # initial states and controls depend on the windows only: build them once per windows object
        if self._cache is None or self._cache[0] is not windows:
            states = self._states(windows.qpos, windows.qvel)
            controls = np.repeat(np.clip(windows.actions, self.ctrl_low, self.ctrl_high), self.frame_skip, axis=1)
            self._cache = (windows, states, controls)  # held, so its id cannot be reused
        return self._cache[1], self._cache[2]

    def predict(
        self,
        candidates: np.ndarray,
        windows: Windows,
        qpos: np.ndarray | None = None,
        qvel: np.ndarray | None = None,
    ) -> np.ndarray:
        """The states each candidate (rows of log multipliers) predicts after each step of each window, shape
        ``(candidates, windows, K, state_dim)``; from the windows' start states, or from ``qpos``/``qvel``."""
        candidates = np.atleast_2d(candidates)
        states, controls = self._inputs(windows)
        if qpos is not None and qvel is not None:
            states = self._states(qpos, qvel)
        n_windows = len(states)
        models = self._models_for(candidates)
        batch_models = [model for model in models for _ in range(n_windows)]
        out, _ = rollout.rollout(
            batch_models, self._datas, np.tile(states, (len(models), 1)), np.tile(controls, (len(models), 1, 1))
        )
        self.rollouts += len(batch_models)
        nq, nv = self.model.nq, self.model.nv
        after = out[:, self.frame_skip - 1 :: self.frame_skip, :]  # the state after each control step
        predicted = np.concatenate([after[..., 1 + self.skipped : 1 + nq], after[..., 1 + nq : 1 + nq + nv]], axis=-1)
        return predicted.reshape(len(models), n_windows, *windows.targets.shape[1:])

    def window_losses(self, candidates: np.ndarray, windows: Windows) -> np.ndarray:
        """Each window's mean squared K-step prediction error, each dimension divided by its spread in the data:
        shape ``(candidates, windows)`` (non-finite predictions score 1e12)."""
        errors = (self.predict(candidates, windows) - windows.targets) / windows.scale
        values = np.mean(errors**2, axis=(2, 3))
        return np.where(np.isfinite(values), values, 1e12)

    def losses(self, candidates: np.ndarray, windows: Windows, robust_scale: float | None = None) -> np.ndarray:
        """The objective of each candidate: the mean window loss, or with ``robust_scale`` c the mean of
        ``log(1 + loss / c)`` over windows (a Cauchy M-estimator: a few windows whose error the noise blows up,
        at contacts, cannot pull the estimate)."""
        per_window = self.window_losses(candidates, windows)
        if robust_scale is None:
            return per_window.mean(axis=1)
        return np.log1p(per_window / robust_scale).mean(axis=1)

    def loss(self, log_multipliers: np.ndarray, windows: Windows) -> float:
        """The mean window loss of one candidate."""
        return float(self.losses(np.asarray(log_multipliers)[None], windows)[0])
