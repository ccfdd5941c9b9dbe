"""What ``finetune.json`` reports beyond the curve: the final target return with its 95% bootstrap interval,
forgetting (the drop in source return), and the verdict against a from-scratch baseline run, whose report is read
and checked here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simreal.errors import ConfigError, DataError
from simreal.evaluate.gap import mean_return_ci, reality_gap
from simreal.fileio import read_json
from simreal.runs.setup import TrainingSetup
from simreal.transfer.config import FinetuneSettings

SCHEMA = "simreal.finetune/1"
REPORT = "finetune.json"


def summary(returns: list[float], rng: np.random.Generator) -> dict[str, Any]:
    """The mean of episode ``returns`` with its 95% bootstrap interval, and the returns."""
    low, high = mean_return_ci([returns], rng)
    return {"mean_return": float(np.mean(returns)), "mean_return_ci95": [low, high], "returns": returns}


def forgetting(before: list[float], after: list[float], rng: np.random.Generator) -> dict[str, Any]:
    """The source's return before and after fine-tuning, and the drop with its 95% bootstrap interval."""
    drop = reality_gap(before, after, rng)
    return {
        "source_before": summary(before, rng),
        "source_after": summary(after, rng),
        "drop": drop.gap,
        "drop_ci95": list(drop.gap_ci),
        "relative_drop": drop.relative_gap,
    }


def read_baseline(path: str | Path, setup: TrainingSetup, target: str, settings: FinetuneSettings) -> dict[str, Any]:
    """The report of the from-scratch run at ``path``, checked against the fine-tuning to judge.

    Raises:
        DataError: ``path`` holds no readable fine-tuning report.
        ConfigError: its robot, target, strategy or budget does not fit, naming the field.
    """
    report = read_json(Path(path) / REPORT)
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise DataError(f"{path}: baseline: not a fine-tuning run (no readable {REPORT})")
    checks = {
        "robot": (report.get("robot"), setup.spec.robot),
        "target": (report.get("target"), target),
        "settings.strategy": ((report.get("settings") or {}).get("strategy"), "scratch"),
        "budget.steps": ((report.get("budget") or {}).get("steps"), settings.steps),
    }
    for field, (theirs, ours) in checks.items():
        if theirs != ours:
            raise ConfigError(f"{path}/{REPORT}: {field}: {theirs!r}, expected {ours!r} for a from-scratch baseline")
    return report


def against_scratch(
    returns: list[float], baseline: dict[str, Any], path: str, rng: np.random.Generator
) -> dict[str, Any]:
    """Fine-tuned minus from-scratch final target return, with its CI; negative transfer when the whole interval is
    below 0, positive when above, else inconclusive."""
    theirs = baseline["final"]["returns"]
    difference = reality_gap(returns, theirs, rng)  # ours - theirs
    low, high = difference.gap_ci
    verdict = "negative" if high < 0 else "positive" if low > 0 else "inconclusive"
    return {
        "baseline": path,
        "scratch_mean_return": float(np.mean(theirs)),
        "difference": difference.gap,
        "difference_ci95": [low, high],
        "transfer": verdict,
    }
