"""Every shipped policy in policies/ loads, evaluates from the command line and agrees with its model card; each is
small and has a card.

What is reproducible where: on one machine (same CPU, same library builds) the same seed and the same ``--episodes``
give the same numbers to the last digit (checked here in one process). Across machines they do not: a CPU with other
vector instructions rounds the policy's matrix products differently, and a few hundred steps of a hopper amplify that
into other episodes. So the card's figures, made on another machine, are compared as a second sample of the same
return distribution: the means within a few standard errors, never float for float.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simreal.cli import app
from simreal.evaluate.evaluator import evaluate_run

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
    "pusher_ppo_dr",
    "reacher_ppo_dr",
}
#: standard errors two evaluations' means may differ by: for two samples of one distribution a larger difference has a
#: chance below 1e-4 per comparison (normal approximation), while a policy that loads wrongly (lost normalization,
#: another robot, a broken estimator) falls by many more
STANDARD_ERRORS = 4.0


def agrees_with_card(entry: dict, card: dict) -> tuple[bool, str]:
    """Whether an evaluation's mean return is that of the card's evaluation, as two samples of one distribution.

    The tolerance is ``STANDARD_ERRORS`` standard errors of the difference of the two means (Welch), plus 1% of the
    card's mean for policies whose episodes all return alike (a std of 0 on one machine, a little spread on another).
    """
    n_new, n_card = len(entry["returns"]), len(card["returns"])
    standard_error = math.sqrt(entry["std_return"] ** 2 / n_new + card["std_return"] ** 2 / n_card)
    tolerance = STANDARD_ERRORS * standard_error + 0.01 * abs(card["mean_return"]) + 1.0
    difference = entry["mean_return"] - card["mean_return"]
    figures = f"{entry['mean_return']:.1f} vs card {card['mean_return']:.1f} (±{tolerance:.1f})"
    return abs(difference) <= tolerance, figures


def test_the_shipped_set():
    assert set(NAMES) >= EXPECTED
    listed = (POLICIES / "README.md").read_text()
    assert all(f"`{name}/`" in listed for name in NAMES)


def test_the_agreement_rule_takes_a_resample_and_refuses_a_broken_policy():
    card = {"mean_return": 2695.3, "std_return": 622.5, "returns": [0.0] * 20}
    # another CPU: the same policy's episodes come out differently (the figures the issue reports: 2945 vs 2695)
    assert agrees_with_card({"mean_return": 2945.0, "std_return": 600.0, "returns": [0.0] * 20}, card)[0]
    # a policy that lost its normalization stands still or falls at once
    assert not agrees_with_card({"mean_return": 1000.0, "std_return": 50.0, "returns": [0.0] * 20}, card)[0]
    # episodes that all return alike: exactly the same, or a hair apart
    steady = {"mean_return": 1000.0, "std_return": 0.0, "returns": [1000.0] * 20}
    assert agrees_with_card(steady, steady)[0]
    assert agrees_with_card({**steady, "mean_return": 995.0}, steady)[0]
    assert not agrees_with_card({**steady, "mean_return": 500.0}, steady)[0]


@pytest.mark.parametrize("name", NAMES)
def test_a_shipped_policy_evaluates_and_agrees_with_its_card(name, tmp_path):
    folder = POLICIES / name
    card = (folder / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# `{name}`") and "| target: severe |" in card
    assert sum(f.stat().st_size for f in folder.iterdir()) < 1_000_000
    recorded = json.loads((folder / "eval.json").read_text())
    out = tmp_path / "eval.json"
    args = ["evaluate", str(folder), "-t", "mild", "--episodes", str(recorded["episodes"])]
    result = runner.invoke(app, [*args, "--seed", str(recorded["seed"]), "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["robot"] == recorded["robot"] and report["episodes"] == recorded["episodes"]
    pairs = {env: (report["source"][env], recorded["source"][env]) for env in ("nominal", "randomized")}
    pairs["mild"] = (report["targets"]["mild"], recorded["targets"]["mild"])
    for env, (entry, on_card) in pairs.items():
        assert len(entry["returns"]) == recorded["episodes"]
        agrees, figures = agrees_with_card(entry, on_card)
        assert agrees, f"{name} on {env}: {figures}"


def test_same_seed_same_numbers_on_one_machine():
    folder = POLICIES / "hopper_ppo_dr"
    first, second = (evaluate_run(folder, targets=["mild"], episodes=4, seed=7) for _ in range(2))
    assert first["source"]["nominal"]["returns"] == second["source"]["nominal"]["returns"]
    assert first["targets"]["mild"]["returns"] == second["targets"]["mild"]["returns"]


def test_the_main_job_card_says_how_to_train_it_again_with_todays_config():
    """The shipped config kept moving after the policy was trained: the card's command still resolves to the
    shipped policy's own config, field for field."""
    import re

    import yaml

    from simreal.runs.config import TrainConfig
    from simreal.runs.config_files import load_config

    folder = POLICIES / "hopper_ppo_dr"
    found = re.search(
        r"- reproduce: `simreal train (\S+) --seed (\d+)((?: --set \S+)*)`", (folder / "MODEL_CARD.md").read_text()
    )
    assert found is not None
    overrides = [f"seed={found.group(2)}", *re.findall(r"--set (\S+)", found.group(3))]
    shipped = TrainConfig.model_validate(yaml.safe_load((folder / "config.yaml").read_text()))
    assert load_config(found.group(1), overrides) == shipped
