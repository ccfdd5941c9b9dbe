"""Videos: real frames (not blank, moving) in MP4 and GIF, side by side, TensorBoard videos during training, a GIF
whose message says what it holds, and a broken GL setup as one line. Rendering runs in subprocesses with
MUJOCO_GL=osmesa or unset (``import simreal`` reads it); without libOSMesa these tests skip, unless
SIMREAL_REQUIRE_RENDERING=1 (CI, which installs it) makes that a failure.
"""

from __future__ import annotations

import ctypes.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from simreal.cli import app
from simreal.evaluate.video import encode_gif, gif_timing
from tests.test_training import tiny_config

runner = CliRunner()
OSMESA = ctypes.util.find_library("OSMesa") is not None
needs_osmesa = pytest.mark.skipif(
    not OSMESA and os.environ.get("SIMREAL_REQUIRE_RENDERING") != "1",
    reason="libOSMesa is not installed (Debian/Ubuntu: apt-get install libosmesa6)",
)
needs_headless_gl = pytest.mark.skipif(
    not (OSMESA or ctypes.util.find_library("EGL")) and os.environ.get("SIMREAL_REQUIRE_RENDERING") != "1",
    reason="neither libOSMesa nor libEGL is installed (Debian/Ubuntu: apt-get install libosmesa6)",
)


def cli(*args: str, gl: str | None = "osmesa") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    if gl is not None:
        env["MUJOCO_GL"] = gl
    command = [sys.executable, "-m", "simreal.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def policy(trained_run):
    return trained_run


def mp4_frames(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader])


@needs_osmesa
def test_an_mp4_holds_real_moving_frames(policy, tmp_path):
    out = tmp_path / "episode.mp4"
    result = cli("record", str(policy), "--max-steps", "20", "--size", "64x64", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    frames = mp4_frames(out)
    assert frames.shape[1:] == (64 + 22, 64, 3)  # the caption band above the panel
    episode_ended = "(ended)" in result.stdout
    assert 2 <= len(frames) <= 21 and not episode_ended
    picture = frames[:, 22:]
    assert picture.std() > 10, "blank frames"
    assert np.abs(picture[-1].astype(int) - picture[0].astype(int)).mean() > 1, "the robot did not move"
    assert not list(tmp_path.glob(".*tmp"))  # written through a temporary name, nothing left behind


@needs_osmesa
def test_side_by_side_gif_shows_nominal_and_the_target(policy, tmp_path):
    out = tmp_path / "both.gif"
    args = ["record", str(policy), "--target", "severe", "--side-by-side", "--max-steps", "40", "--size", "64x64"]
    result = cli(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "nominal: returns" in result.stdout and "target: severe: returns" in result.stdout
    with Image.open(out) as gif:
        assert gif.size == (128, 64 + 22) and gif.n_frames >= 2
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))[22:]
    left, right = last[:, :64].astype(int), last[:, 64:].astype(int)
    assert left.std() > 10 and right.std() > 10
    assert np.abs(left - right).mean() > 0.1, "the two panels show the same dynamics"


@needs_osmesa
def test_training_logs_evaluation_videos_to_tensorboard(tmp_path):
    config = tiny_config(
        tmp_path,
        "ppo",
        total_timesteps=256,
        eval={"frequency": 0, "episodes": 1, "targets": ["mild"], "video_steps": 5},
    )
    run_dir = tmp_path / "run"
    result = cli("train", str(config), "--run-dir", str(run_dir), "--device", "cpu", "--set", "eval.video_size=32")
    assert result.returncode == 0, result.stderr
    board = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0})
    board.Reload()
    assert set(board.Tags()["images"]) == {"eval/video/nominal", "eval/video/mild"}
    (event,) = board.Images("eval/video/mild")
    assert event.encoded_image_string[:6] == b"GIF89a" and (event.width, event.height) == (32, 32)


def test_recording_under_a_broken_gl_setup_is_one_line_and_no_file(policy, tmp_path):
    out = tmp_path / "x.mp4"
    result = cli("record", str(policy), "--out", str(out), gl="invalid")
    assert result.returncode == 2
    assert result.stderr.startswith("error: MUJOCO_GL=invalid is not a rendering backend MuJoCo knows")
    assert "Traceback" not in result.stderr and not out.exists()
    config = tiny_config(tmp_path, "ppo", eval={"frequency": 0, "episodes": 1, "video_steps": 5})
    trained = cli("train", str(config), "--run-dir", str(tmp_path / "run"), gl="disable")
    assert trained.returncode == 2 and "rendering is off (MUJOCO_GL=disable)" in trained.stderr
    assert not (tmp_path / "run").exists()


def gif_timings(path: Path) -> list[int]:
    """The delay of every frame of a GIF in milliseconds, as Pillow reads it back."""
    with Image.open(path) as gif:
        delays = []
        for index in range(gif.n_frames):
            gif.seek(index)
            delays.append(gif.info["duration"])
    return delays


WROTE = re.compile(
    r"wrote (?P<out>\S+): (?P<frames>\d+) frames, (?P<seconds>[\d.]+) s at (?P<fps>[\d.]+) fps"
    r"(?: \(from (?P<rendered>\d+) frames rendered at (?P<rendered_fps>[\d.]+) fps\))?$"
)


@needs_headless_gl
def test_a_gif_is_recorded_without_mujoco_gl_and_the_message_says_what_it_holds(policy, tmp_path):
    out = tmp_path / "hop.gif"
    # MUJOCO_GL unset, no display: the first render picks EGL or OSMesa
    result = cli("record", str(policy), "--max-steps", "40", "--size", "32x32", "--out", str(out), gl=None)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("wrote ")]
    wrote = WROTE.match(line)
    assert wrote is not None, line
    delays = gif_timings(out)
    # what the message says is what the file holds: hopper renders at 125 fps, the GIF keeps every 5th frame, 40 ms
    assert int(wrote["frames"]) == len(delays) and float(wrote["fps"]) == 25
    assert float(wrote["seconds"]) == pytest.approx(sum(delays) / 1000, abs=0.005)
    assert float(wrote["rendered_fps"]) == 125
    kept = len(range(0, int(wrote["rendered"]), 5))
    assert all(delay % 40 == 0 for delay in delays) and sum(delays) == 40 * kept  # merged frames keep their time
    with Image.open(out) as gif:
        assert np.asarray(gif.convert("RGB"))[22:].std() > 10, "blank frames"


@pytest.mark.parametrize(("fps", "stride", "delay_ms"), [(125, 5, 40), (20, 1, 50), (25, 1, 40), (30, 2, 70)])
def test_gif_frames_are_kept_and_timed_as_gif_timing_says(tmp_path, fps, stride, delay_ms):
    assert gif_timing(fps) == (stride, delay_ms)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8) for _ in range(151)]
    path = tmp_path / "clip.gif"
    path.write_bytes(encode_gif(frames, fps))
    assert gif_timings(path) == [delay_ms] * len(range(0, 151, stride))


def test_identical_gif_frames_are_merged_and_keep_their_time(tmp_path):
    still, moving = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)
    path = tmp_path / "clip.gif"
    path.write_bytes(encode_gif([moving, still, still, still, moving], 25))
    assert gif_timings(path) == [40, 120, 40]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--out", "clip.avi"], "clip.avi: unknown video format '.avi'"),
        (["--out", "clip.mp4", "--size", "63x64"], "--size: 63x64: width and height must be even"),
        (["--out", "clip.mp4", "--size", "big"], "--size: expected WIDTHxHEIGHT"),
        (["--out", "clip.mp4", "--side-by-side"], "--side-by-side: name the target"),
        (["--out", "clip.mp4", "--target", "nowhere"], "unknown target 'nowhere'"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(policy, options, message):
    result = runner.invoke(app, ["record", str(policy), *options])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
