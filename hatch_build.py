"""Hatch build hook: a wheel built from a git checkout records that checkout's commit, so ``run.json`` can name the
code a run came from also after a plain (non-editable) ``pip install .``."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

#: Where the record lies inside the installed package (read by ``simreal.runs.rundir.git_commit``).
TARGET = "simreal/_build_info.json"


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return  # an editable install runs from the checkout itself and asks git there
        info = _checkout_info(Path(self.root))
        if info is None:
            return  # built from an sdist or a copy without git: nothing to record
        record = Path(tempfile.mkdtemp(prefix="simreal-build-")) / "_build_info.json"
        record.write_text(json.dumps(info) + "\n", encoding="utf-8")
        build_data["force_include"][str(record)] = TARGET


def _checkout_info(root: Path) -> dict[str, Any] | None:
    if not (root / ".git").exists():
        return None
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"git_commit": commit, "dirty": dirty}


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True)
    return result.stdout.strip()
