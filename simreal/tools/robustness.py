"""Robustness maps: a policy's return over a 1-D or 2-D grid of dynamics, the other parameters nominal.

An axis is a physical parameter (its multiplier) or an unmodeled effect (``action_delay_steps``, the noise levels);
every cell is a fixed "reality" like a target, evaluated with the same episodes (``seed``) as every other cell, so
neighbouring cells differ by their dynamics only. Cells are shared between the calling process and spawned worker
processes (each loads the policy once); the numbers do not depend on how many.

:func:`robustness_map` computes the map (and each policy's returns at nominal dynamics), :func:`write_map` writes
``robustness.csv``, ``robustness.json`` (with each policy's coverage of its training range, see
:mod:`simreal.tools.coverage`), ``robustness.png`` (curve or heatmap, with the training range and the shipped
targets marked) and ``tb/`` (the figure as a TensorBoard image).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import multiprocessing
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from simreal.envs.spec import EFFECT_NAMES, MAX_DELAY, STEP_EFFECTS, Effects, RobotSpec, check_multiplier
from simreal.errors import ConfigError, shown, unknown_name
from simreal.fileio import atomic_write_json, replace_dir, staging_dir
from simreal.tools.coverage import map_coverage

SCHEMA = "simreal.robustness/1"
#: Default grid points per axis.
DEFAULT_POINTS = 9


@dataclass(frozen=True)
class Axis:
    """One axis of a map.

    Attributes:
        name: a parameter of the robot or an effect.
        values: the grid (multipliers, control steps or standard deviations), increasing.
        training: the policy's training range on this axis (``None``: trained at the nominal value only).
        targets: the shipped targets' value on this axis.
        neutral: the value at nominal dynamics (1.0 for a multiplier; 0.0 for an effect or an offset).
    """

    name: str
    values: tuple[float, ...]
    training: tuple[float, float] | None
    targets: dict[str, float]
    neutral: float = 1.0

    @property
    def effect(self) -> bool:
        return self.name in EFFECT_NAMES

    @property
    def nominal(self) -> float:
        return 0.0 if self.effect else self.neutral

    def index(self, value: float) -> int | None:
        """The grid index of ``value`` (compared with a relative tolerance of 1e-9), ``None`` when it is not on
        the grid."""
        for index, candidate in enumerate(self.values):
            if math.isclose(candidate, value, rel_tol=1e-9, abs_tol=1e-12):
                return index
        return None


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
        return _nominal_index(self.axes)

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


def _nominal_index(axes: Sequence[Axis]) -> int | None:
    indices = [axis.index(axis.nominal) for axis in axes]
    if any(index is None for index in indices):
        return None
    flat = 0
    for axis, index in zip(axes, indices, strict=True):
        flat = flat * len(axis.values) + cast(int, index)
    return flat


def grid_axes(
    spec: RobotSpec,
    names: Sequence[str],
    training: dict[str, tuple[float, float]],
    points: int = DEFAULT_POINTS,
    spans: Sequence[tuple[float, float]] = (),
) -> list[Axis]:
    """The axes of a map over ``names`` (one or two parameters or effects).

    Args:
        spec: the robot.
        names: the axes, by name.
        training: the policy's training ranges by name (parameters and drawn effects; a fixed effect as
            ``(value, value)``).
        points: grid points per axis (a delay axis keeps whole steps only, so it may have fewer).
        spans: ``(low, high)`` per axis, or one for all; default: the training range, the nominal value and every
            shipped target's value, widened by a quarter of their span on each side (within the parameter's hard
            limits).

    Raises:
        ConfigError: naming the argument at fault (``params``, ``points``, ``spans``).
    """
    if not 1 <= len(names) <= 2:
        raise ConfigError(f"params: one or two axes, got {len(names)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"params: {', '.join(names)}: an axis appears twice")
    if points < 2:
        raise ConfigError(f"points: at least 2 points per axis, got {points}")
    if len(spans) not in (0, 1, len(names)):
        raise ConfigError(f"spans: give one range for every axis or one per axis ({len(names)}), got {len(spans)}")
    axes = []
    for index, name in enumerate(names):
        if name not in spec.parameters and name not in EFFECT_NAMES:
            raise ConfigError("params: " + unknown_name("parameter or effect", name, [*spec.parameters, *EFFECT_NAMES]))
        targets = {
            target: float(getattr(t.effects, name))
            if name in EFFECT_NAMES
            else t.parameters.get(name, spec.parameters[name].neutral)
            for target, t in spec.targets.items()
        }
        span = spans[0] if len(spans) == 1 else spans[index] if spans else None
        trained = training.get(name)
        low, high = span if span is not None else _default_span(spec, name, trained, targets)
        _check_span(spec, name, low, high)
        values = np.linspace(low, high, points)
        if name in STEP_EFFECTS:
            values = np.unique(np.round(values))
        neutral = 0.0 if name in EFFECT_NAMES else spec.parameters[name].neutral
        axes.append(Axis(name, tuple(float(v) for v in values), trained, targets, neutral))
    return axes


def _default_span(
    spec: RobotSpec, name: str, trained: tuple[float, float] | None, targets: dict[str, float]
) -> tuple[float, float]:
    nominal = 0.0 if name in EFFECT_NAMES else spec.parameters[name].neutral
    seen = [nominal, *targets.values(), *(trained or ())]
    low, high = min(seen), max(seen)
    if high == low:  # an effect (or an offset) that nothing uses: show a little of it
        if name in EFFECT_NAMES:
            high = 3.0 if name in STEP_EFFECTS else 0.05
        elif spec.parameters[name].offset:  # a tenth of its limits either side
            scale = spec.parameters[name].scale / 10
            low, high = max(spec.parameters[name].hard_limits[0], -scale), scale
        else:
            low, high = 0.5, 1.5
    pad = 0.25 * (high - low)
    if name in EFFECT_NAMES:
        return max(0.0, low - pad), min(float(MAX_DELAY), high + pad) if name in STEP_EFFECTS else high + pad
    limit_low, limit_high = spec.parameters[name].hard_limits
    return max(limit_low, low - pad), min(limit_high, high + pad)


def _check_span(spec: RobotSpec, name: str, low: float, high: float) -> None:
    if not low < high:
        raise ConfigError(f"spans: {name}: low {low:g} must be below high {high:g}")
    if name in EFFECT_NAMES:
        if low < 0 or (name in STEP_EFFECTS and high > MAX_DELAY):
            top = f"{MAX_DELAY}" if name in STEP_EFFECTS else "inf"
            raise ConfigError(f"spans: {name}: [{low:g}, {high:g}] is outside [0, {top}]")
        return
    limit_low, limit_high = spec.parameters[name].hard_limits
    try:
        check_multiplier(spec.parameters[name].kind, low)
    except ValueError as exc:
        raise ConfigError(f"spans: {name}: {exc}") from None
    if low < limit_low or high > limit_high:
        raise ConfigError(f"spans: {name}: [{low:g}, {high:g}] is outside its limits [{limit_low:g}, {limit_high:g}]")


def parse_span(text: str) -> tuple[float, float]:
    """``LOW:HIGH`` as two floats (raises :class:`ConfigError` naming ``spans``)."""
    pieces = text.split(":")
    try:
        if len(pieces) != 2:
            raise ValueError
        return float(pieces[0]), float(pieces[1])
    except ValueError:
        raise ConfigError(f"spans: expected LOW:HIGH (e.g. 0.5:1.5), got {shown(text)}") from None


def training_ranges(setup: Any) -> dict[str, tuple[float, float]]:
    """The training ranges of a resolved run (:class:`~simreal.runs.setup.TrainingSetup`) by name: its drawn
    parameters and effects, and its fixed effects as a point."""
    ranges = {name: (r.low, r.high) for name, r in setup.ranges.items()}
    for name in EFFECT_NAMES:
        value = float(getattr(setup.effects, name))
        if name not in ranges and value:
            ranges[name] = (value, value)
    return ranges


# -- evaluation: each worker process loads the policies once ------------------------------------------------------

_worker: dict[str, Any] = {}
#: one cell of one policy: (policy source, axis names, the cell's values, episodes, seed)
_Job = tuple[str, tuple[str, ...], tuple[float, ...], int, int]


def _load_worker(sources: tuple[str, ...], true_dynamics: bool, threads: int) -> None:
    import torch

    from simreal.runs.policy import load_policy

    torch.set_num_threads(threads)
    _worker.update({source: load_policy(source, device="cpu", true_dynamics=true_dynamics) for source in sources})


def _evaluate_cell(job: _Job) -> list[float]:
    from simreal.envs.vector import EnvFactory, vectorize
    from simreal.evaluate.evaluator import episode_returns

    source, names, values, episodes, seed = job
    policy = _worker[source]
    setup = policy.setup
    fixed = {n: v for n, v in zip(names, values, strict=True) if n not in EFFECT_NAMES}
    effects = Effects(
        **{n: round(v) if n in STEP_EFFECTS else v for n, v in zip(names, values, strict=True) if n not in fixed}
    )
    venv = vectorize(EnvFactory(setup.spec, None, fixed, effects), episodes, seed)
    try:
        returns = episode_returns(policy.runner(n_envs=episodes), venv, episodes, seed)
    finally:
        venv.close()
    return returns.returns


def _evaluate(
    sources: tuple[str, ...],
    loaded: dict[str, Any],
    names: tuple[str, ...],
    cells: list[tuple[float, ...]],
    episodes: int,
    seed: int,
    workers: int,
    true_dynamics: bool,
) -> list[list[list[float]]]:
    """Every cell's returns (``names``: the axes; ``cells``: their values), in the order given, for each policy in
    ``sources`` (``loaded``: those policies, loaded on the CPU by the caller, which evaluates with them; workers load
    their own). The calling process evaluates cells itself while ``workers - 1`` spawned processes start up and take
    cells too, one at a time from the same queue (a spawned worker needs a few seconds to import torch and load the
    policies: the caller does not wait for it). Every process loads every policy once, so a comparison costs no second
    start-up. Should the workers break (a process that cannot start or one that was killed), the calling process
    evaluates their cells: the numbers are the same whoever computes them. A main program read from standard input gets
    no workers (spawn re-runs the main program's file)."""
    import torch

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
                    workers - 1, context, initializer=_load_worker, initargs=(sources, true_dynamics, 1)
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
    points: int = DEFAULT_POINTS,
    spans: Sequence[tuple[float, float]] = (),
    episodes: int = 10,
    seed: int = 0,
    workers: int | None = None,
    against: str | os.PathLike[str] | None = None,
    true_dynamics: bool = False,
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

    Raises:
        ConfigError: bad axes, grid or ranges. DataError: a missing or corrupt run.
    """
    from simreal.runs.policy import load_policy

    policy = load_policy(source, true_dynamics=true_dynamics)
    spec = policy.setup.spec
    other = None
    if against is not None:
        other = load_policy(against, true_dynamics=true_dynamics)
        if other.robot != spec.robot:
            raise ConfigError(f"against: {against}: a {other.robot} policy, not {spec.robot}")
    axes = grid_axes(spec, params, training_ranges(policy.setup), points, spans)
    cells = list(itertools.product(*(axis.values for axis in axes)))
    nominal_index = _nominal_index(axes)
    # the nominal return is what coverage is relative to: one extra cell when the grid misses it
    if nominal_index is None:
        cells.append(tuple(axis.nominal for axis in axes))
    sources = (str(source), str(against)) if other else (str(source),)
    workers = max(1, min(workers or os.cpu_count() or 1, len(cells) * len(sources)))
    loaded = {str(source): policy, **({str(against): other} if other else {})}
    names = tuple(axis.name for axis in axes)
    evaluated = _evaluate(sources, loaded, names, cells, episodes, seed, workers, true_dynamics)
    nominals = [list(r[-1 if nominal_index is None else nominal_index]) for r in evaluated]
    if nominal_index is None:
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


def write_map(result: RobustnessMap, out: str | os.PathLike[str]) -> Path:
    """Write ``robustness.csv``, ``robustness.json``, ``robustness.png`` and ``tb/`` to ``out`` (the folder is
    built aside and swapped in whole). Returns ``out``.

    The JSON holds the map's ``meta``, ``axes`` (with ``against_training`` in a comparison), ``cells`` (the CSV's
    rows), ``returns`` (and ``against_returns``), ``nominal_returns`` (and ``against_nominal_returns``) and
    ``coverage``: ``{"policy": ..., "against": ...}``, each :meth:`~simreal.tools.coverage.Coverage.as_dict`.
    """
    out = Path(out)
    staged = staging_dir(out)
    rows = result.rows(result.meta.get("seed", 0))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (staged / "robustness.csv").write_text(buffer.getvalue())
    axes: list[dict[str, Any]] = [
        {"name": a.name, "values": list(a.values), "training": a.training, "targets": a.targets} for a in result.axes
    ]
    if result.against is not None and result.against_training is not None:
        for axis in axes:
            axis["against_training"] = result.against_training.get(axis["name"])
    document = {**result.meta, "axes": axes, "cells": rows, "returns": result.returns}
    document["nominal_returns"] = result.nominal
    if result.against is not None:
        document["against_returns"] = result.against
        document["against_nominal_returns"] = result.against_nominal
    coverage = map_coverage(result, result.meta.get("seed", 0))
    document["coverage"] = {name: c.as_dict() for name, c in coverage.items()}
    atomic_write_json(staged / "robustness.json", document)
    figure = plot_map(result, rows)
    figure.savefig(staged / "robustness.png", format="png", dpi=100)
    from torch.utils.tensorboard import SummaryWriter

    board = SummaryWriter(log_dir=str(staged / "tb"))
    try:
        board.add_figure("robustness/" + "_".join(a.name for a in result.axes), figure, close=False)
    finally:
        board.close()
    return replace_dir(staged, out)


def plot_map(result: RobustnessMap, rows: list[dict[str, Any]]) -> Any:
    """The map as a matplotlib figure: a curve with its CI band (1-D) or a heatmap (2-D), with the training range
    shaded or framed, the nominal value and each shipped target marked; with a comparison, the difference too."""
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure state

    compare = result.against is not None
    panels = 2 if compare else 1
    if len(result.axes) == 1:
        axis = result.axes[0]
        figure = Figure(figsize=(6.5 * panels, 4.2))
        plots = figure.subplots(1, panels, squeeze=False)
        x = np.array(axis.values)
        mean = [row["mean_return"] for row in rows]
        plots[0, 0].plot(x, mean, marker="o", label=_short(result.meta["policy"]))
        plots[0, 0].fill_between(x, [r["ci_low"] for r in rows], [r["ci_high"] for r in rows], alpha=0.25)
        if compare:
            plots[0, 0].plot(
                x, [r["against_mean_return"] for r in rows], marker="s", label=_short(result.meta["against"])
            )
            difference = [r["difference"] for r in rows]
            plots[0, 1].plot(x, difference, marker="o", color="black")
            band = ([r["difference_ci_low"] for r in rows], [r["difference_ci_high"] for r in rows])
            plots[0, 1].fill_between(x, *band, alpha=0.25, color="grey")
            plots[0, 1].axhline(0, color="grey", linewidth=0.8)
            plots[0, 1].set_ylabel("difference in mean return (95% CI)")
        for panel in plots[0]:
            _mark_1d(panel, axis)
            panel.set_xlabel(_label(axis))
        plots[0, 0].set_ylabel("mean return (95% CI)")
        plots[0, 0].legend(fontsize="small")
    else:
        first, second = result.axes
        figure = Figure(figsize=(6.5 * panels, 5.2))
        plots = figure.subplots(1, panels, squeeze=False)
        grids = [np.array([r["mean_return"] for r in rows]).reshape(result.shape)]
        titles = [f"mean return: {_short(result.meta['policy'])}"]
        if compare:
            grids.append(np.array([r["difference"] for r in rows]).reshape(result.shape))
            titles.append(f"difference: {_short(result.meta['policy'])} - {_short(result.meta['against'])}")
        for index, (grid, title) in enumerate(zip(grids, titles, strict=True)):
            panel = plots[0, index]
            kwargs: dict[str, Any] = {"cmap": "viridis", "shading": "nearest"}
            if index == 1:
                limit = float(np.max(np.abs(grid))) or 1.0
                kwargs.update(cmap="RdBu", vmin=-limit, vmax=limit)
            mesh = panel.pcolormesh(np.array(first.values), np.array(second.values), grid.T, **kwargs)
            figure.colorbar(mesh, ax=panel)
            _mark_2d(panel, first, second)
            panel.set_xlabel(_label(first))
            panel.set_ylabel(_label(second))
            panel.set_title(title, fontsize="medium")
    figure.suptitle(f"{result.meta['robot']}: {result.meta['episodes']} episodes per cell", fontsize="medium")
    figure.tight_layout()
    return figure


def _short(path: str | None) -> str:
    parts = Path(path or "").parts
    return parts[-2] if len(parts) >= 2 and parts[-1].endswith(".zip") else (parts[-1] if parts else "")


def _label(axis: Axis) -> str:
    return f"{axis.name} ({'value' if axis.effect else 'multiplier'})"


def _mark_1d(panel: Any, axis: Axis) -> None:
    if axis.training is not None:
        low, high = axis.training
        panel.axvspan(low, high, color="tab:green", alpha=0.12, label="training range")
    panel.axvline(axis.nominal, color="grey", linestyle=":", linewidth=1)
    for name, value in axis.targets.items():
        panel.axvline(value, color="tab:red", linestyle="--", linewidth=0.8)
        panel.annotate(name, (value, 1.0), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                       fontsize="x-small", color="tab:red")  # fmt: skip


def _mark_2d(panel: Any, first: Axis, second: Axis) -> None:
    from matplotlib.patches import Rectangle

    x0, x1 = first.training or (first.nominal, first.nominal)
    y0, y1 = second.training or (second.nominal, second.nominal)
    panel.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=1.5,
                              linestyle="--", label="training range"))  # fmt: skip
    panel.plot(first.nominal, second.nominal, marker="+", color="white", markersize=10)
    for name in first.targets:
        x, y = first.targets[name], second.targets[name]
        panel.plot(x, y, marker="x", color="tab:red", markersize=8)
        panel.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small", color="tab:red")
