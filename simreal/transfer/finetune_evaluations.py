"""The envs fine-tuning evaluates on: the target's for the sample-efficiency curve and for the final return, and the
source's (nominal dynamics) for forgetting; each reseeded before every evaluation, so that successive evaluations
see the same episodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simreal import seeding
from simreal.envs.inputs import InputLayout
from simreal.envs.mujoco_base import episode_limit
from simreal.envs.privileged import DynamicsEstimator
from simreal.envs.runner import ObservationScaling, PolicyRunner, run_episodes
from simreal.envs.spec import TargetSpec
from simreal.envs.vector import EnvFactory, vectorize
from simreal.runs.setup import TrainingSetup
from simreal.transfer.config import FinetuneSettings


class Evaluations:
    """The target envs of the curve and of the final evaluation, and the source env (nominal dynamics) that
    measures forgetting. Each is reseeded before every evaluation: successive evaluations see the same episodes."""

    def __init__(
        self,
        setup: TrainingSetup,
        target: TargetSpec,
        settings: FinetuneSettings,
        layout: InputLayout,
        estimator: DynamicsEstimator | None,
    ) -> None:
        self.seed = settings.seed + seeding.EVALUATION
        self.layout, self.estimator = layout, estimator
        spec = setup.spec
        on_target = EnvFactory(spec, fixed=target.parameters, effects=target.effects)
        self._curve = vectorize(on_target, settings.eval_episodes, self.seed)
        self._final = vectorize(on_target, settings.final_episodes, self.seed)
        self._source = vectorize(EnvFactory(spec), settings.final_episodes, self.seed)
        self.max_episode_steps = episode_limit(spec)
        self.curve_episodes = settings.eval_episodes

    def target(self, model: BaseAlgorithm, statistics: VecNormalize | None, final: bool = False) -> dict[str, Any]:
        """The policy's episode ``returns`` on the target, and the target ``steps`` they took: a curve evaluation's
        episodes, or the final evaluation's."""
        return self._run(model, self._final if final else self._curve, statistics)

    def source(self, model: BaseAlgorithm, statistics: VecNormalize | None) -> dict[str, Any]:
        """The policy's episode ``returns`` on the source (nominal dynamics), and the ``steps`` they took."""
        return self._run(model, self._source, statistics)

    def _run(self, model: BaseAlgorithm, venv: VecEnv, statistics: VecNormalize | None) -> dict[str, Any]:
        scaling = ObservationScaling.of(statistics)
        runner = PolicyRunner(model, self.layout, scaling, self.estimator, n_envs=venv.num_envs)
        stats = run_episodes(runner, venv, venv.num_envs, self.seed)
        # the steps of the recorded episodes: what the same evaluation would cost on a robot
        return {"returns": stats.returns, "steps": int(np.sum(stats.lengths))}

    def close(self) -> None:
        for venv in (self._curve, self._final, self._source):
            venv.close()
