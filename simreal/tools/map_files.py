"""A robustness map's files: ``robustness.csv``, ``robustness.json`` (with each policy's coverage of its training
range, see :mod:`simreal.tools.coverage`), ``robustness.png`` (curve or heatmap, with the training range and the
shipped targets marked) and ``tb/`` (the figure as a TensorBoard image).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simreal.fileio import atomic_write_json, replace_dir, staging_dir
from simreal.tools.coverage import map_coverage
from simreal.tools.grid import Axis
from simreal.tools.robustness import RobustnessMap

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


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


def plot_map(result: RobustnessMap, rows: list[dict[str, Any]]) -> Figure:
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


def _mark_1d(panel: Axes, axis: Axis) -> None:
    if axis.training is not None:
        low, high = axis.training
        panel.axvspan(low, high, color="tab:green", alpha=0.12, label="training range")
    panel.axvline(axis.nominal, color="grey", linestyle=":", linewidth=1)
    for name, value in axis.targets.items():
        panel.axvline(value, color="tab:red", linestyle="--", linewidth=0.8)
        panel.annotate(name, (value, 1.0), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right",
                       fontsize="x-small", color="tab:red")  # fmt: skip


def _mark_2d(panel: Axes, first: Axis, second: Axis) -> None:
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
