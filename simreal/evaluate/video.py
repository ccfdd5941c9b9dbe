"""Watching a policy: one episode rendered offscreen to RGB frames, and frames as an animated image in TensorBoard.

Rendering uses MuJoCo's offscreen renderer through gymnasium (``render_mode="rgb_array"``), on the OpenGL backend
``MUJOCO_GL`` names (``egl`` with a GPU, ``osmesa`` on CPU machines; unset without a display: EGL, else OSMesa), with
the camera following the robot's root body; where rendering cannot work, building the env raises
:class:`~simreal.errors.SetupError` with what to set or install.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simreal import compat
from simreal.envs.factory import make_env
from simreal.envs.runner import PolicyRunner
from simreal.envs.spec import Effects, RobotSpec

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


@dataclass
class Episode:
    """A rendered episode: its frames (``height x width x 3`` uint8, the reset state first), the return so far at
    each frame, and the env's frame rate."""

    frames: list[np.ndarray]
    returns: list[float]
    fps: float

    @property
    def total(self) -> float:
        return self.returns[-1] if self.returns else 0.0


def render_episode(
    runner: PolicyRunner,
    spec: RobotSpec,
    fixed: Mapping[str, float] | None = None,
    effects: Effects | None = None,
    *,
    seed: int = 0,
    max_steps: int = 1000,
    width: int = 480,
    height: int = 480,
) -> Episode:
    """Run one episode of ``runner`` (reset with ``seed``, at most ``max_steps`` steps) and render every step, the
    camera following the robot (:func:`~simreal.envs.rendering.follow_robot`).

    Args:
        runner: the policy, for one env.
        spec, fixed, effects: the robot and the dynamics to run it on (nominal when both are empty).
        width, height: frame size in pixels.

    Raises:
        SetupError: this process cannot render (``MUJOCO_GL``).
    """
    env = make_env(spec, None, fixed, effects, render_mode="rgb_array", width=width, height=height)
    try:
        obs, info = env.reset(seed=seed)
        action = runner.reset(obs, info)
        frames, returns = [np.asarray(env.render(), dtype=np.uint8)], [0.0]
        for _ in range(max_steps):
            obs, reward, terminated, truncated, _ = env.step(action)
            returns.append(returns[-1] + float(reward))
            frames.append(np.asarray(env.render(), dtype=np.uint8))
            if terminated or truncated:
                break
            action = runner.step(obs)
        fps = float(env.metadata.get("render_fps") or 30)
    finally:
        env.close()  # frees the GL context now (a context left to the interpreter's exit fails noisily)
    return Episode(frames, returns, fps)


def gif_timing(fps: float) -> tuple[int, int]:
    """How :func:`encode_gif` shows frames rendered at ``fps``: every ``stride``-th frame, each for ``delay_ms``.

    GIF stores delays in whole hundredths of a second, and viewers slow down frames shorter than 20 ms: above 25
    frames per second, only every k-th frame is kept, shown for k / fps rounded to 10 ms (real time when that is
    exact: 125 fps -> every 5th frame, 40 ms).

    Returns:
        ``(stride, delay_ms)``.
    """
    stride = max(1, int(np.ceil(fps / 25)))
    delay_ms = 10 * max(2, int(round(100 * stride / fps)))
    return stride, delay_ms


def encode_gif(frames: list[np.ndarray], fps: float) -> bytes:
    """Frames as a looping animated GIF (Pillow), timed by :func:`gif_timing`. Pillow merges identical consecutive
    frames into one shown longer, so the file may hold fewer frames than were kept."""
    from PIL import Image

    stride, delay_ms = gif_timing(fps)
    images = [Image.fromarray(frame) for frame in frames[::stride]]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=delay_ms, loop=0)
    return buffer.getvalue()


def add_video(writer: SummaryWriter, tag: str, frames: list[np.ndarray], step: int, fps: float) -> None:
    """Log frames to TensorBoard as an animated image (the same summary torch's ``add_video`` writes, without its
    moviepy dependency). ``writer`` is a ``torch.utils.tensorboard.SummaryWriter``."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    height, width = frames[0].shape[:2]
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=encode_gif(frames, fps))
    compat.add_summary(writer, Summary(value=[Summary.Value(tag=tag, image=image)]), step)
    writer.flush()
