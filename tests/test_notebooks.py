"""The notebooks execute from top to bottom (on tiny budgets: SIMREAL_NOTEBOOK_QUICK=1) and hold no logic of their
own: every code cell calls the package."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["01_quickstart.ipynb", "02_system_identification.ipynb", "03_transfer.ipynb", "reality_gap.ipynb"]


def test_every_notebook_is_tested():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, monkeypatch):
    monkeypatch.setenv("SIMREAL_NOTEBOOK_QUICK", "1")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert any("import simreal" in c.source or "from simreal" in c.source for c in notebook.cells)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}})
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # every code cell ran and the figures were drawn
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code")
    images = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "no figure"
    assert os.environ["SIMREAL_NOTEBOOK_QUICK"] == "1"
