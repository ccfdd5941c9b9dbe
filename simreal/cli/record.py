"""``simreal record``: a video of a policy's episodes on nominal dynamics, a target, or both side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from simreal.cli.common import (
    TRUST_FLAG,
    console,
    flag,
    one_line_errors,
    require_training,
    say_trusted,
    trust_pickles_flag,
)


@one_line_errors(
    flags={"side_by_side": "--side-by-side", "size": "--size", "width": "--size", "height": "--size", **TRUST_FLAG}
)
def record(
    source: Path = typer.Argument(..., help="A run directory, or a model file inside one."),
    out: Path = typer.Option(..., "--out", help="The video: .mp4 or .gif."),
    target: str = typer.Option(None, "--target", "-t", help="Target name or YAML; default: nominal dynamics."),
    side_by_side: bool = flag(False, "--side-by-side", "Nominal dynamics beside the --target."),
    episodes: int = typer.Option(1, "--episodes", min=1, help="Episodes, one after the other."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the first episode."),
    max_steps: int = typer.Option(1000, "--max-steps", min=1, help="At most this many steps per episode."),
    size: str = typer.Option("480x480", "--size", help="WIDTHxHEIGHT of each panel, in pixels (even numbers)."),
    true_dynamics: bool = flag(
        False, "--true-dynamics", "Adaptive policies: act on the true dynamics, not the estimate."
    ),
    trust_pickles: bool = trust_pickles_flag(),
) -> None:
    """Render a policy's episodes offscreen to an MP4 or GIF video, the camera following the robot."""
    require_training("simreal record")
    from simreal.errors import DataError, shown
    from simreal.tools.video import MAX_SIZE, MIN_SIZE, record_video

    try:
        width, height = (int(n) for n in size.lower().split("x"))
    except ValueError:
        raise DataError(f"--size: expected WIDTHxHEIGHT (e.g. 480x480), got {shown(size)}") from None
    if not (MIN_SIZE <= width <= MAX_SIZE and MIN_SIZE <= height <= MAX_SIZE):
        raise DataError(f"--size: {size}: each side from {MIN_SIZE} to {MAX_SIZE} pixels")
    say_trusted(trust_pickles)
    made = record_video(
        source,
        out,
        target=target,
        side_by_side=side_by_side,
        episodes=episodes,
        seed=seed,
        max_steps=max_steps,
        width=width,
        height=height,
        true_dynamics=true_dynamics,
        trust_pickles=trust_pickles,
    )
    for label, returns in made.panels.items():
        console.print(f"{label}: returns {', '.join(f'{r:.1f}' for r in returns)}")
    timing = f"{made.frames} frames, {made.seconds:.2f} s at {made.fps:g} fps"
    if made.frames != made.rendered:
        timing += f" (from {made.rendered} frames rendered at {made.rendered_fps:g} fps)"
    console.print(f"wrote {out}: {timing}", soft_wrap=True)  # one line, whatever the path's length
