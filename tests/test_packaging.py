"""The wheel carries envs/ and configs/, so a non-editable install works outside the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_ships_specs_and_works_outside_the_checkout(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", str(REPO), "--no-deps", "--no-build-isolation", "-w", tmp_path],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("simreal-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for spec in (REPO / "envs").glob("*.yaml"):
        assert f"simreal/_data/envs/{spec.name}" in names
    for config in (REPO / "configs").glob("*.yaml"):
        assert f"simreal/_data/configs/{config.name}" in names

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel],
        check=True,
        capture_output=True,
    )
    code = (
        "import simreal, simreal.resources as r; "
        "assert '_data' in str(r.envs_dir()), r.envs_dir(); "
        "env = simreal.make('hopper', target='severe'); "
        "print(simreal.get_dynamics(env)['torso_mass'])"
    )
    # run from an empty folder with only the installed copy on the path, not the checkout
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "1.5"

    # the installed copy names the commit it was built from (run.json records it), not "no git checkout"
    if (REPO / ".git").exists():
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
        code = "import json, simreal.runs.rundir as r; print(json.dumps(r.git_commit()))"
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
        )
        recorded = json.loads(result.stdout)
        assert recorded["git_commit"] == head.stdout.strip()
        assert recorded["git_commit_note"].startswith("recorded when the installed package was built")
