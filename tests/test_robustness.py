"""Robustness maps: the grid, the numbers (the same for any number of workers), the CSV, PNG and TensorBoard image,
comparisons, coverage of the training range, and bad options."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from simreal.cli import app
from simreal.envs.robots import load_robot
from simreal.tools import robustness
from simreal.tools.coverage import map_coverage
from simreal.tools.grid import Axis, grid_axes
from simreal.tools.robustness import RobustnessMap, robustness_map

runner = CliRunner()


@pytest.fixture
def policy(trained_run):
    return trained_run


def read_csv(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_a_1d_map_writes_csv_png_json_and_a_tensorboard_image(policy, tmp_path):
    out = tmp_path / "map"
    args = ["robustness", str(policy), "--params", "gravity", "--grid", "3", "--range", "0.5:2", "--episodes", "2"]
    result = runner.invoke(app, [*args, "--workers", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "robustness.csv")
    assert [float(r["gravity"]) for r in rows] == [0.5, 1.25, 2.0]
    for row in rows:
        assert int(row["episodes"]) == 2
        assert float(row["ci_low"]) <= float(row["mean_return"]) <= float(row["ci_high"])
    # the grid changes the dynamics: the returns are not all the same
    assert len({r["mean_return"] for r in rows}) == 3
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document = json.loads((out / "robustness.json").read_text())
    assert document["axes"][0]["name"] == "gravity" and set(document["axes"][0]["targets"]) == {
        "mild",
        "moderate",
        "severe",
    }
    assert [len(r) for r in document["returns"]] == [2, 2, 2]
    # gravity's training range (0.9-1.1) holds no cell of this grid, and nominal (1) is not on it: one extra cell
    coverage = document["coverage"]["policy"]
    assert set(document["coverage"]) == {"policy"} and coverage["threshold"] == 0.7
    assert coverage["nominal_from"] == "evaluation" and len(document["nominal_returns"]) == 2
    assert coverage["nominal_return"] == pytest.approx(sum(document["nominal_returns"]) / 2)
    gravity = coverage["axes"]["gravity"]
    assert gravity["training"] == {"gravity": [0.9, 1.1]} and gravity["worst_cell"] is None
    assert gravity["reason"] == "no grid cell inside the training range"
    assert 0 <= gravity["fraction_at_70"] <= 1 and gravity["measured_by"] == "length"
    printed = result.output.replace("\n", "")  # the console wraps long lines
    assert "policy (" in printed and "(an extra cell)" in printed
    assert "gravity: training 0.9-1.1; >= 70% of nominal on" in printed
    board = EventAccumulator(str(out / "tb"), size_guidance={"images": 0})
    board.Reload()
    assert board.Tags()["images"] == ["robustness/gravity"]


def test_the_numbers_do_not_depend_on_the_workers(policy):
    # three workers: the calling process and two spawned ones, each of which takes a cell as soon as it is asked;
    # both policies of a comparison go through the same workers, each cell's returns back to its own policy
    other = policy / "best" / "model.zip"
    one = robustness_map(policy, ["friction"], points=3, episodes=2, seed=4, workers=1, against=other)
    alone = robustness_map(other, ["friction"], points=3, episodes=2, seed=4, workers=1)
    three = robustness_map(policy, ["friction"], points=3, episodes=2, seed=4, workers=3, against=other)
    assert one.returns == three.returns
    assert one.against == three.against == alone.returns
    assert one.rows(4) == three.rows(4)
    assert one.nominal == three.nominal and one.against_nominal == three.against_nominal == alone.nominal


def test_a_2d_map_with_an_effect_axis_against_another_policy(policy, tmp_path):
    out = tmp_path / "map2"
    args = ["robustness", str(policy), "--params", "torso_mass,action_delay_steps", "--grid", "2", "--episodes", "1"]
    args += ["--range", "0.8:1.2", "--range", "0:3", "--against", str(policy / "best" / "model.zip")]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_csv(out / "robustness.csv")
    assert [(float(r["torso_mass"]), float(r["action_delay_steps"])) for r in rows] == [
        (0.8, 0.0),
        (0.8, 3.0),
        (1.2, 0.0),
        (1.2, 3.0),
    ]
    for row in rows:
        difference = float(row["mean_return"]) - float(row["against_mean_return"])
        assert float(row["difference"]) == pytest.approx(difference)
        assert float(row["difference_ci_low"]) <= float(row["difference"]) <= float(row["difference_ci_high"])
    assert (out / "robustness.png").stat().st_size > 0
    # each policy's coverage: torso mass on the slice with no delay (both cells in the training range 0.75-1.25);
    # no slice along the delay (a torso mass of 1 is not on the grid); the region without figures (the delay was
    # not randomized in training)
    document = json.loads((out / "robustness.json").read_text())
    assert set(document["coverage"]) == {"policy", "against"}
    for which, key in (("policy", "returns"), ("against", "against_returns")):
        coverage = document["coverage"][which]
        torso = coverage["axes"]["torso_mass"]
        slice_means = [sum(document[key][i]) / len(document[key][i]) for i in (0, 2)]  # delay 0
        assert torso["worst_return"] == pytest.approx(min(slice_means))
        assert torso["worst_relative"] == pytest.approx(min(slice_means) / coverage["nominal_return"])
        assert torso["worst_cell"]["action_delay_steps"] == 0.0
        assert coverage["nominal_from"] == "evaluation"
        assert coverage["axes"]["action_delay_steps"]["worst_relative"] is None
        assert "torso_mass's nominal value 1 is not on the grid" in coverage["axes"]["action_delay_steps"]["reason"]
        assert "action_delay_steps: not randomized in training" in coverage["region"]["reason"]
    assert document["axes"][0]["against_training"] == [0.75, 1.25]


def test_the_default_grid_spans_the_training_range_and_every_target():
    spec = load_robot("hopper")
    (axis,) = grid_axes(spec, ["torso_mass"], {"torso_mass": (0.75, 1.25)}, points=5)
    assert axis.values[0] < 0.75 and axis.values[-1] > max(
        t.parameters.get("torso_mass", 1) for t in spec.targets.values()
    )
    (delay,) = grid_axes(spec, ["action_delay_steps"], {}, points=9)
    assert all(v.is_integer() for v in delay.values) and delay.values[0] == 0 and delay.values[-1] >= 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--params", "wing_mass"], "--params: unknown parameter or effect 'wing_mass'"),
        (["--params", "gravity,friction,torso_mass"], "--params: one or two axes"),
        (["--params", "gravity", "--range", "2:1"], "--range: gravity: low 2 must be below high 1"),
        (["--params", "gravity", "--range", "0.5"], "--range: expected LOW:HIGH"),
        (["--params", "friction", "--range", "0:2"], "--range: friction: a friction multiplier must be > 0"),
        (["--params", "gravity", "--grid", "1"], "--grid: at least 2 points"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(policy, tmp_path, options, message):
    result = runner.invoke(app, ["robustness", str(policy), *options, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_a_program_read_from_standard_input_gets_the_same_map(policy):
    # spawned workers cannot re-run a program read from standard input: the calling process does every cell
    script = (
        "from simreal.tools.robustness import robustness_map\n"
        f"m = robustness_map({str(policy)!r}, ['friction'], points=3, episodes=2, seed=4, workers=2)\n"
        "print(repr(m.returns))\n"
    )
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    one = robustness_map(policy, ["friction"], points=3, episodes=2, seed=4, workers=1)
    assert done.stdout.strip().splitlines()[-1] == repr(one.returns)


def test_cells_of_a_broken_worker_pool_are_done_by_the_caller(policy, monkeypatch):
    class BrokenPool:  # every worker died (killed, out of memory) before returning a cell
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            future = Future()
            future.set_exception(BrokenProcessPool("a worker died"))
            return future

    one = robustness_map(policy, ["friction"], points=3, episodes=2, seed=4, workers=1)
    monkeypatch.setattr(robustness, "ProcessPoolExecutor", BrokenPool)
    assert robustness_map(policy, ["friction"], points=3, episodes=2, seed=4, workers=3).returns == one.returns


def hand_made_map(axes, returns, **changes):
    return RobustnessMap(axes, returns, meta={"seed": 0, "policy": "run"}, **changes)


def test_coverage_of_a_1d_map_ignores_the_cells_outside_the_training_range():
    # training range 0.75-1.25; the cells outside it (10 and 0) are the map's worst and must not count
    axis = Axis("gravity", (0.5, 0.75, 1.0, 1.25, 1.5), (0.75, 1.25), {})
    result = hand_made_map([axis], [[10, 10], [60, 60], [100, 100], [80, 40], [0, 0]])
    (coverage,) = map_coverage(result).values()
    assert coverage.nominal_return == 100 and coverage.nominal_from == "grid"
    gravity = coverage.axes["gravity"]
    assert gravity.worst_cell == {"gravity": 0.75} and gravity.worst_return == 60  # the first of two at 60
    assert gravity.worst_relative == pytest.approx(0.6)
    # resampling the cell at 1.25 ([80, 40]) gives 40, 60 or 80: the worst cell's 60 or 40 of the nominal 100
    assert gravity.worst_relative_ci == pytest.approx((0.4, 0.6))
    # the interpolated return is >= 70 from 0.8125 (60 -> 100) to 1.1875 (100 -> 60): 0.375 of the range's 0.5
    assert gravity.fraction_at_70 == pytest.approx(0.75) and gravity.measured_by == "length"
    assert gravity.range_on_grid == 1 and gravity.reason is None
    assert coverage.region is None


def test_coverage_without_a_training_range_or_a_positive_nominal_has_no_figures():
    untrained = Axis("friction", (0.5, 1.0, 1.5), None, {})
    (coverage,) = map_coverage(hand_made_map([untrained], [[1.0], [2.0], [3.0]])).values()
    friction = coverage.axes["friction"]
    assert friction.training == {"friction": None} and friction.worst_cell is None and friction.fraction_at_70 is None
    assert "not randomized in training" in friction.reason
    trained = Axis("friction", (0.5, 1.0, 1.5), (0.5, 1.5), {})
    (coverage,) = map_coverage(hand_made_map([trained], [[-5.0], [-1.0], [-3.0]])).values()
    friction = coverage.axes["friction"]
    assert friction.worst_return == -5 and friction.worst_relative is None and friction.fraction_at_70 is None
    assert "nominal return -1 <= 0" in friction.reason


def test_coverage_of_a_delay_axis_counts_cells_and_uses_the_extra_nominal_cell():
    # the grid has no delay 0: the nominal return comes from the extra cell; the range 1-3 has 3 whole steps, 2 on
    # the grid, one of which (return 50 of 100) is below 70%
    delay = Axis("action_delay_steps", (1.0, 2.0, 4.0), (1.0, 3.0), {})
    result = hand_made_map([delay], [[90.0], [50.0], [0.0]], nominal=[100.0])
    (coverage,) = map_coverage(result).values()
    assert coverage.nominal_return == 100 and coverage.nominal_from == "evaluation"
    figures = coverage.axes["action_delay_steps"]
    assert figures.worst_cell == {"action_delay_steps": 2.0} and figures.worst_relative == pytest.approx(0.5)
    assert figures.fraction_at_70 == 0.5 and figures.measured_by == "cells"
    assert figures.range_on_grid == pytest.approx(2 / 3)


def test_coverage_of_a_2d_comparison_per_axis_per_region_and_per_policy():
    mass = Axis("torso_mass", (0.5, 1.0, 1.5), (0.75, 1.5), {})
    delay = Axis("action_delay_steps", (0.0, 2.0), (0.0, 2.0), {})
    # cells (mass, delay): (0.5, 0) (0.5, 2) (1, 0) (1, 2) (1.5, 0) (1.5, 2)
    returns = [[0.0], [0.0], [100.0], [80.0], [90.0], [30.0]]
    against = [[50.0], [50.0], [50.0], [50.0], [50.0], [50.0]]
    result = hand_made_map([mass, delay], returns, against=against, against_training={"torso_mass": (0.5, 1.0)})
    coverages = map_coverage(result)
    coverage = coverages["policy"]
    assert coverage.nominal_return == 100 and coverage.nominal_from == "grid"
    # torso mass with no delay: cells 1.0 and 1.5 in range (0.5 is outside); the curve 0 -> 100 from 0.5 to 1 is
    # 50 at the range's low end, 0.75, and reaches 70 at 0.85: 0.65 of the range's 0.75 is at or above 70
    torso = coverage.axes["torso_mass"]
    assert torso.worst_cell == {"torso_mass": 1.5, "action_delay_steps": 0.0} and torso.worst_relative == 0.9
    assert torso.fraction_at_70 == pytest.approx(0.65 / 0.75) and torso.range_on_grid == pytest.approx(1.0)
    # delay at nominal mass: 100 then 80
    assert coverage.axes["action_delay_steps"].worst_relative == pytest.approx(0.8)
    assert coverage.axes["action_delay_steps"].fraction_at_70 == 1.0
    # the region: the four cells with mass 1 or 1.5; the worst is (1.5, 2) at 30; 3 of 4 at >= 70
    assert coverage.region.worst_cell == {"torso_mass": 1.5, "action_delay_steps": 2.0}
    assert coverage.region.worst_relative == pytest.approx(0.3) and coverage.region.fraction_at_70 == 0.75
    other = coverages["against"]
    assert other.nominal_return == 50 and other.axes["torso_mass"].worst_relative == 1.0
    assert other.axes["torso_mass"].training == {"torso_mass": (0.5, 1.0)}
    assert "not randomized in training" in other.axes["action_delay_steps"].reason


def test_coverage_of_a_fixed_effect_is_read_at_its_one_value():
    # trained with a fixed observation noise of 0.02: a single point, between the cells 0 and 0.05 (no cell in it);
    # the curve there is 100 - 60 * 0.4 = 76, at or above 70
    noise = Axis("obs_noise_std", (0.0, 0.05), (0.02, 0.02), {})
    (coverage,) = map_coverage(hand_made_map([noise], [[100.0], [40.0]])).values()
    figures = coverage.axes["obs_noise_std"]
    assert figures.fraction_at_70 == 1.0 and figures.range_on_grid == 1.0
    assert figures.worst_cell is None and figures.reason == "no grid cell inside the training range"
