"""A trained policy loaded back from its run directory: the model, its resolved config and its normalization
statistics. Evaluation, data collection and fine-tuning all start here."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from simreal.adaptation.osi import OSI_FILE, load_estimator
from simreal.adaptation.rma import rma_extractor
from simreal.envs.inputs import DynamicsSource, InputLayout
from simreal.envs.mujoco_base import box_space
from simreal.envs.privileged import DynamicsEstimator, DynamicsInputSpec
from simreal.envs.runner import ObservationScaling, PolicyRunner
from simreal.envs.vector import EnvFactory, vectorize
from simreal.errors import ConfigError, DataError
from simreal.fileio import contained_file
from simreal.runs.algorithms import load_model, load_statistics, require_model_files, statistics_of
from simreal.runs.model_files import STATISTICS, WEIGHTS, has_model_files
from simreal.runs.rundir import CONFIG, MODEL, VECNORMALIZE, find_run_dir, saved_config
from simreal.runs.setup import TrainingSetup, resolve


@dataclass
class LoadedPolicy:
    """A model with what is needed to run it: its resolved config and normalization statistics."""

    model: BaseAlgorithm
    setup: TrainingSetup
    statistics: VecNormalize | None
    path: Path
    layout: InputLayout
    dynamics_input: DynamicsInputSpec | None = None

    @property
    def robot(self) -> str:
        return self.setup.spec.robot

    @property
    def estimator(self) -> DynamicsEstimator | None:
        """UP-OSI's estimator, when the policy's dynamics input is estimated."""
        return self.dynamics_input.estimator if self.dynamics_input is not None else None

    def runner(self, n_envs: int = 1, deterministic: bool = True) -> PolicyRunner:
        """A :class:`~simreal.envs.runner.PolicyRunner` of this policy for ``n_envs`` plain envs of its robot."""
        scaling = ObservationScaling.of(self.statistics)
        return PolicyRunner(self.model, self.layout, scaling, self.estimator, deterministic, n_envs)


def load_policy(
    source: str | os.PathLike[str], device: str = "cpu", true_dynamics: bool = False, trust_pickles: bool = False
) -> LoadedPolicy:
    """Load a policy from a run directory (its final model) or a model file inside a run directory.

    The model is rebuilt from the run's config with the weights and normalization statistics beside the model file
    (``weights.pt``, ``model.json``, ``vecnormalize.npz``): nothing is unpickled, unless ``trust_pickles`` lets a
    folder holding stable-baselines3's pickles only load (see :data:`simreal.errors.TRUST_PICKLES`).
    An adaptive policy comes with its estimator: UP-OSI's ``osi.pt`` gives it the
    estimated dynamics (before it is trained, the true ones), RMA's adaptation module is in the model. With
    ``true_dynamics`` it is given the true parameters instead (the universal policy alone; RMA's base policy on the
    encoded truth), a reference only a simulator can provide.

    Raises:
        DataError: no such file or folder, no config for it, a corrupt model or statistics file, pickles only.
    """
    path = Path(source)
    if path.is_dir():
        run_dir, model_path = path, path / MODEL
        if not (model_path.exists() or (path / WEIGHTS).exists()):
            raise DataError(f"{path}: run directory has no model (train it to the end, or name a checkpoint's)")
    elif path.is_file():
        model_path = path
        found = find_run_dir(path)
        if found is None:
            raise DataError(f"{path}: no {CONFIG} beside or above the model: cannot tell its robot")
        run_dir = found
    else:
        raise DataError(f"{path}: no such run directory or model file")
    try:
        setup = resolve(saved_config(run_dir), str(run_dir / CONFIG))
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    if model_path.name not in (MODEL, WEIGHTS) and has_model_files(model_path.parent):
        # a folder's model is its weights.pt: another zip beside it would be passed over without a word
        raise DataError(f"{model_path}: the model of {model_path.parent} is its {WEIGHTS}: name the folder instead")
    require_model_files(model_path, trust_pickles)  # before anything is built
    factory = EnvFactory(setup.spec, history=setup.history, dynamics_input=setup.dynamics_input)
    venv = load_statistics(model_path.parent, vectorize(factory, n_envs=1, seed=0), trust_pickles)
    statistics = statistics_of(venv)
    if statistics is None and setup.config.env.normalize.observations:
        raise DataError(f"{model_path.parent / STATISTICS}: missing: the model was trained on normalized observations")
    model = load_model(model_path, setup.config, setup.input_layout(), venv, device, trust_pickles, for_training=False)
    if statistics is not None and model.observation_space.shape != statistics.observation_space.shape:
        where = model_path.parent / (STATISTICS if has_model_files(model_path.parent) else VECNORMALIZE)
        raise DataError(f"{where}: observation size {statistics.observation_space.shape} does not fit the model's")
    dynamics_input = setup.dynamics_input
    dynamics_source: DynamicsSource | None = None
    extractor = rma_extractor(model)
    if extractor is not None:
        if true_dynamics:
            extractor.use_encoder()  # the base policy on the encoded true parameters
        elif not extractor.is_adapting:
            raise DataError(
                f"{model_path}: an RMA policy saved before its adaptation module was trained (best/ and checkpoints "
                "are): evaluate the run's final model.zip, or give the policy the true dynamics"
            )
        dynamics_source = "true" if true_dynamics else "unread"
    if dynamics_input is not None and dynamics_input.adaptive and not true_dynamics and (run_dir / OSI_FILE).exists():
        estimator = load_estimator(contained_file(run_dir, OSI_FILE))
        if estimator.names != list(dynamics_input.names):
            seen = list(dynamics_input.names)
            raise DataError(f"{run_dir / OSI_FILE}: names: estimates {estimator.names}, the policy sees {seen}")
        dynamics_input = replace(dynamics_input, estimator=estimator)
        layout = setup.input_layout("estimated", estimator.history)
    else:
        layout = setup.input_layout(dynamics_source)
    size = int(np.prod(box_space(model.observation_space).shape))
    if layout.size != size:
        raise DataError(f"{model_path}: the model reads inputs of size {size}, its config describes {layout.size}")
    return LoadedPolicy(model, setup, statistics, model_path, layout, dynamics_input)
