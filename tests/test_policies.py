"""Every shipped policy in policies/ loads, evaluates from the command line, and gives back its model card's
evaluation on a target to the last digit (same seed, same numbers); each is small and has a card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simreal.cli import app

runner = CliRunner()
POLICIES = Path(__file__).resolve().parent.parent / "policies"
NAMES = sorted(p.name for p in POLICIES.iterdir() if p.is_dir())
#: the issue asks for these at least
EXPECTED = {
    "hopper_ppo_nominal",
    "hopper_ppo_dr_physics",
    "hopper_ppo_dr",
    "hopper_ppo_adr",
    "hopper_ppo_uposi",
    "hopper_ppo_rma",
    "inverted_pendulum_ppo_dr",
    "halfcheetah_ppo_dr",
}


def test_the_shipped_set():
    assert set(NAMES) >= EXPECTED
    listed = (POLICIES / "README.md").read_text()
    assert all(f"`{name}/`" in listed for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_policy_evaluates_and_reproduces_its_card(name, tmp_path):
    folder = POLICIES / name
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# `{name}`") and "| target: severe |" in card
    assert sum(f.stat().st_size for f in folder.iterdir()) < 1_000_000
    recorded = json.loads((folder / "eval.json").read_text())
    out = tmp_path / "eval.json"
    # the card's evaluation, on one target: the batch of episodes must be the same (the policy acts on all of them at
    # once, and a different batch size rounds differently, which a few hundred steps of a hopper amplify)
    args = ["evaluate", str(folder), "-t", "mild", "--episodes", str(recorded["episodes"])]
    result = runner.invoke(app, [*args, "--seed", str(recorded["seed"]), "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["robot"] == recorded["robot"]
    # the returns to the last digit (the bootstrap intervals differ: with one target fewer draws are made)
    for env in ("nominal", "randomized"):
        assert report["source"][env]["returns"] == recorded["source"][env]["returns"]
    assert report["targets"]["mild"]["returns"] == recorded["targets"]["mild"]["returns"]
