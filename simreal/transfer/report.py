"""The transfer pipeline's report: one row per stage (target return with its CI, return gap and relative gap, the
fraction of the gap closed, target steps used, wall-clock), as JSON, markdown, PNG plots and TensorBoard.

The oracle's row says which candidate it is (``winner``), each candidate's target return with its CI
(``candidates``) and the winner's margin over the runner-up with its CI (``won_by``). The fractions of the gap
closed are measured against the oracle's returns; they mean something only where the oracle's interval lies above
zero-shot's (``fractions_meaningful``), and the report says so where it does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simreal.evaluate.gap import fraction_closed
from simreal.fileio import atomic_write, atomic_write_json, atomic_write_text, read_json, replace_dir, staging_dir
from simreal.transfer.config import TransferConfig

SCHEMA = "simreal.transfer/1"
LABELS = {
    "zero_shot": "zero-shot",
    "sysid": "system identification",
    "identified": "trained in the identified simulator",
    "scratch": "from scratch on the target (same budget)",
    "finetune": "fine-tuned on the target",
    "oracle": "oracle (trained on the target)",
}
#: What each oracle candidate is (the oracle row's label names the winner).
CANDIDATE_LABELS = {
    "finetuned": "the sim policy fine-tuned on the target",
    "scratch": "a fresh policy trained from scratch on the target",
    "run": "an existing run",
}


def write_report(config: TransferConfig, out: Path, state: dict[str, Any]) -> dict[str, Any]:
    """Write ``report.json``, ``report.md``, ``returns.png``, ``curves.png`` and ``tb/`` from the finished stages.

    A stage that has not run yet is absent; the fraction of the gap closed needs the zero-shot and oracle stages.
    """
    stages = state["stages"]
    rng = np.random.default_rng(config.eval_seed)
    zero = stages.get("zero_shot", {}).get("evaluation")
    oracle = stages.get("oracle", {}).get("evaluation")
    rows = []
    for name, label in LABELS.items():
        record = stages.get(name)
        if record is None:
            continue
        row: dict[str, Any] = {
            "stage": name,
            "label": _oracle_label(record) if name == "oracle" else label,
            "target_steps": record.get("target_steps", 0),
            "target_steps_total": record.get("target_steps_total", 0),
            "seconds": record.get("seconds"),
        }
        evaluation = record.get("evaluation")
        if evaluation is not None:
            row.update({key: value for key, value in evaluation.items() if key != "returns"})
            if name in ("zero_shot", "oracle"):
                # the references themselves: 0 and 1 by definition (resampling one set against itself is no test)
                row.update(fraction_closed=0.0 if name == "zero_shot" else 1.0, fraction_closed_ci95=None)
                row["fraction_undefined"] = None
            elif zero is not None and oracle is not None:
                closed = fraction_closed(zero["returns"], evaluation["returns"], oracle["returns"], rng)
                row.update(closed.as_dict())
        for key in ("dynamics_gap", "misfit_flagged", "mean_relative_error", "forgetting", "against_scratch"):
            if key in record:
                row[key] = _without_returns(record[key])
        if name == "oracle" and "winner" in record:
            row.update(winner=record["winner"], won_by=record["won_by"], candidates=_candidates(record))
        rows.append(row)
    meaningful = None
    if zero is not None and oracle is not None:
        # the fractions are measured against the oracle: they say something only when it is clearly above zero-shot
        meaningful = oracle["mean_return_ci95"][0] > zero["mean_return_ci95"][1]
    report = {
        "schema": SCHEMA,
        "target": config.target,
        "source": stages.get("source", {}).get("policy"),
        "seed": config.seed,
        "episodes": config.episodes,
        "eval_seed": config.eval_seed,
        "complete": all(name in stages for name in _enabled(config)),
        "fractions_meaningful": meaningful,
        "stages": rows,
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown(report))
    _plots(out, report, stages)
    _tensorboard(out, report)
    return report


def _enabled(config: TransferConfig) -> list[str]:
    stages = config.stages
    names = [n for n in ("zero_shot", "sysid", "identified", "finetune", "oracle") if getattr(stages, n).enabled]
    if stages.finetune.enabled and stages.finetune.scratch_baseline:
        names.append("scratch")
    return names


def _oracle_label(record: dict[str, Any]) -> str:
    winner = record.get("winner")
    return f"oracle: {CANDIDATE_LABELS[winner]}" if winner in CANDIDATE_LABELS else LABELS["oracle"]


def _candidates(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each oracle candidate's target return with its CI, its target steps and its run directory."""
    return {
        name: {
            "label": CANDIDATE_LABELS.get(name, name),
            "mean_return": candidate["evaluation"]["mean_return"],
            "mean_return_ci95": candidate["evaluation"]["mean_return_ci95"],
            "target_steps": candidate["target_steps"],
            "policy": candidate["policy"],
        }
        for name, candidate in record["candidates"].items()
    }


def _without_returns(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_returns(v) for k, v in value.items() if k != "returns"}
    return value


def _interval(values: list[float] | None, digits: int = 0, percent: bool = False) -> str:
    if not values:
        return ""
    low, high = values
    return f"[{low:.{digits}%}, {high:.{digits}%}]" if percent else f"[{low:.{digits}f}, {high:.{digits}f}]"


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table with notes."""
    lines = [
        f"# Transfer to `{report['target']}`",
        "",
        f"Source policy: `{report['source']}`; seed {report['seed']}; every stage evaluated on the same "
        f"{report['episodes']} target episodes (seed {report['eval_seed']}); 95% bootstrap intervals.",
        "",
        "| stage | target return [95% CI] | gap [95% CI] | relative gap [95% CI] | fraction of gap closed [95% CI] "
        "| target steps (stage) | target steps so far | wall-clock |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    for row in report["stages"]:
        if "mean_return" in row:
            ret = f"{row['mean_return']:.1f} {_interval(row['mean_return_ci95'])}"
            gap = f"{row['gap']:.1f} {_interval(row['gap_ci95'])}"
            rel = f"{row['relative_gap']:.1%} {_interval(row['relative_gap_ci95'], 1, percent=True)}"
        else:
            ret = gap = rel = ""
        if row["stage"] in ("zero_shot", "oracle") and row.get("fraction_closed") is not None:
            closed = f"{row['fraction_closed']:.0f} (reference)"
        elif row.get("fraction_closed") is not None:
            closed = f"{row['fraction_closed']:.2f} {_interval(row['fraction_closed_ci95'], 2)}"
        elif row.get("fraction_undefined"):
            closed = "undefined"
            notes.append(f"Fraction of the gap closed undefined: {row['fraction_undefined']}.")
        else:
            closed = ""
        seconds = f"{row['seconds']:.0f} s" if row.get("seconds") is not None else ""
        lines.append(
            f"| {row['label']} | {ret} | {gap} | {rel} | {closed} | {row['target_steps']} | "
            f"{row['target_steps_total']} | {seconds} |"
        )
        if "dynamics_gap" in row:
            parts = ", ".join(
                f"{part}: {gap['nominal']:.3g} -> {gap['identified']:.3g}" for part, gap in row["dynamics_gap"].items()
            )
            notes.append(f"Dynamics gap (K-step prediction error, nominal -> identified simulator): {parts}.")
            if row.get("misfit_flagged"):
                notes.append("System identification flagged a misfit: the model does not explain the recording.")
        if "against_scratch" in row:
            against = row["against_scratch"]
            notes.append(
                f"Fine-tuned minus from-scratch: {against['difference']:+.1f} {_interval(against['difference_ci95'])}"
                f": {against['transfer']} transfer."
            )
        if "forgetting" in row:
            forgetting = row["forgetting"]
            notes.append(
                f"Forgetting (drop of the source return at nominal dynamics): {forgetting['drop']:.1f} "
                f"{_interval(forgetting['drop_ci95'])}."
            )
        if row.get("candidates"):
            notes.append(_oracle_note(row))
    oracle_note = _oracle_strength_note(report)
    if oracle_note:
        notes.append(oracle_note)
    lines += ["", *(f"- {note}" for note in dict.fromkeys(notes))]
    lines += [
        "",
        "Gap: the policy's return at nominal source dynamics minus its target return. Fraction closed: "
        "(J_stage - J_zero_shot) / (J_oracle - J_zero_shot), J_oracle the better, by mean target return, of the "
        "oracle's candidates (the sim policy fine-tuned on the target, a fresh policy trained there from scratch; "
        "each with the sim budget). Target steps so far: the adaptation chain's "
        "(system identification's recording, then fine-tuning); the from-scratch and oracle rows count their own. "
        "Evaluation episodes are not counted.",
    ]
    if not report["complete"]:
        lines += ["", "Incomplete: some enabled stages have not finished (run the same command again)."]
    return "\n".join(lines) + "\n"


def _oracle_strength_note(report: dict[str, Any]) -> str | None:
    """Why the oracle is not the best achievable here, when it is not: its interval not above zero-shot's, or
    stages that scored above it."""
    stages = {row["stage"]: row for row in report["stages"]}
    if "oracle" not in stages or "mean_return" not in stages["oracle"]:
        return None
    oracle = stages["oracle"]
    beaten = [
        row["label"]
        for row in report["stages"]
        if row["stage"] != "oracle" and row.get("mean_return", -np.inf) > oracle["mean_return_ci95"][1]
    ]
    reasons = []
    below = report.get("fractions_meaningful") is False
    if below:
        zero = stages["zero_shot"]
        reasons.append(
            f"its interval {_interval(oracle['mean_return_ci95'])} does not lie above zero-shot's "
            f"{_interval(zero['mean_return_ci95'])}"
        )
    if beaten:
        reasons.append(f"{', '.join(beaten)} scored above its interval")
    if not reasons:
        return None
    consequence = (
        "the fractions of the gap closed are not meaningful (read the target returns instead)"
        if below
        else "fractions above 1 mean beyond the oracle, not beyond perfect"
    )
    return f"The oracle is not the best achievable here: {'; '.join(reasons)}, so {consequence}."


def _oracle_note(row: dict[str, Any]) -> str:
    """Which candidate the oracle is, each candidate's target return, and by how much the winner won."""
    candidates, winner, won_by = row["candidates"], row["winner"], row["won_by"]

    def described(name: str) -> str:
        candidate = candidates[name]
        interval = _interval(candidate["mean_return_ci95"])
        return f"{candidate['label']} ({name}), {candidate['mean_return']:.1f} {interval}"

    if won_by is None:
        return f"Oracle: {described(winner)}, the only candidate."
    low, _ = won_by["difference_ci95"]
    clear = "" if low > 0 else " (the interval reaches 0: the candidates are not clearly apart)"
    return (
        f"Oracle: {described(winner)}, the better of its candidates on the target, ahead by "
        f"{won_by['difference']:+.1f} {_interval(won_by['difference_ci95'], 1)}{clear} of "
        f"{described(won_by['runner_up'])}."
    )


def _plots(out: Path, report: dict[str, Any], stages: dict[str, Any]) -> None:
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure state

    rows = [row for row in report["stages"] if "mean_return" in row]
    figure = Figure(figsize=(8, 0.6 * max(len(rows), 2) + 1.2))
    axes = figure.subplots()
    for index, row in enumerate(rows):
        low, high = row["mean_return_ci95"]
        axes.errorbar(row["mean_return"], index, xerr=[[row["mean_return"] - low], [high - row["mean_return"]]],
                      fmt="o", capsize=4)  # fmt: skip
    for name, style in (("zero_shot", ":"), ("oracle", "--")):
        match = [row for row in rows if row["stage"] == name]
        if match:
            axes.axvline(match[0]["mean_return"], linestyle=style, color="grey", label=match[0]["label"])
    axes.set_yticks(range(len(rows)), [row["label"] for row in rows])
    axes.invert_yaxis()
    axes.set_xlabel(f"return on {report['target']} (mean, 95% CI)")
    if rows:
        axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    atomic_write(out / "returns.png", lambda tmp: figure.savefig(tmp, format="png", dpi=100))

    figure = Figure(figsize=(8, 4.5))
    axes = figure.subplots()
    for label, policy in _curve_runs(stages):
        curve = (read_json(Path(policy) / "finetune.json") or {}).get("curve")
        if not curve:
            continue
        steps = [point["target_steps"] for point in curve]
        means = [point["mean_return"] for point in curve]
        axes.plot(steps, means, marker="o", label=label)
        lows, highs = zip(*(point["mean_return_ci95"] for point in curve), strict=True)
        axes.fill_between(steps, lows, highs, alpha=0.2)
    axes.set_xlabel("target steps used")
    axes.set_ylabel(f"return on {report['target']}")
    axes.set_title("sample efficiency on the target")
    if axes.lines:
        axes.legend(fontsize="small")
    figure.tight_layout()
    atomic_write(out / "curves.png", lambda tmp: figure.savefig(tmp, format="png", dpi=100))


def _curve_runs(stages: dict[str, Any]) -> list[tuple[str, str]]:
    """The fine-tuning runs with a sample-efficiency curve: from-scratch, fine-tuning and each oracle candidate."""
    runs = [(LABELS[name], stages[name].get("policy")) for name in ("scratch", "finetune") if name in stages]
    oracle = stages.get("oracle") or {}
    candidates = oracle.get("candidates") or {}
    if oracle and not candidates:
        runs.append((LABELS["oracle"], oracle.get("policy")))
    for name, candidate in candidates.items():
        suffix = " (the oracle)" if name == oracle["winner"] and len(candidates) > 1 else ""
        runs.append((f"oracle candidate: {CANDIDATE_LABELS.get(name, name)}{suffix}", candidate.get("policy")))
    return [(label, policy) for label, policy in runs if policy]


def _tensorboard(out: Path, report: dict[str, Any]) -> None:
    """``tb/``: each stage's target return, fraction closed and target steps (x: the stage's position), and the
    markdown table; rewritten whole each time (staged, then swapped in)."""
    from torch.utils.tensorboard import SummaryWriter

    staged = staging_dir(out / "tb")
    writer = SummaryWriter(log_dir=str(staged))
    try:
        for index, row in enumerate(report["stages"]):
            if "mean_return" in row:
                writer.add_scalar("pipeline/target_return", row["mean_return"], index)
                writer.add_scalar("pipeline/relative_gap", row["relative_gap"], index)
            if row.get("fraction_closed") is not None:
                writer.add_scalar("pipeline/fraction_closed", row["fraction_closed"], index)
            writer.add_scalar("pipeline/target_steps_total", row["target_steps_total"], index)
        writer.add_text("pipeline/report", markdown(report))
    finally:
        writer.close()
    replace_dir(staged, out / "tb")
