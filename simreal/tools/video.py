"""``simreal record``'s videos: a policy's episodes rendered on nominal dynamics or a target, optionally the source and
the target side by side, captioned, written as MP4 (H.264 through the ffmpeg that ``imageio-ffmpeg`` ships) or GIF.
"""

from __future__ import annotations

import importlib.util
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simreal.envs.robots import load_target
from simreal.envs.spec import Effects
from simreal.errors import DataError, SetupError
from simreal.fileio import atomic_write, check_writable

#: Height of the caption band above each panel, in pixels.
CAPTION = 22
FORMATS = (".mp4", ".gif")
#: Panel sizes accepted, in pixels: H.264 needs at least 16 (and even sizes); MuJoCo's offscreen buffer is sized
#: to the panel, and beyond 4096 it is memory, not a video.
MIN_SIZE, MAX_SIZE = 16, 4096


@dataclass
class Recording:
    """What was recorded and written.

    Attributes:
        panels: per panel, its label and the episodes' returns.
        frames: frames in the file. A GIF keeps every ``stride``-th rendered frame
            (:func:`~simreal.evaluate.video.gif_timing`) and merges identical consecutive ones.
        fps: the rate the file shows its frames at (frames per second): the env's for MP4, 1000 / the frame delay
            for GIF.
        seconds: the file's playing time.
        rendered: frames rendered, at ``rendered_fps`` (the env's rate).
        rendered_fps: the env's frame rate.
    """

    panels: dict[str, list[float]]
    frames: int
    fps: float
    seconds: float
    rendered: int
    rendered_fps: float


def record_video(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    target: str | None = None,
    side_by_side: bool = False,
    episodes: int = 1,
    seed: int = 0,
    max_steps: int = 1000,
    width: int = 480,
    height: int = 480,
    true_dynamics: bool = False,
    trust_pickles: bool = False,
) -> Recording:
    """Render ``episodes`` episodes of a policy and write them, one after the other, to ``out`` (atomically).

    Args:
        source: a run directory or a model file inside one.
        out: ``.mp4`` or ``.gif``.
        target: a target name or YAML (default: nominal dynamics).
        side_by_side: nominal dynamics on the left, ``target`` on the right, the same episode seeds.
        episodes: episode ``i`` is reset with ``seed + i``.
        max_steps: at most this many steps per episode.
        width, height: size of each panel in pixels (even numbers: H.264 needs them).
        true_dynamics: adaptive policies act on the true dynamics.
        trust_pickles: let a run holding stable-baselines3's pickles only load (:data:`~simreal.errors.TRUST_PICKLES`).

    Raises:
        DataError: an unknown output format, a missing or corrupt run. SpecError: an unknown target.
        SetupError: no rendering backend (``MUJOCO_GL``), or no ffmpeg for MP4.
    """
    from simreal.evaluate.video import render_episode
    from simreal.runs.policy import load_policy

    out = Path(out)
    _check_request(out, target, side_by_side, width, height)
    policy = load_policy(source, true_dynamics=true_dynamics, trust_pickles=trust_pickles)
    setup, runner = policy.setup, policy.runner()
    panels: dict[str, tuple[dict[str, float], Effects]] = {}
    if target is None or side_by_side:
        panels["nominal"] = ({}, Effects())
    if target is not None:
        name, target_spec = load_target(setup.spec, target)
        panels[f"target: {name}"] = (dict(target_spec.parameters), target_spec.effects)
    frames: list[np.ndarray] = []
    returns: dict[str, list[float]] = {label: [] for label in panels}
    fps = 30.0
    for episode in range(episodes):
        rendered = {
            label: render_episode(
                runner,
                setup.spec,
                fixed,
                effects,
                seed=seed + episode,
                max_steps=max_steps,
                width=width,
                height=height,
            )
            for label, (fixed, effects) in panels.items()
        }
        fps = next(iter(rendered.values())).fps
        length = max(len(e.frames) for e in rendered.values())
        for index in range(length):
            row = []
            for label, run in rendered.items():
                at = min(index, len(run.frames) - 1)  # a shorter episode holds its last frame
                done = " (ended)" if index >= len(run.frames) else ""
                caption = f"{label}   episode {episode + 1}   return {run.returns[at]:.0f}{done}"
                row.append(_captioned(run.frames[at], caption))
            frames.append(np.concatenate(row, axis=1))
        for label, run in rendered.items():
            returns[label].append(run.total)
    written, shown_fps, seconds = _write(out, frames, fps)
    return Recording(returns, written, shown_fps, seconds, len(frames), fps)


def _check_request(out: Path, target: str | None, side_by_side: bool, width: int, height: int) -> None:
    """Everything about a video that can be wrong before an episode is spent: its format, its size, where it goes,
    a side-by-side without a target, MP4 without ffmpeg."""
    if out.suffix.lower() not in FORMATS:
        raise DataError(f"{out}: unknown video format {out.suffix or '(none)'!r} (use {' or '.join(FORMATS)})")
    for name, pixels in (("width", width), ("height", height)):
        if not MIN_SIZE <= pixels <= MAX_SIZE:
            raise DataError(f"{name}: {pixels} pixels, expected {MIN_SIZE} to {MAX_SIZE}")
    check_writable(out)
    if side_by_side and target is None:
        raise DataError("side_by_side: name the target to show beside nominal dynamics")
    if width % 2 or height % 2:
        raise DataError(f"size: {width}x{height}: width and height must be even")
    if out.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise SetupError("MP4 videos need imageio-ffmpeg: pip install 'simreal[video]' (or write a .gif)")


def _captioned(frame: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    band = Image.new("RGB", (frame.shape[1], CAPTION), (20, 20, 20))
    ImageDraw.Draw(band).text((6, 5), text, fill=(235, 235, 235))
    return np.concatenate([np.asarray(band, dtype=np.uint8), frame], axis=0)


def _write(out: Path, frames: list[np.ndarray], fps: float) -> tuple[int, float, float]:
    """Write the video; return what the file holds: its frame count, frame rate and playing time in seconds."""
    if out.suffix.lower() == ".gif":
        from simreal.evaluate.video import encode_gif, gif_timing

        data = encode_gif(frames, fps)
        atomic_write(out, lambda tmp: tmp.write_bytes(data))
        count, seconds = _gif_contents(data)
        return count, 1000 / gif_timing(fps)[1], seconds
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]

    def write(tmp: Path) -> None:
        # the temporary name has no .mp4 suffix: name the container; yuv420p plays everywhere
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            (width, height),
            fps=fps,
            codec="libx264",
            pix_fmt_out="yuv420p",
            macro_block_size=1,
            output_params=["-f", "mp4"],
            ffmpeg_log_level="error",
        )
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()

    atomic_write(out, write)
    return len(frames), fps, len(frames) / fps


def _gif_contents(data: bytes) -> tuple[int, float]:
    """The frames a GIF holds and its playing time in seconds, as a viewer reads them back."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as gif:
        count = int(getattr(gif, "n_frames", 1))  # a GIF's image has it; PIL's base image type does not say so
        total_ms = 0
        for index in range(count):
            gif.seek(index)
            total_ms += gif.info.get("duration", 0)
        return count, total_ms / 1000
