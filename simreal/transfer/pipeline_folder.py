"""A pipeline's output folder: the checks of the state file it holds (every recorded path inside the folder, the
first field where the recorded config differs from the one asked for), and its stages' folders (emptied of what an
interrupted attempt left, or kept for the checkpoint it left to resume from).

:func:`simreal.transfer.pipeline.run_pipeline` opens the state file (``pipeline.json``) and lays out the folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from simreal.errors import DataError, shown
from simreal.runs.rundir import resume_point

#: The fields of a stage's record that hold a path.
PATH_FIELDS = ("policy", "identified")


def check_state_paths(state: dict[str, Any], state_file: Path, source_run: str | None) -> None:
    """Every path a stage recorded is inside the pipeline's folder (the one holding ``state_file``), or is the
    config's own source run: a state edited to point elsewhere never makes a stage read another folder's files.

    Raises:
        DataError: naming the stage's field.
    """
    out = state_file.parent
    inside = out.resolve()
    for stage, record in state["stages"].items():
        if not isinstance(record, dict):
            raise DataError(f"{state_file}: stages.{stage}: expected an object")
        nested = [(f"candidates.{name}.", c) for name, c in (record.get("candidates") or {}).items()]
        for prefix, fields in [("", record), *nested]:
            for key in PATH_FIELDS:
                value = fields.get(key) if isinstance(fields, dict) else None
                if value is None:
                    continue
                allowed = source_run is not None and value == str(Path(source_run))  # zero-shot's policy too
                if not isinstance(value, str) or not (allowed or Path(value).resolve().is_relative_to(inside)):
                    raise DataError(f"{state_file}: stages.{stage}.{prefix}{key}: {shown(value)} is outside {out}")


def first_difference(before: Any, after: Any, prefix: str = "") -> str:
    """The dotted name of the first field where two configs (as JSON) differ; ``config`` for the whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in [*after, *(k for k in before if k not in after)]:
            if before.get(key) != after.get(key):
                return first_difference(before.get(key), after.get(key), f"{prefix}.{key}" if prefix else key)
    return prefix or "config"


def fresh_folder(out: Path, name: str) -> Path:
    """The stage's folder (``name``: relative to the output folder ``out``), emptied of what an interrupted attempt
    left."""
    folder = out / name
    if folder.exists():
        shutil.rmtree(folder)
    return folder


def training_folder(out: Path, name: str) -> tuple[Path, bool]:
    """A training stage's run directory, and whether an interrupted attempt left a checkpoint to resume from (else
    it starts empty)."""
    folder = out / name
    if folder.exists() and resume_point(folder).folder is not None:
        return folder, True
    return fresh_folder(out, name), False
