"""The one loop that runs a trained policy on any gymnasium-API env: :class:`PolicyRunner` builds the policy's input
from the env's own observations (:class:`~simreal.envs.inputs.PolicyInput`), scales it as in training
(:class:`ObservationScaling`) and asks the model for its action. Evaluation, data collection, videos, robustness maps
and UP-OSI's rollouts all act through it, on plain envs: nothing of the policy lives in the env."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np

from simreal.envs.coordinates import to_coordinates
from simreal.envs.inputs import InputLayout, PolicyInput
from simreal.envs.privileged import DynamicsEstimator

if TYPE_CHECKING:  # stable-baselines3 is the train extra's: a runner is only built around one of its models
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import VecEnv, VecNormalize


@dataclass(frozen=True)
class ObservationScaling:
    """The frozen observation normalization of a run: ``clip((x - mean) / sqrt(var + epsilon), -clip, clip)``, as
    stable-baselines3's VecNormalize computes it."""

    mean: np.ndarray
    var: np.ndarray
    clip: float
    epsilon: float

    @classmethod
    def of(cls, statistics: VecNormalize | None) -> ObservationScaling | None:
        """A copy of the statistics' observation normalization (``None``: none)."""
        if statistics is None or not statistics.norm_obs:
            return None
        rms = cast("RunningMeanStd", statistics.obs_rms)  # simreal's observations are flat boxes, never dicts
        return cls(np.array(rms.mean), np.array(rms.var), float(statistics.clip_obs), float(statistics.epsilon))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip)


class PolicyRunner:
    """Acts for ``n_envs`` envs at once, each with its own input history.

    Args:
        model: the stable-baselines3 model.
        layout: its input's layout.
        scaling: its observation normalization (``None``: none).
        estimator: its dynamics estimator (``layout.source == "estimated"``).
        deterministic: the mean action rather than a sampled one.
        n_envs: how many envs it acts for.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        layout: InputLayout,
        scaling: ObservationScaling | None = None,
        estimator: DynamicsEstimator | None = None,
        deterministic: bool = True,
        n_envs: int = 1,
    ) -> None:
        self.model, self.layout, self.scaling, self.deterministic = model, layout, scaling, deterministic
        self.estimator = estimator
        self._inputs = [PolicyInput(layout, estimator) for _ in range(n_envs)]
        self._sent = np.zeros((n_envs, layout.action))
        #: the scaled inputs the policy last acted on, one row per env
        self.last_inputs = np.zeros((n_envs, layout.size))

    @property
    def n_envs(self) -> int:
        return len(self._inputs)

    @property
    def estimates(self) -> np.ndarray:
        """The log-multipliers each env's policy was last given, one row per env."""
        return np.array([inputs.estimate for inputs in self._inputs])

    def act(
        self,
        observations: np.ndarray,
        starts: Sequence[bool] | np.ndarray,
        infos: Sequence[Mapping[str, Any]] | None = None,
    ) -> np.ndarray:
        """The next action of every env.

        Args:
            observations: each env's observation, one row per env.
            starts: which envs begin an episode with this observation.
            infos: each env's reset ``info`` (read where an episode starts: ``info["dynamics"]``, a simulator's
                true multipliers, for a policy that reads them).

        Raises:
            DataError: an observation of the wrong size; true dynamics needed and not reported.
        """
        rows = []
        for index, (inputs, obs) in enumerate(zip(self._inputs, observations, strict=True)):
            if starts[index]:
                truth = (infos[index] if infos is not None else {}).get("dynamics")
                rows.append(inputs.start(obs, truth))
            else:
                rows.append(inputs.add(self._sent[index], obs))
        batch = np.array(rows)
        self.last_inputs = self.scaling(batch) if self.scaling is not None else batch
        actions, _ = self.model.predict(self.last_inputs, deterministic=self.deterministic)
        self._sent = np.asarray(actions, dtype=np.float64).reshape(self.n_envs, -1)
        return actions

    def reset(self, obs: Any, info: Mapping[str, Any] | None = None) -> np.ndarray:
        """One env (``n_envs == 1``): its first action of an episode."""
        return self.act(np.asarray(obs)[None], [True], [info or {}])[0]

    def step(self, obs: Any) -> np.ndarray:
        """One env (``n_envs == 1``): its next action."""
        return self.act(np.asarray(obs)[None], [False])[0]


@dataclass
class EpisodeStats:
    """What :func:`run_episodes` measured: the raw returns in order of completion and, when the policy's dynamics
    input is estimated, each step's estimate beside the truth (log-multipliers), or the scaled inputs it acted on; and
    the episodes' lengths in steps."""

    returns: list[float]
    lengths: list[int]
    estimates: list[np.ndarray]
    truths: list[np.ndarray]
    inputs: list[np.ndarray]


def run_episodes(
    runner: PolicyRunner, venv: VecEnv, episodes: int, seed: int, keep_inputs: bool = False
) -> EpisodeStats:
    """Run ``episodes`` episodes of ``runner`` on ``venv`` (reseeded with ``seed``), spread over its envs as
    stable-baselines3's ``evaluate_policy`` does (env ``i`` runs ``(episodes + i) // n_envs`` of them).

    The return of an episode is its Monitor's (raw rewards) when the env has one, else the sum of the rewards seen.

    Args:
        runner: the policy, for ``venv.num_envs`` envs.
        venv: plain envs (the policy's input is the runner's business).
        episodes: how many.
        seed: the envs' seed (env ``i``: ``seed + i``).
        keep_inputs: also keep the scaled inputs the policy acted on (RMA's latent error).
    """
    n = venv.num_envs
    quota = np.array([(episodes + i) // n for i in range(n)])
    done_episodes = np.zeros(n, dtype=int)
    running = np.zeros(n)
    stats = EpisodeStats([], [], [], [], [])
    steps = np.zeros(n, dtype=int)
    truths = [np.zeros(len(runner.layout.dynamics))] * n
    names = runner.layout.dynamics
    venv.seed(seed)
    observations = np.asarray(venv.reset())
    starts = np.ones(n, dtype=bool)
    while (done_episodes < quota).any():
        infos = venv.reset_infos
        for index in np.flatnonzero(starts):
            dynamics = infos[index].get("dynamics") or {}
            values = [dynamics.get(name, np.nan) for name in names]
            truths[index] = to_coordinates(names, values, dict(runner.layout.offsets))
        actions = runner.act(observations, starts, infos)
        active = done_episodes < quota
        if runner.layout.source == "estimated":
            estimates = runner.estimates
            stats.estimates += [estimates[i] for i in np.flatnonzero(active)]
            stats.truths += [truths[i] for i in np.flatnonzero(active)]
        if keep_inputs:
            stats.inputs += [runner.last_inputs[i] for i in np.flatnonzero(active)]
        stepped, rewards, dones, step_infos = venv.step(actions)
        observations = np.asarray(stepped)
        running += rewards
        steps += 1
        for index in np.flatnonzero(dones & active):
            episode = step_infos[index].get("episode")
            stats.returns.append(float(episode["r"]) if episode is not None else float(running[index]))
            stats.lengths.append(int(steps[index]))
            done_episodes[index] += 1
        running[dones], steps[dones] = 0.0, 0
        starts = dones
    return stats


def run_episode(
    runner: PolicyRunner,
    env: gym.Env,
    seed: int,
    max_steps: int | None = None,
    on_step: Callable[[np.ndarray, np.ndarray, float, bool, bool], None] | None = None,
) -> float:
    """One episode of ``runner`` (``n_envs == 1``) on a gymnasium-API env, reset with ``seed``; returns its return.

    Args:
        runner: the policy.
        env: any gymnasium-API env with the policy's observation and action sizes.
        seed: the reset's seed.
        max_steps: stop after this many steps (``None``: when the env ends the episode).
        on_step: called after every step with the observation acted on, the action, the reward, ``terminated``
            and ``truncated``.
    """
    obs, info = env.reset(seed=seed)
    action = runner.reset(obs, info)
    total, steps = 0.0, 0
    while True:
        next_obs, reward, terminated, truncated, _ = env.step(action)
        total, steps = total + float(reward), steps + 1
        if on_step is not None:
            on_step(np.asarray(obs), np.asarray(action), float(reward), bool(terminated), bool(truncated))
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            return total
        obs = next_obs
        action = runner.step(obs)
