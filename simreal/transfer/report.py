"""The transfer pipeline's report: one row per stage (target return with its CI, return gap and relative gap, the
fraction of the gap closed, target steps used, wall-clock), as JSON, markdown, PNG plots and TensorBoard."""

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
            "label": label,
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
        rows.append(row)
    report = {
        "schema": SCHEMA,
        "target": config.target,
        "source": stages.get("source", {}).get("policy"),
        "seed": config.seed,
        "episodes": config.episodes,
        "eval_seed": config.eval_seed,
        "complete": all(name in stages for name in _enabled(config)),
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
    stages = {row["stage"]: row for row in report["stages"]}
    if "oracle" in stages and "mean_return" in stages["oracle"]:
        beaten = [
            row["label"]
            for row in report["stages"]
            if row["stage"] != "oracle" and row.get("mean_return", -np.inf) > stages["oracle"]["mean_return_ci95"][1]
        ]
        if beaten:
            notes.append(
                f"The oracle is not the best achievable here: {', '.join(beaten)} scored above its interval, so "
                "fractions above 1 mean beyond the oracle, not beyond perfect."
            )
    lines += ["", *(f"- {note}" for note in dict.fromkeys(notes))]
    lines += [
        "",
        "Gap: the policy's return at nominal source dynamics minus its target return. Fraction closed: "
        "(J_stage - J_zero_shot) / (J_oracle - J_zero_shot). Target steps so far: the adaptation chain's "
        "(system identification's recording, then fine-tuning); the from-scratch and oracle rows count their own. "
        "Evaluation episodes are not counted.",
    ]
    if not report["complete"]:
        lines += ["", "Incomplete: some enabled stages have not finished (run the same command again)."]
    return "\n".join(lines) + "\n"


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
            axes.axvline(match[0]["mean_return"], linestyle=style, color="grey", label=LABELS[name])
    axes.set_yticks(range(len(rows)), [row["label"] for row in rows])
    axes.invert_yaxis()
    axes.set_xlabel(f"return on {report['target']} (mean, 95% CI)")
    if rows:
        axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    atomic_write(out / "returns.png", lambda tmp: figure.savefig(tmp, format="png", dpi=100))

    figure = Figure(figsize=(8, 4.5))
    axes = figure.subplots()
    for name in ("scratch", "finetune", "oracle"):
        record = stages.get(name)
        curve = (read_json(Path(record["policy"]) / "finetune.json") or {}).get("curve") if record else None
        if not curve or not record.get("policy"):
            continue
        steps = [point["target_steps"] for point in curve]
        means = [point["mean_return"] for point in curve]
        axes.plot(steps, means, marker="o", label=LABELS[name])
        axes.fill_between(steps, *zip(*(point["mean_return_ci95"] for point in curve), strict=True), alpha=0.2)
    axes.set_xlabel("target steps used")
    axes.set_ylabel(f"return on {report['target']}")
    axes.set_title("sample efficiency on the target")
    if axes.lines:
        axes.legend(fontsize="small")
    figure.tight_layout()
    atomic_write(out / "curves.png", lambda tmp: figure.savefig(tmp, format="png", dpi=100))


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
