"""Robustness maps: the grid, the numbers (the same for any number of workers), the CSV, PNG and TensorBoard image,
comparisons, and bad options."""

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
from simreal.envs.spec import load_robot
from simreal.tools import robustness
from simreal.tools.robustness import grid_axes, robustness_map

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
