"""Windows: the stretches of a recording the fit predicts, each a start state, the actions that followed (shifted by
the action delay) and the states they led to."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simreal.errors import DataError
from simreal.sysid.states import States
from simreal.sysid.trajectories import Trajectories


@dataclass
class Windows:
    """Stretches of recorded data: a start state, the actions that followed, and the states they led to."""

    qpos: np.ndarray  # (W, nq)
    qvel: np.ndarray  # (W, nv)
    actions: np.ndarray  # (W, K, act_dim): the actions applied, delay included
    targets: np.ndarray  # (W, K, state_dim): the recorded states after each step
    scale: np.ndarray  # (state_dim,)
    episode: np.ndarray  # (W,): the episode each window comes from


def state_vector(qpos: np.ndarray, qvel: np.ndarray, skipped: int) -> np.ndarray:
    """The compared part of a state: positions without the unobserved x (and y), and velocities."""
    return np.concatenate([qpos[..., skipped:], qvel], axis=-1)


def window_starts(data: Trajectories, states: States, horizon: int) -> list[tuple[np.ndarray, int]]:
    """Where a window can start: ``(rows of the episode, index in it)`` for every trusted state with ``horizon``
    recorded steps after it (the same whatever the action delay)."""
    return [(rows, i) for rows in data.episode_rows() for i in range(len(rows) - horizon) if states.exact[rows[i]]]


def make_windows(
    data: Trajectories,
    states: States,
    skipped: int,
    horizon: int,
    delay: int,
    max_windows: int,
    rng: np.random.Generator,
) -> Windows:
    """Cut the recording into windows of ``horizon`` steps (actions shifted by ``delay``), at most ``max_windows``.

    Raises:
        DataError: no episode long enough for one window.
    """
    qpos, qvel = states.qpos, states.qvel
    starts = window_starts(data, states, horizon)
    if not starts:
        raise DataError(
            f"{data.path or 'recording'}: no episode has more than {horizon} steps (the fit's horizon): "
            "shorten the horizon or record longer episodes"
        )
    if len(starts) > max_windows:
        starts = [starts[i] for i in sorted(rng.choice(len(starts), max_windows, replace=False))]
    act_dim = data.actions.shape[1]
    w_qpos, w_qvel, w_actions, w_targets = [], [], [], []
    episode = np.array([data.episode[rows[0]] for rows, _ in starts])
    for rows, i in starts:
        w_qpos.append(qpos[rows[i]])
        w_qvel.append(qvel[rows[i]])
        applied = np.zeros((horizon, act_dim))
        for k in range(horizon):
            source = i + k - delay  # the command sent `delay` steps earlier (zeros before the episode's first)
            if source >= 0:
                applied[k] = data.actions[rows[source]]
        w_actions.append(applied)
        after = rows[i + 1 : i + 1 + horizon]
        w_targets.append(state_vector(qpos[after], qvel[after], skipped))
    targets = np.array(w_targets)
    scale = state_vector(qpos, qvel, skipped).std(axis=0) + 1e-3
    return Windows(np.array(w_qpos), np.array(w_qvel), np.array(w_actions), targets, scale, episode)


def concatenate(parts: list[Windows]) -> Windows:
    """Several window sets of one recording as one (the spread of the first: all share the recording's)."""
    return Windows(
        np.concatenate([w.qpos for w in parts]),
        np.concatenate([w.qvel for w in parts]),
        np.concatenate([w.actions for w in parts]),
        np.concatenate([w.targets for w in parts]),
        parts[0].scale,
        np.concatenate([w.episode for w in parts]),
    )
