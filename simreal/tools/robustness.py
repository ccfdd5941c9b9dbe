"""Robustness maps: a policy's return over a 1-D or 2-D grid of dynamics (:mod:`simreal.tools.grid`), the other
parameters nominal.

Every cell is a fixed "reality" like a target, evaluated with the same episodes (``seed``) as every other cell, so
neighbouring cells differ by their dynamics only. Cells are shared between the calling process and spawned worker
processes (each loads the policy once); the numbers do not depend on how many. :func:`robustness_map` computes the
map and each policy's returns at nominal dynamics; :mod:`simreal.tools.map_files` writes it.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from simreal.envs.spec import EFFECT_NAMES, STEP_EFFECTS, Effects
from simreal.errors import ConfigError
from simreal.runs.config import check_seed
from simreal.tools.grid import DEFAULT_POINTS, Axis, check_points, grid_axes, nominal_index, training_ranges

if TYPE_CHECKING:
    from simreal.runs.policy import LoadedPolicy

SCHEMA = "simreal.robustness/1"
#: The most episodes per cell: a cell's episodes run as that many envs side by side.
MAX_EPISODES = 1000


@dataclass
class RobustnessMap:
    """Returns of a policy on every cell of a grid (and of a second policy, when compared).

    Attributes:
        axes: one or two axes; cell ``(i[, j])`` has ``axes[0].values[i]`` (and ``axes[1].values[j]``).
        returns: per cell, the episode returns, in ``itertools.product`` order of the axes' values.
        against: the second policy's returns on the same cells (``None``: no comparison).
        meta: what was evaluated (policy, episodes, seed...), for the JSON document.
        nominal: the episode returns at nominal dynamics (every multiplier 1, every effect off), the same episodes
            as every cell: the grid's nominal cell when it has one, else one extra cell (``None``: not evaluated).
        against_nominal: the second policy's, likewise.
        against_training: the second policy's training ranges on the axes, by name (an axis it was not randomized
            on is absent; ``None``: not recorded).
    """

    axes: list[Axis]
    returns: list[list[float]]
    against: list[list[float]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    nominal: list[float] | None = None
    against_nominal: list[float] | None = None
    against_training: dict[str, tuple[float, float]] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(axis.values) for axis in self.axes)

    def nominal_index(self) -> int | None:
        """The index (in :meth:`cells` order) of the cell at nominal dynamics, ``None`` when the grid has none."""
        return nominal_index(self.axes)

    def cells(self) -> list[tuple[float, ...]]:
        return list(itertools.product(*(axis.values for axis in self.axes)))

    def rows(self, seed: int) -> list[dict[str, Any]]:
        """One row per cell: the axes' values, mean return with its bootstrap 95% CI, std, episodes; with a
        comparison also the other policy's mean and the difference (this policy minus the other) with its CI."""
        from simreal.evaluate.gap import mean_return_ci, reality_gap

        rng = np.random.default_rng(seed)
        rows = []
        for index, cell in enumerate(self.cells()):
            returns = self.returns[index]
            low, high = mean_return_ci([returns], rng)
            row: dict[str, Any] = {axis.name: value for axis, value in zip(self.axes, cell, strict=True)}
            row.update(mean_return=float(np.mean(returns)), ci_low=low, ci_high=high, std_return=float(np.std(returns)))
            row["episodes"] = len(returns)
            if self.against is not None:
                other = self.against[index]
                difference = reality_gap(returns, other, rng)  # mean(returns) - mean(other), both resampled
                row.update(against_mean_return=float(np.mean(other)), difference=difference.gap)
                row.update(difference_ci_low=difference.gap_ci[0], difference_ci_high=difference.gap_ci[1])
            rows.append(row)
        return rows


# -- evaluation: each worker process loads the policies once ------------------------------------------------------

_worker: dict[str, Any] = {}
#: one cell of one policy: (policy source, axis names, the cell's values, episodes, seed)
_Job = tuple[str, tuple[str, ...], tuple[float, ...], int, int]


def _load_worker(sources: tuple[str, ...], true_dynamics: bool, threads: int, trust_pickles: bool) -> None:
    import torch

    from simreal.runs.policy import load_policy

    torch.set_num_threads(threads)
    _worker.update(
        {source: load_policy(source, "cpu", true_dynamics, trust_pickles=trust_pickles) for source in sources}
    )


def _evaluate_cell(job: _Job) -> list[float]:
    from simreal.envs.vector import EnvFactory, vectorize
    from simreal.evaluate.evaluator import episode_returns

    source, names, values, episodes, seed = job
    policy = _worker[source]
    setup = policy.setup
    fixed = {n: v for n, v in zip(names, values, strict=True) if n not in EFFECT_NAMES}
    drawn = {n: round(v) if n in STEP_EFFECTS else v for n, v in zip(names, values, strict=True) if n not in fixed}
    effects = Effects.model_validate(drawn)
    venv = vectorize(EnvFactory(setup.spec, None, fixed, effects), episodes, seed)
    try:
        returns = episode_returns(policy.runner(n_envs=episodes), venv, episodes, seed)
    finally:
        venv.close()
    return returns.returns


def _evaluate(
    loaded: dict[str, LoadedPolicy],
    names: tuple[str, ...],
    cells: list[tuple[float, ...]],
    episodes: int,
    seed: int,
    workers: int,
    true_dynamics: bool,
    trust_pickles: bool,
) -> list[list[list[float]]]:
    """Every cell's returns (``names``: the axes; ``cells``: their values), in the order given, for each policy in
    ``loaded`` (by source, in order; loaded on the CPU by the caller, which evaluates with them; workers load their
    own). The calling process evaluates cells itself while ``workers - 1`` spawned processes start up and take
    cells too, one at a time from the same queue (a spawned worker needs a few seconds to import torch and load the
    policies: the caller does not wait for it). Every process loads every policy once, so a comparison costs no second
    start-up. Should the workers break (a process that cannot start or one that was killed), the calling process
    evaluates their cells: the numbers are the same whoever computes them. A main program read from standard input gets
    no workers (spawn re-runs the main program's file)."""
    import torch

    sources = tuple(loaded)
    jobs: list[_Job] = [(source, names, cell, episodes, seed) for source in sources for cell in cells]
    results: list[list[float] | None] = [None] * len(jobs)
    queue = iter(range(len(jobs)))
    lock, stop = threading.Lock(), threading.Event()

    def take() -> int | None:
        with lock:
            return None if stop.is_set() else next(queue, None)

    leftover: list[int] = []

    def feed(pool: ProcessPoolExecutor) -> None:
        while (index := take()) is not None:
            try:
                results[index] = pool.submit(_evaluate_cell, jobs[index]).result()
            except BrokenProcessPool:  # a worker that could not start or died: the caller takes its cells
                with lock:
                    leftover.append(index)
                return

    threads = torch.get_num_threads()
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is not None and not os.path.exists(main_file):
        workers = 1  # spawned workers re-run the main program's file, and this one has none (``python -``)
    # spawn: a fresh interpreter per worker (forking a process that holds torch threads can deadlock)
    context = multiprocessing.get_context("spawn")
    with ExitStack() as stack:
        feeders: list[Future[None]] = []
        if workers > 1:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    workers - 1, context, initializer=_load_worker, initargs=(sources, true_dynamics, 1, trust_pickles)
                )
            )
            feeders_pool = stack.enter_context(ThreadPoolExecutor(workers - 1))
            feeders = [feeders_pool.submit(feed, pool) for _ in range(workers - 1)]
        torch.set_num_threads(1)
        _worker.update(loaded)
        try:
            while (index := take()) is not None:
                results[index] = _evaluate_cell(jobs[index])
            for feeder in feeders:
                feeder.result()
            for index in leftover:
                results[index] = _evaluate_cell(jobs[index])
        except BaseException:
            stop.set()  # the feeders finish the cell they hold and stop
            raise
        finally:
            _worker.clear()
            torch.set_num_threads(threads)  # the caller's setting back
    filled = cast(list[list[float]], results)  # every cell filled, by a worker or by the caller
    return [filled[i * len(cells) : (i + 1) * len(cells)] for i in range(len(sources))]


def robustness_map(
    source: str | os.PathLike[str],
    params: Sequence[str],
    *,
    points: int = DEFAULT_POINTS,
    spans: Sequence[tuple[float, float]] = (),
    episodes: int = 10,
    seed: int = 0,
    workers: int | None = None,
    against: str | os.PathLike[str] | None = None,
    true_dynamics: bool = False,
    trust_pickles: bool = False,
) -> RobustnessMap:
    """Evaluate a policy (and optionally a second one) on every cell of a grid.

    Args:
        source: a run directory or a model file inside one.
        params: one or two axes: parameters of the robot or effects.
        points: grid points per axis.
        spans: ``(low, high)`` per axis or one for all (see :func:`grid_axes` for the default).
        episodes: deterministic episodes per cell, reset with seeds ``seed .. seed + episodes - 1`` in every cell.
        seed: seed of the episodes and of the bootstrap.
        workers: processes evaluating cells (default: one per core, at most one per cell).
        against: a second policy of the same robot, evaluated on the same cells and episodes.
        true_dynamics: adaptive policies act on the true parameters (see ``simreal evaluate --true-dynamics``).
        trust_pickles: let a run holding stable-baselines3's pickles only load (:data:`~simreal.errors.TRUST_PICKLES`).

    Raises:
        ConfigError: bad axes, grid, ranges, episodes or seed (the grid's size and the episodes checked before the
            policy is loaded). DataError: a missing or corrupt run.
    """
    from simreal.runs.policy import load_policy

    if 1 <= len(params) <= 2:
        check_points(points, len(params))
    if not 1 <= episodes <= MAX_EPISODES:
        raise ConfigError(f"episodes: from 1 to {MAX_EPISODES} per cell, got {episodes}")
    check_seed(seed)

    policy = load_policy(source, true_dynamics=true_dynamics, trust_pickles=trust_pickles)
    spec = policy.setup.spec
    other = None
    if against is not None:
        other = load_policy(against, true_dynamics=true_dynamics, trust_pickles=trust_pickles)
        if other.robot != spec.robot:
            raise ConfigError(f"against: {against}: a {other.robot} policy, not {spec.robot}")
    axes = grid_axes(spec, params, training_ranges(policy.setup), points, spans)
    cells = list(itertools.product(*(axis.values for axis in axes)))
    nominal_cell = nominal_index(axes)
    # the nominal return is what coverage is relative to: one extra cell when the grid misses it
    if nominal_cell is None:
        cells.append(tuple(axis.nominal for axis in axes))
    loaded = {str(source): policy, **({str(against): other} if other else {})}
    workers = max(1, min(workers or os.cpu_count() or 1, len(cells) * len(loaded)))
    names = tuple(axis.name for axis in axes)
    evaluated = _evaluate(
        loaded,
        names,
        cells,
        episodes=episodes,
        seed=seed,
        workers=workers,
        true_dynamics=true_dynamics,
        trust_pickles=trust_pickles,
    )
    nominals = [list(r[-1 if nominal_cell is None else nominal_cell]) for r in evaluated]
    if nominal_cell is None:
        evaluated = [r[:-1] for r in evaluated]
    returns, *compared = evaluated
    against_returns = compared[0] if compared else None
    against_training = None
    if other is not None:
        trained = training_ranges(other.setup)
        against_training = {axis.name: trained[axis.name] for axis in axes if axis.name in trained}
    meta = {
        "schema": SCHEMA,
        "policy": str(policy.path),
        "against": str(other.path) if other else None,
        "robot": spec.robot,
        "episodes": episodes,
        "seed": seed,
        "true_dynamics": true_dynamics,
    }
    return RobustnessMap(
        axes,
        returns,
        against_returns,
        meta,
        nominal=nominals[0],
        against_nominal=nominals[1] if other else None,
        against_training=against_training,
    )


# -- outputs ----------------------------------------------------------------------------------------------------
