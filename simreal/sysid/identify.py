"""System identification: the simulator parameters that best explain recorded trajectories, with honest intervals.

:func:`identify` resolves the robot and the parameters, fits them (:mod:`~simreal.sysid.fitting`: the objective, the
delay screens, the exact and robust fits), checks the fit and tells how sure it is
(:mod:`~simreal.sysid.uncertainty`: the intervals, the misfit check, the dynamics gap), and returns a
:class:`~simreal.sysid.result.SysidResult`; its ``progress`` callback receives :class:`SysidProgress` reports
(:mod:`~simreal.sysid.progress`: the plan of the work they measure).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from simreal import seeding
from simreal.envs.ranges import check_parameter, default_parameters
from simreal.envs.robots import load_robot
from simreal.envs.spec import RobotSpec
from simreal.errors import ConfigError, shown
from simreal.runs.config import check_seed
from simreal.sysid.fitting import Fitting
from simreal.sysid.progress import BUDGET_PER_PARAMETER, SysidProgress
from simreal.sysid.result import SysidResult
from simreal.sysid.trajectories import Trajectories
from simreal.sysid.uncertainty import check_misfit, dynamics_gap, likely_cause


def split_names(text: str, field: str = "params") -> list[str]:
    """Comma-separated names (``pole_mass,cart_mass``), each stripped.

    Raises:
        ConfigError: an empty name (``a,,b``, ``,,,``, a trailing comma), naming ``field``.
    """
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ConfigError(f"{field}: {shown(text)}: an empty name (give comma-separated names, e.g. a,b)")
    return names


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
        params: parameter names (default: all the robot's; an empty list is refused, not read as all).
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
        ConfigError: an empty list of parameters, a seed out of range.
        DataError: data that cannot be cut into windows.
    """
    start = time.perf_counter()
    check_seed(seed)
    if params is not None and not list(params):
        raise ConfigError("params: no parameter named (leave it out to identify every parameter)")
    spec = robot if isinstance(robot, RobotSpec) else load_robot(robot)
    names = list(params) if params is not None else default_parameters(spec)
    for name in names:
        check_parameter(spec, name, "params")
    budget = BUDGET_PER_PARAMETER * len(names) if budget is None else budget
    if smooth is None:
        smooth = use_observations or data.qpos is None
    run = Fitting.prepare(
        spec, names, data, holdout, horizon=horizon, max_windows=max_windows, seed=seed,
        use_observations=use_observations, smooth=smooth, threads=threads, budget=budget, delays=delays,
        progress=progress,
    )  # fmt: skip
    estimate = run.fit(budget, delays)
    x, fitted, update = estimate.log_estimate, estimate.windows, run.tracker.update
    noise = np.random.default_rng(seed + seeding.MISFIT_NOISE)
    with run.tracker.stage("misfit check"):
        misfit = check_misfit(run.local, fitted, x, run.states, noise, update)
    if misfit is not None and misfit.flagged:
        misfit.cause = likely_cause(spec, names, delays)
    with run.tracker.stage("dynamics gap"):
        gap = {"fitted": dynamics_gap(run.local, fitted, x, update)}
        held = run.held_out_windows(estimate)
        if held is not None:
            gap["held_out"] = dynamics_gap(run.local, held, x, update)
    return SysidResult.from_estimate(run, estimate, misfit, gap, smooth, min_width, start)
