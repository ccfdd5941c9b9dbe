"""The README's example outputs are what the code gives (those that do not depend on the machine)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import simreal

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_python_snippets_dynamics_are_those_of_seed_0():
    line = next(line for line in README.splitlines() if line.startswith('info["dynamics"]  # {'))
    shown = line.split("# ", 1)[1].replace(", ...", "")
    values = ast.literal_eval(shown)
    _, info = simreal.make("hopper").reset(seed=0)
    assert len(values) >= 3
    for name, value in values.items():
        assert round(info["dynamics"][name], 2) == pytest.approx(value), name


def test_the_readme_names_no_issue_numbers():
    assert not re.search(r"\bissues? \d+", README, flags=re.IGNORECASE)
