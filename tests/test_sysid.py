"""System identification: recording, data files, states from observations, recovering known parameters."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

import simreal
from simreal.cli import app
from simreal.envs.robots import load_robot
from simreal.errors import DataError
from simreal.sysid.collect import collect
from simreal.sysid.identify import identify
from simreal.sysid.states import rebuild_states
from simreal.sysid.trajectories import as_arrays, load_trajectories, save_trajectories

runner = CliRunner()
TRUTH = {"pole_mass": 1.3, "cart_mass": 0.8}


@pytest.fixture(scope="module")
def pendulum_data():
    return collect("random", "inverted_pendulum", target={"parameters": TRUTH}, episodes=12, seed=0)


@pytest.fixture(scope="module")
def delayed_pendulum_data():
    """The same pendulum with one control step of action delay."""
    target = {"parameters": TRUTH, "effects": {"action_delay_steps": 1}}
    return collect("random", "inverted_pendulum", target=target, episodes=12, seed=3)


@pytest.mark.parametrize("suffix", [".npz", ".csv"])
def test_recordings_round_trip_through_npz_and_csv(tmp_path, pendulum_data, suffix):
    path = save_trajectories(pendulum_data, tmp_path / f"data{suffix}")
    loaded = load_trajectories(path, "inverted_pendulum")
    for field in ("episode", "step", "observations", "actions", "rewards", "terminated", "truncated", "qpos", "qvel"):
        assert np.allclose(getattr(loaded, field), getattr(pendulum_data, field)), field
    assert loaded.meta["dynamics"]["pole_mass"] == 1.3 and loaded.meta["robot"] == "inverted_pendulum"


def test_states_rebuilt_from_observations_match_the_recorded_ones():
    data = collect("random", "hopper", target="mild", episodes=3, seed=1)
    spec = load_robot("hopper")
    qpos, qvel, exact = rebuild_states(data, spec, nq=6, nv=6)
    assert np.all(qpos[:, 0] == 0.0)  # x is not observed, and hopper's dynamics do not depend on it
    assert exact.any()
    # mild has observation noise: the rebuilt state is the noisy observation of the true one
    assert np.allclose(qpos[exact, 1:], data.qpos[exact, 1:], atol=0.05)
    assert np.allclose(qvel[exact], data.qvel[exact], atol=0.05)
    assert not np.allclose(qpos[:, 1:], data.qpos[:, 1:], atol=1e-9)


def test_identify_recovers_known_parameters_and_the_yaml_round_trips(tmp_path, pendulum_data):
    fitted = pendulum_data.select(pendulum_data.episodes[:10])
    held = pendulum_data.select(pendulum_data.episodes[10:])
    result = identify(
        fitted, "inverted_pendulum", ["pole_mass", "cart_mass"], horizon=3, budget=150, seed=0, holdout=held
    )
    assert result.errors()["pole_mass"] < 0.02 and result.errors()["cart_mass"] < 0.02
    assert all(result.identifiable.values())
    assert result.gap["fitted"]["identified"] * 5 < result.gap["fitted"]["nominal"]
    assert result.gap["held_out"]["identified"] * 5 < result.gap["held_out"]["nominal"]

    path = tmp_path / "identified.yaml"
    path.write_text(yaml.safe_dump(result.target_yaml("data.npz")))
    env = simreal.make("inverted_pendulum", target=path)
    assert simreal.get_dynamics(env)["pole_mass"] == pytest.approx(result.estimate["pole_mass"])
    from simreal.runs.setup import load_setup

    ranges = load_setup("inverted_pendulum_ppo_dr", [f"randomization.ranges={path}"]).ranges
    low, high = result.ranges()["pole_mass"]
    assert ranges["pole_mass"].low == pytest.approx(low) and ranges["pole_mass"].high == pytest.approx(high)
    assert low < result.estimate["pole_mass"] < high


def test_identify_finds_an_action_delay(delayed_pendulum_data):
    result = identify(
        delayed_pendulum_data,
        "inverted_pendulum",
        ["pole_mass", "cart_mass"],
        horizon=3,
        budget=240,
        seed=0,
        delays=range(4),
    )
    assert result.delay == 1
    assert min(result.delay_losses, key=result.delay_losses.get) == 1


def test_noisy_observations_are_smoothed_and_their_noise_reported():
    effects = {"obs_noise_std": 0.01}
    data = collect("random", "hopper", target={"parameters": {}, "effects": effects}, episodes=8, seed=0)
    common = dict(horizon=3, budget=16, max_windows=10, use_observations=True)
    smoothed = identify(data, "hopper", ["torso_mass"], **common).as_dict()
    assert smoothed["states"] == "rebuilt from observations, positions smoothed"
    assert sorted(smoothed["position_noise"]) == [f"qpos_{i}" for i in range(1, 6)]
    assert all(0.007 < v < 0.013 for v in smoothed["position_noise"].values())
    raw = identify(data, "hopper", ["torso_mass"], smooth=False, **common).as_dict()
    assert raw["states"] == "rebuilt from observations" and raw["position_noise"] == {}
    # the smoothed states are closer to the truth, so nominal dynamics (the truth here) predict them better
    assert smoothed["dynamics_gap"]["fitted"]["nominal"] < raw["dynamics_gap"]["fitted"]["nominal"]


def bad_file(tmp_path, data, **changes):
    arrays = as_arrays(data)
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actions": None}, "actions: missing"),
        ({"rewards": np.zeros(3)}, "rewards: 3 rows, but episode has"),
        ("nan", "observations: NaN or inf at row 4"),
        ("wide", "observations: 5 values per row, inverted_pendulum observes 4"),
    ],
)
def test_bad_data_files_give_one_line_and_exit_2(tmp_path, pendulum_data, change, message):
    if change == "nan":
        observations = pendulum_data.observations.copy()
        observations[4, 1] = np.nan
        change = {"observations": observations}
    elif change == "wide":
        change = {"observations": np.hstack([pendulum_data.observations, np.zeros((len(pendulum_data), 1))])}
    path = bad_file(tmp_path, pendulum_data, **change)
    with pytest.raises(DataError, match=message):
        load_trajectories(path, "inverted_pendulum")
    result = runner.invoke(app, ["sysid", str(path), "--robot", "inverted_pendulum", "--budget", "10"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: {message}" + result.stderr.split(message, 1)[1].rstrip()
    ]


def test_sysid_cli_writes_yaml_and_refuses_unknown_parameters(tmp_path, pendulum_data):
    data = save_trajectories(pendulum_data, tmp_path / "data.csv")
    out = tmp_path / "id.yaml"
    result = runner.invoke(
        app,
        [
            "sysid",
            str(data),
            "--robot",
            "inverted_pendulum",
            "--params",
            "pole_mass",
            "--horizon",
            "3",
            "--budget",
            "40",
            "--out",
            str(out),
            "--json",
            str(tmp_path / "id.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(out.read_text())
    assert written["base"] == "inverted_pendulum" and set(written["ranges"]) == {"pole_mass"}
    bad = runner.invoke(app, ["sysid", str(data), "--robot", "inverted_pendulum", "--params", "tail_mass"])
    assert bad.exit_code == 2 and "--params: unknown parameter 'tail_mass'" in bad.stderr
    collected = runner.invoke(
        app, ["collect", "random", "--robot", "hopper", "--episodes", "1", "--out", str(tmp_path / "x.txt")]
    )
    assert collected.exit_code == 2 and "unknown data format" in collected.stderr


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_an_empty_or_truncated_npz_is_one_line(tmp_path, pendulum_data, damage):
    path = tmp_path / "damaged.npz"
    save_trajectories(pendulum_data, path)
    whole = path.read_bytes()
    path.write_bytes(b"" if damage == "empty" else whole[: len(whole) // 2])
    result = runner.invoke(app, ["sysid", str(path), "--robot", "inverted_pendulum", "--budget", "10"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: not a readable .npz file"), lines


def test_a_true_value_of_zero_gives_an_absolute_error(tmp_path):
    data = collect("random", "inverted_pendulum", target={"parameters": {"hinge_damping": 0.0}}, episodes=8, seed=2)
    result = identify(data, "inverted_pendulum", ["hinge_damping", "pole_mass"], horizon=3, budget=60, seed=0)
    report = json.loads(json.dumps(result.as_dict()))  # JSON-ready: no inf, no NaN
    row = report["parameters"]["hinge_damping"]
    assert row["truth"] == 0.0 and row["relative_error"] is None
    assert row["absolute_error"] == pytest.approx(result.estimate["hinge_damping"])
    assert report["mean_relative_error"] == pytest.approx(report["parameters"]["pole_mass"]["relative_error"])


def test_sysid_writes_its_files_before_printing(tmp_path, pendulum_data, monkeypatch):
    import importlib

    sysid_cli = importlib.import_module("simreal.cli.sysid")  # the module, not the command it defines

    data, out, json_out = tmp_path / "data.npz", tmp_path / "fit.yaml", tmp_path / "fit.json"
    save_trajectories(pendulum_data, data)

    def broken_terminal(*args, **kwargs):
        raise OSError("the terminal went away")

    monkeypatch.setattr(sysid_cli.console, "print", broken_terminal)
    command = ["sysid", str(data), "--robot", "inverted_pendulum", "--params", "pole_mass", "--horizon", "3"]
    result = runner.invoke(app, [*command, "--budget", "30", "--out", str(out), "--json", str(json_out)])
    assert isinstance(result.exception, OSError)
    assert yaml.safe_load(out.read_text())["base"] == "inverted_pendulum"
    assert "pole_mass" in json.loads(json_out.read_text())["parameters"]


def test_the_hold_out_rule_lives_in_the_library(pendulum_data):
    from simreal.sysid.trajectories import split_holdout

    episodes = pendulum_data.episodes  # 12
    fitted, held = split_holdout(pendulum_data)
    assert held.episodes == episodes[-2:] and fitted.episodes == episodes[:-2]  # a fifth, rounded down
    assert split_holdout(pendulum_data.select(episodes[:4]))[1] is None  # fewer than 5: none held out
    assert split_holdout(pendulum_data, 3)[1].episodes == episodes[-3:]
    with pytest.raises(DataError, match="holdout: 12 leaves no episode to fit"):
        split_holdout(pendulum_data, 12)


def test_intervals_cover_the_truth_on_clean_data_and_widen_with_noise():
    clean = collect("random", "inverted_pendulum", target={"parameters": TRUTH}, episodes=16, seed=4)
    exact = identify(clean, "inverted_pendulum", list(TRUTH), horizon=3, budget=200, seed=0)
    assert all(exact.covered().values()), exact.interval
    assert exact.misfit is not None and not exact.misfit.flagged
    noisy_target = {"parameters": TRUTH, "effects": {"obs_noise_std": 0.02}}
    noisy_data = collect("random", "inverted_pendulum", target=noisy_target, episodes=16, seed=4)
    noisy = identify(noisy_data, "inverted_pendulum", list(TRUTH), horizon=3, budget=200, seed=0, use_observations=True)
    assert noisy.observation_noise == pytest.approx(0.02, rel=0.3)
    for name in TRUTH:
        assert np.log(noisy.interval[name][1] / noisy.interval[name][0]) > 3 * np.log(
            exact.interval[name][1] / exact.interval[name][0]
        ), name
    # the training ranges are the intervals (widened to the minimum width), never a point
    for name, (low, high) in noisy.ranges().items():
        assert low <= noisy.interval[name][0] and high >= noisy.interval[name][1]
        assert high / low >= (1 + noisy.min_width / 2) / (1 - noisy.min_width / 2) - 1e-9


def test_a_fit_with_a_needed_parameter_left_out_is_flagged_as_misfit(pendulum_data):
    partial = identify(pendulum_data, "inverted_pendulum", ["cart_mass"], horizon=3, budget=100, seed=0)
    assert partial.misfit.flagged and "pole_mass" in partial.misfit.cause
    assert not any(partial.identifiable.values())
    whole = identify(pendulum_data, "inverted_pendulum", ["cart_mass", "pole_mass"], horizon=3, budget=150, seed=0)
    assert not whole.misfit.flagged
    result = runner.invoke(
        app,
        [
            "sysid",
            str(save_trajectories(pendulum_data, Path("/tmp") / "pendulum.npz")),
            "--robot",
            "inverted_pendulum",
            "--params",
            "cart_mass",
            "--horizon",
            "3",
            "--budget",
            "100",
        ],
    )
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "parameters left out of the fit" in warnings[0] and "pole_mass" in warnings[0]


def test_the_identified_delay_and_noise_reach_targets_and_training_envs(tmp_path):
    target = {"parameters": TRUTH, "effects": {"action_delay_steps": 1, "obs_noise_std": 0.01}}
    data = collect("random", "inverted_pendulum", target=target, episodes=12, seed=3)
    result = identify(
        data, "inverted_pendulum", list(TRUTH), horizon=3, budget=120, seed=0, delays=range(3), use_observations=True
    )
    assert result.delay == 1
    path = tmp_path / "identified.yaml"
    path.write_text(yaml.safe_dump(result.target_yaml("data.npz")))
    reality = simreal.make("inverted_pendulum", target=path)
    assert reality.get_wrapper_attr("steps") == 1  # ActionDelay
    assert reality.get_wrapper_attr("std") == pytest.approx(result.observation_noise)  # ObservationNoise

    from simreal.envs.vector import EnvFactory
    from simreal.runs.config_files import load_config
    from simreal.runs.setup import load_setup

    # a config that names no effects of its own takes the identified ones
    plain = load_config("inverted_pendulum_ppo_dr").model_dump(mode="json")
    del plain["randomization"]["effects"]
    config = tmp_path / "plain.yaml"
    config.write_text(yaml.safe_dump(plain))
    setup = load_setup(config, [f"randomization.ranges={path}"])
    assert setup.effects.action_delay_steps == 1 and setup.effects.obs_noise_std == pytest.approx(
        result.observation_noise
    )
    training_env = EnvFactory(setup.spec, setup.ranges, effects=setup.effects)()
    assert training_env.get_wrapper_attr("steps") == 1
    own = load_setup(config, [f"randomization.ranges={path}", "randomization.effects={}"])
    assert own.effects.action_delay_steps == 0  # a config that names its own effects keeps them


def test_exact_data_at_nominal_dynamics_is_no_misfit():
    data = collect("random", "inverted_pendulum", episodes=6, seed=1)
    result = identify(data, "inverted_pendulum", ["pole_mass"], horizon=3, budget=60, seed=0)
    assert not result.misfit.flagged and result.identifiable["pole_mass"]
    assert result.covered()["pole_mass"]


@pytest.mark.parametrize("noisy", [False, True], ids=["recorded states", "rebuilt states with delay"])
def test_progress_is_one_monotone_measure_over_every_stage_that_reaches_its_total(pendulum_data, noisy):
    fitted, held = pendulum_data.select(pendulum_data.episodes[:10]), pendulum_data.select(pendulum_data.episodes[10:])
    updates = []
    options = {"delays": range(3), "use_observations": True} if noisy else {}
    result = identify(
        fitted, "inverted_pendulum", list(TRUTH), horizon=3, budget=90, holdout=held, progress=updates.append, **options
    )
    stages = list(dict.fromkeys(u.stage for u in updates))
    fits = [f"fit {r}/4, stage {s}/3" for r in range(1, 5) for s in range(1, 4)] if noisy else ["fit"]
    screens = [f"delay {d}" for d in range(3)] + [f"delay {d}, continued" for d in range(3)] if noisy else []
    assert stages == [*screens, *fits, "intervals", "misfit check", "dynamics gap"]
    done = [u.done for u in updates]
    evaluations = [u.evaluations for u in updates]
    assert done == sorted(done) and evaluations == sorted(evaluations)
    assert {u.total for u in updates} == {updates[0].total} and done[0] == 0 and done[-1] == updates[0].total
    assert evaluations[-1] == result.evaluations and {u.budget for u in updates} == {90}
    # the checks after the fits move the measure too: they are part of the total, not a stall at 100%
    checks = [u.done for u in updates if u.stage in ("intervals", "misfit check", "dynamics gap")]
    assert checks[0] < checks[-1] == done[-1]
    assert updates[0].best is None and updates[-1].best is not None


def test_the_sysid_bar_stays_and_logs_without_a_terminal():
    from simreal.cli.sysid import SysidProgressBar
    from simreal.sysid.progress import SysidProgress

    sequence = [
        SysidProgress("delay 0", 0, 120, 0, 1000, None),
        SysidProgress("fit 1/4, stage 1/3", 60, 120, 500, 1000, 0.25),
        SysidProgress("intervals", 126, 120, 900, 1000, 0.125),
        SysidProgress("dynamics gap", 126, 120, 1000, 1000, 0.125),
    ]
    terminal = io.StringIO()
    with SysidProgressBar(Console(file=terminal, force_terminal=True, width=140)) as bar:
        for update in sequence:
            bar(update)
    # not transient: the finished bar stays on screen, with its last stage and the evaluations
    last = terminal.getvalue().rsplit("\r", 1)[-1]
    assert "dynamics gap" in last and "126/120 evaluations" in last and "loss 0.125" in last

    log = io.StringIO()
    with SysidProgressBar(Console(file=log, force_terminal=False, width=140), line_every=0.0) as bar:
        for update in sequence:
            bar(update)
    lines = log.getvalue().splitlines()
    assert len(lines) == 4 and lines[1].startswith("sysid fit 1/4, stage 1/3: 60/120 evaluations, best loss 0.25, 50%")
    assert "ETA" in lines[1] and lines[3].startswith("sysid dynamics gap: 126/120 evaluations")


@pytest.mark.parametrize(
    ("nominal", "identified", "words"),
    [(0.0418, 0.0493, "1.18x higher"), (0.0369, 0.0302, "1.22x lower"), (0.0261, 0.0264, "1.01x higher")],
)
def test_the_dynamics_gap_ratio_reads_right(pendulum_data, nominal, identified, words):
    from simreal.cli.sysid import ratio_words, sysid_table

    assert ratio_words(nominal, identified) == words
    result = identify(pendulum_data, "inverted_pendulum", ["pole_mass"], horizon=3, budget=20)
    result.gap["fitted"] = {"nominal": nominal, "identified": identified, "ratio": nominal / identified}
    out = io.StringIO()
    Console(file=out, width=200).print(sysid_table(result))
    row = next(line for line in out.getvalue().splitlines() if "K-step error (fitted)" in line)
    assert words in row and "x lower" not in row.replace(words, "")


def test_a_paused_delay_screen_resumes_as_if_uninterrupted_and_wrong_delays_stop_early(
    pendulum_data, delayed_pendulum_data
):
    from simreal.sysid import fitting as sysid

    spec = load_robot("inverted_pendulum")
    simulator = sysid.Simulator(spec, list(TRUTH))
    states = sysid.fit_states(pendulum_data, spec, simulator.model, simulator.frame_skip, False, False)
    windows = [sysid.make_windows(pendulum_data, states, 0, 3, d, 30, np.random.default_rng(0)) for d in (0, 1)]
    bounds = np.log(np.array([spec.parameters[n].hard_limits for n in TRUTH]))
    tracker = sysid._Tracker(None, simulator, {"screen": 10**9}, 100)
    with tracker.stage("screen"):
        whole = sysid._cma(simulator, windows[0], bounds, 100, 0, tracker)
        paused, other = (sysid._strategy(2, bounds, 100, 0, None, 0.2) for _ in range(2))
        sysid._run(paused, simulator, windows[0], tracker, until=25)
        sysid._run(other, simulator, windows[1], tracker, until=25)  # draws from numpy's generator in between
        resumed = sysid._run(paused, simulator, windows[0], tracker)
    assert resumed.loss == whole.loss and np.array_equal(resumed.log_estimate, whole.log_estimate)

    result = identify(
        delayed_pendulum_data, "inverted_pendulum", list(TRUTH), horizon=3, budget=400, seed=0, delays=range(4)
    )
    assert result.delay == 1
    # the wrong delays' errors are far above the right one's a quarter of the way: their screens stop there, and
    # together they save more than one whole screen's share of the budget
    assert all(result.delay_losses[d] > 2 * result.delay_losses[1] for d in (0, 2, 3))
    assert result.evaluations < 400 - 0.3 * 400 / 4


def test_intervals_on_rebuilt_states_are_never_narrower_than_the_spread_of_the_fits():
    # the fits share their start and their episodes: their mean is not four times surer than one of them
    target = {"parameters": TRUTH, "effects": {"obs_noise_std": 0.02}}
    data = collect("random", "inverted_pendulum", target=target, episodes=12, seed=5)
    result = identify(data, "inverted_pendulum", list(TRUTH), horizon=3, budget=120, seed=0, use_observations=True)
    assert len(result.fits) == 4
    report = result.as_dict()
    assert report["fits"] == result.fits
    for name in TRUTH:
        spread = np.std([np.log(fit[name]) for fit in result.fits], ddof=1)
        low, high = result.interval[name]
        assert np.log(high / low) / 2 >= 1.645 * spread, name
        # identifiable only when that wider interval is within x/÷1.1 of the estimate
        if result.identifiable[name]:
            assert high / result.estimate[name] <= 1.1 and result.estimate[name] / low <= 1.1
