"""An identification's work: how its budget of CMA-ES evaluations is shared among its stages, each stage's work in
window rollouts (the plan a progress display measures against), and the progress reports its callback receives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from simreal.sysid.states import States

#: Default CMA-ES evaluations per identified parameter (CMA-ES needs more generations in more dimensions).
BUDGET_PER_PARAMETER = 600
#: The delay screening fits see at most this many windows (the delays' losses differ by far more than the noise).
SCREEN_WINDOWS = 50
#: The share of the budget that screens the candidate delays (at most: see ``SCREEN_DROP``).
SCREEN_SHARE = 0.3
#: Each delay's screen is compared with the others' this far through its share...
SCREEN_CHECKPOINT = 0.25
#: ... and goes no further when its loss is above this many times the best one's then.
SCREEN_DROP = 2.0
#: Independent robust fits (each on its own sample of windows) whose mean is the estimate on rebuilt states.
REPLICAS = 4
#: Stages of each robust fit: (share of its budget, CMA-ES initial step in log space).
STAGES = ((0.5, 0.2), (0.3, 0.05), (0.2, 0.02))


@dataclass(frozen=True)
class SysidProgress:
    """Where an identification stands, as its ``progress`` callback receives it.

    Attributes:
        stage: what runs now: ``"delay 2"`` and ``"delay 2, continued"`` (screening a candidate delay, in two
            parts: see ``SCREEN_DROP``), ``"fit 3/4, stage 1/3"`` (a robust fit;
            ``"fit"`` on recorded states), ``"intervals"`` (the sensitivities), ``"misfit check"``,
            ``"dynamics gap"``.
        evaluations: CMA-ES objective evaluations spent so far.
        budget: the evaluations planned in all (a fit stops early at the optimizer's precision, or overshoots by
            part of a generation).
        done: work done, in window rollouts (one candidate simulated over one window of K steps, the unit that
            costs time): every stage advances it, the checks after the fits too; it never decreases.
        total: the whole identification's work in that unit, the same on every call; ``done`` reaches it at the
            end.
        best: the current fit's best objective value (``None`` before the first fit's first generation); each
            fit and stage has its own objective (its windows, its robust scale), so it jumps between stages.
    """

    stage: str
    evaluations: int
    budget: int
    done: int
    total: int
    best: float | None


def fit_stage(replica: int, stage: int) -> str:
    """The name of a robust fit's stage, as :class:`SysidProgress` reports it."""
    return f"fit {replica + 1}/{REPLICAS}, stage {stage + 1}/{len(STAGES)}"


def stage_budget(budget: int, share: float) -> int:
    """The evaluations of a robust fit's stage: its ``share`` of the fit's ``budget``, at least one."""
    return max(int(budget * share), 1)


def budget_split(budget: int, delays: Sequence[int] | None) -> tuple[int, int]:
    """The evaluations each candidate delay's screen is planned to spend (0 without delays), and those left for the
    fits: what the screens were planned to spend is taken from the budget whether or not every delay was screened to
    the end."""
    if delays is None:
        return 0, max(budget, len(STAGES))
    share = int(budget * SCREEN_SHARE) // len(delays)
    return share, max(budget - share * len(delays), len(STAGES))


def plan(
    p: int, budget: int, delays: Sequence[int] | None, states: States, fit_windows: int, held_windows: int
) -> dict[str, int]:
    """Each stage's work in window rollouts, as :func:`~simreal.sysid.identify.identify` will run it (from the
    planned budget: a fit that stops early shifts a little work to the next ones, which the progress display
    absorbs)."""
    plan: dict[str, int] = {}
    share, remaining = budget_split(budget, delays)
    if delays is not None:
        checkpoint = int(share * SCREEN_CHECKPOINT)
        for d in delays:
            plan[f"delay {d}"] = checkpoint * min(SCREEN_WINDOWS, fit_windows)
        for d in delays:
            plan[f"delay {d}, continued"] = (share - checkpoint) * min(SCREEN_WINDOWS, fit_windows)
    if not states.rebuilt:
        fitted = fit_windows
        plan["fit"] = remaining * fit_windows
        plan["intervals"] = (2 * p + 1) * fitted
    else:
        fitted = REPLICAS * fit_windows
        for replica in range(REPLICAS):
            for stage, (stage_share, _) in enumerate(STAGES):
                # the median window error that re-centres the scale, then the stage's CMA-ES
                plan[fit_stage(replica, stage)] = (1 + stage_budget(remaining // REPLICAS, stage_share)) * fit_windows
        plan["intervals"] = (1 + 2 * p + 1) * fitted
    # the fitted errors, the noise-free predictions and two noisy draws (see uncertainty.check_misfit); nothing
    # without a noise level
    plan["misfit check"] = 0 if states.rebuilt and states.observation_noise is None else 4 * fitted
    plan["dynamics gap"] = 2 * (fitted + held_windows)
    return plan
