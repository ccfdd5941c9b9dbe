"""System identification: the simulator parameters that best explain recorded trajectories.

The objective is the multi-step open-loop prediction error: from recorded states, the simulator is reset to the
state, replays the recorded actions for ``horizon`` control steps, and its states are compared with the recorded
ones, each dimension divided by its spread in the data. CMA-ES (the ``cma`` package) minimizes the mean squared error
over log-multipliers within the parameters' limits; each generation's candidates x windows run as one batch of
MuJoCo's native rollouts (``mujoco.rollout``) on a thread per core.
An optional discrete action delay is found by fitting each candidate delay.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np
from mujoco import rollout

from simreal.dynamics import DynamicsModel
from simreal.errors import DataError, SpecError
from simreal.factory import make_base_env
from simreal.smoothing import increment_weight, position_velocity_pairs, smooth_positions
from simreal.spec import RobotSpec, load_robot
from simreal.trajectories import Trajectories, rebuild_states

with warnings.catch_warnings():
    # cma announces on import that it cannot plot without matplotlib: simreal never plots through it
    warnings.filterwarnings("ignore", message="Could not import matplotlib")
    import cma

#: A parameter whose 10% change moves the loss by less than this fraction is reported as not identifiable.
IDENTIFIABILITY_THRESHOLD = 0.01
#: A velocity reading above this fraction of the observation's clip may have been clipped.
CLIP_MARGIN = 0.99
#: The delay screening fits see at most this many windows (the delays' losses differ by far more than the noise).
SCREEN_WINDOWS = 50


@dataclass
class Windows:
    """Stretches of recorded data: a start state, the actions that followed, and the states they led to."""

    qpos: np.ndarray  # (W, nq)
    qvel: np.ndarray  # (W, nv)
    actions: np.ndarray  # (W, K, act_dim): the actions applied, delay included
    targets: np.ndarray  # (W, K, state_dim): the recorded states after each step
    scale: np.ndarray  # (state_dim,)


def state_vector(qpos: np.ndarray, qvel: np.ndarray, skipped: int) -> np.ndarray:
    """The compared part of a state: positions without the unobserved x (and y), and velocities."""
    return np.concatenate([qpos[..., skipped:], qvel], axis=-1)


@dataclass
class States:
    """The states the fit starts from and compares with, per recorded row."""

    qpos: np.ndarray  # (n, nq)
    qvel: np.ndarray  # (n, nv)
    exact: np.ndarray  # (n,): False where a state cannot be trusted as a start (a velocity at the clip)
    rebuilt: bool  # rebuilt from observations rather than recorded
    position_noise: dict[int, float]  # qpos index -> estimated noise, for the coordinates that were smoothed


def fit_states(
    data: Trajectories, spec: RobotSpec, model: mujoco.MjModel, frame_skip: int, use_observations: bool, smooth: bool
) -> States:
    """The recorded MuJoCo states, or states rebuilt from observations (positions smoothed when ``smooth``).

    Raises:
        DataError: no qpos/qvel recorded and a robot whose observation does not hold its state.
    """
    if data.qpos is not None and not use_observations:
        return States(data.qpos, data.qvel, np.ones(len(data), dtype=bool), False, {})
    qpos, qvel, exact = rebuild_states(data, spec, model.nq, model.nv)
    if not smooth:
        return States(qpos, qvel, exact, True, {})
    clip = spec.observation.velocity_clip if spec.observation else None
    # noise can put a clipped reading just under the clip: keep a margin
    velocity_ok = np.ones_like(qvel, dtype=bool) if clip is None else np.abs(qvel) < CLIP_MARGIN * clip
    skipped = spec.observation.skipped_positions if spec.observation else 0
    smoothed = smooth_positions(
        qpos,
        qvel,
        data.episode,
        velocity_ok,
        model.opt.timestep * frame_skip,
        position_velocity_pairs(model, skipped),
        increment_weight(model, frame_skip),
    )
    return States(smoothed.qpos, qvel, exact, True, smoothed.position_noise)


def make_windows(
    data: Trajectories,
    states: States,
    skipped: int,
    horizon: int,
    delay: int,
    max_windows: int,
    rng: np.random.Generator,
) -> Windows:
    """Cut the recording into windows of ``horizon`` steps (actions shifted by ``delay``), at most ``max_windows``.

    Raises:
        DataError: no episode long enough for one window.
    """
    qpos, qvel, exact = states.qpos, states.qvel, states.exact
    starts, episodes = [], data.episode
    for episode in data.episodes:
        rows = np.flatnonzero(episodes == episode)
        for i in range(len(rows) - horizon):
            if exact[rows[i]]:
                starts.append((rows, i))
    if not starts:
        raise DataError(f"no episode has more than {horizon} steps: shorten --horizon or record longer episodes")
    if len(starts) > max_windows:
        starts = [starts[i] for i in sorted(rng.choice(len(starts), max_windows, replace=False))]
    act_dim = data.actions.shape[1]
    w_qpos, w_qvel, w_actions, w_targets = [], [], [], []
    for rows, i in starts:
        w_qpos.append(qpos[rows[i]])
        w_qvel.append(qvel[rows[i]])
        applied = np.zeros((horizon, act_dim))
        for k in range(horizon):
            source = i + k - delay  # the command sent `delay` steps earlier (zeros before the episode's first)
            if source >= 0:
                applied[k] = data.actions[rows[source]]
        w_actions.append(applied)
        after = rows[i + 1 : i + 1 + horizon]
        w_targets.append(state_vector(qpos[after], qvel[after], skipped))
    targets = np.array(w_targets)
    scale = state_vector(qpos, qvel, skipped).std(axis=0) + 1e-3
    return Windows(np.array(w_qpos), np.array(w_qvel), np.array(w_actions), targets, scale)


class Simulator:
    """Scores parameter candidates on windows with MuJoCo's native batched rollouts (``mujoco.rollout``), one thread
    per core, one model copy per candidate of a generation."""

    def __init__(self, robot: str, names: Sequence[str], threads: int = 2) -> None:
        self.spec = load_robot(robot)
        env = make_base_env(self.spec)
        self.model = env.unwrapped.model
        self.frame_skip = env.unwrapped.frame_skip
        self.dynamics = DynamicsModel(self.spec, self.model)
        self.names = list(names)
        self.index = self.dynamics.index_of(tuple(self.names))
        self.skipped = self.spec.observation.skipped_positions if self.spec.observation else 0
        self.ctrl_low, self.ctrl_high = self.model.actuator_ctrlrange.T.copy()
        self._models: list[mujoco.MjModel] = []
        self._datas = [mujoco.MjData(self.model) for _ in range(max(threads, 1))]
        self._state_spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self._nstate = mujoco.mj_stateSize(self.model, self._state_spec)
        self._cache: tuple[Windows, np.ndarray, np.ndarray] | None = None

    def _models_for(self, candidates: np.ndarray) -> list[mujoco.MjModel]:
        while len(self._models) < len(candidates):
            self._models.append(copy.deepcopy(self.model))
        for model, log_multipliers in zip(self._models, candidates, strict=False):
            values = np.ones(len(self.dynamics.names))
            values[self.index] = np.exp(log_multipliers)
            self.dynamics.apply_array(model, mujoco.MjData(model), values)
        return self._models[: len(candidates)]

    def _inputs(self, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
        # initial states and controls depend on the windows only: build them once per windows object
        if self._cache is None or self._cache[0] is not windows:
            data = mujoco.MjData(self.model)
            states = np.empty((len(windows.qpos), self._nstate))
            for w in range(len(windows.qpos)):
                mujoco.mj_resetData(self.model, data)
                data.qpos[:], data.qvel[:] = windows.qpos[w], windows.qvel[w]
                mujoco.mj_getState(self.model, data, states[w], self._state_spec)
            controls = np.repeat(np.clip(windows.actions, self.ctrl_low, self.ctrl_high), self.frame_skip, axis=1)
            self._cache = (windows, states, controls)  # held, so its id cannot be reused
        return self._cache[1], self._cache[2]

    def losses(self, candidates: np.ndarray, windows: Windows) -> np.ndarray:
        """Mean squared normalized K-step prediction error of each candidate (rows of log multipliers)."""
        candidates = np.atleast_2d(candidates)
        states, controls = self._inputs(windows)
        n_windows = len(states)
        models = self._models_for(candidates)
        batch_models = [model for model in models for _ in range(n_windows)]
        out, _ = rollout.rollout(
            batch_models, self._datas, np.tile(states, (len(models), 1)), np.tile(controls, (len(models), 1, 1))
        )
        nq, nv = self.model.nq, self.model.nv
        after = out[:, self.frame_skip - 1 :: self.frame_skip, :]  # the state after each control step
        predicted = np.concatenate([after[..., 1 + self.skipped : 1 + nq], after[..., 1 + nq : 1 + nq + nv]], axis=-1)
        shaped = predicted.reshape(len(models), n_windows, *windows.targets.shape[1:])
        values = np.mean(((shaped - windows.targets) / windows.scale) ** 2, axis=(1, 2, 3))
        return np.where(np.isfinite(values), values, 1e12)

    def loss(self, log_multipliers: np.ndarray, windows: Windows) -> float:
        """:meth:`losses` of one candidate."""
        return float(self.losses(np.asarray(log_multipliers)[None], windows)[0])


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
    evaluations: int
    seconds: float
    states: str = "recorded"
    position_noise: dict[int, float] = field(default_factory=dict)

    def errors(self) -> dict[str, float] | None:
        """Relative error of each estimate against the truth, when the data came from a simreal target."""
        if self.truth is None:
            return None
        return {n: abs(self.estimate[n] - self.truth.get(n, 1.0)) / self.truth.get(n, 1.0) for n in self.names}

    def ranges(self) -> dict[str, list[float]]:
        """Training ranges around the estimate: ``estimate / spread**k .. estimate * spread**k``."""
        return {
            n: [self.estimate[n] / self.spread[n] ** self.k, self.estimate[n] * self.spread[n] ** self.k]
            for n in self.names
        }

    def as_dict(self) -> dict[str, Any]:
        errors = self.errors()
        return {
            "schema": "simreal.sysid/1",
            "robot": self.robot,
            "parameters": {
                n: {
                    "estimate": self.estimate[n],
                    "spread": self.spread[n],
                    "range": self.ranges()[n],
                    "identifiable": self.identifiable[n],
                    **({"truth": self.truth.get(n, 1.0), "relative_error": errors[n]} if errors else {}),
                }
                for n in self.names
            },
            "mean_relative_error": float(np.mean(list(errors.values()))) if errors else None,
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
        spec = load_robot(self.robot)
        ranges = {}
        for name, (low, high) in self.ranges().items():
            hard_low, hard_high = spec.parameters[name].hard_limits
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
    robot: str,
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
        robot: the robot.
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
        smooth: denoise rebuilt positions with the observed velocities (:mod:`simreal.smoothing`); default: whenever
            states are rebuilt from observations.
        threads: threads of MuJoCo's batched rollouts (each generation's candidates are evaluated together).
        progress: called with ``(stage, evaluations, budget, best loss)``.

    Raises:
        SpecError: unknown parameter names.
        DataError: data that cannot be cut into windows.
    """
    start = time.perf_counter()
    spec = load_robot(robot)
    names = list(params) if params else list(spec.parameters)
    for name in names:
        if name not in spec.parameters:
            raise SpecError(f"--params: {name}: unknown parameter for {robot} (known: {', '.join(spec.parameters)})")
    local = Simulator(robot, names, threads=threads)
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
            local, fitted, bounds, max(budget - used, 1), seed + 1, progress, "fit", x0=screens[delay].log_estimate
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
        held = windows_for(holdout, held_states, delay, max_windows, seed + 7)
        held.scale = fitted.scale
        gap["held_out"] = _gap(local, held, best.log_estimate, len(names))
    # a recording from simreal's simulator carries the multipliers it ran with: the truth to compare against
    truth = data.meta.get("dynamics") if data.meta.get("source") == "simulator" else None
    return SysidResult(
        robot=robot,
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
        "seed": seed + 1,
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
