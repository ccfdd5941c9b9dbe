"""Settings of fine-tuning on a target (``simreal finetune``), and the transfer pipeline's config (``simreal
transfer``), validated with pydantic."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from simreal.envs.spec import format_validation_error, validation_problem
from simreal.errors import ConfigError
from simreal.runs.config import Seed, StrictModel
from simreal.runs.config_files import ConfigSource, read_config
from simreal.transfer.strategies import DEFAULT_LR_SCALE


class FinetuneSettings(StrictModel):
    """How to fine-tune on the target.

    Attributes:
        steps: the target budget, in env steps (curve evaluations included when ``count_eval``).
        strategy: ``full``, ``head``, ``partial``, ``progressive`` or ``scratch`` (see
            :mod:`simreal.transfer.strategies`).
        lr_scale: the learning rate is the source config's times this (default per strategy: ``full`` 0.1, the
            others 1.0).
        l2sp: alpha of the L2-SP penalty toward the starting weights (0: off).
        trainable_layers: ``partial``: how many layers from the top of each network train.
        layer_decay: each layer below the top learns this many times slower (ULMFiT uses 2.6; 1.0: one rate).
        update_normalization: keep updating the source run's observation and reward statistics on the target
            (default: frozen, the policy keeps the input scaling it learned).
        count_eval: the curve's evaluation episodes count against ``steps`` (else they are reported apart).
        eval_every: target steps between curve evaluations (default: a fifth of the budget).
        eval_episodes: episodes per curve evaluation.
        final_episodes: episodes of the final evaluation on the target and of the source evaluations (forgetting);
            the final evaluation is the measurement and is reported apart from the budget.
        seed: seed of the target envs, the policy's sampling and the evaluations.
    """

    steps: int = Field(gt=0)
    strategy: Literal["full", "head", "partial", "progressive", "scratch"] = "full"
    lr_scale: float | None = Field(default=None, gt=0)
    l2sp: float = Field(default=0.0, ge=0)
    trainable_layers: int = Field(default=2, ge=1)
    layer_decay: float = Field(default=1.0, ge=1.0)
    update_normalization: bool = False
    count_eval: bool = True
    eval_every: int | None = Field(default=None, gt=0)
    eval_episodes: int = Field(default=5, ge=1)
    final_episodes: int = Field(default=20, ge=1)
    seed: Seed = 0

    @model_validator(mode="after")
    def _scratch_has_no_start(self) -> FinetuneSettings:
        if self.strategy == "scratch" and self.l2sp > 0:
            raise ValueError("l2sp: a policy trained from scratch has no starting weights to stay near")
        return self

    @property
    def learning_rate_scale(self) -> float:
        return self.lr_scale if self.lr_scale is not None else DEFAULT_LR_SCALE[self.strategy]

    @property
    def evaluation_interval(self) -> int:
        return self.eval_every if self.eval_every is not None else max(1, self.steps // 5)


def finetune_settings(source: str, **values: object) -> FinetuneSettings:
    """Validate fine-tuning settings; ``source`` names where they came from in the error.

    Raises:
        ConfigError: one line naming ``source`` and the field.
    """
    try:
        return FinetuneSettings.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


class SourceStage(StrictModel):
    """The sim-trained policy: an existing run (``run``), or a training config to train first (``config`` with
    ``overrides``, ``--set`` strings). Exactly one of the two."""

    run: str | None = None
    config: str | None = None
    overrides: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> SourceStage:
        if (self.run is None) == (self.config is None):
            raise ValueError("give exactly one of run (an existing run directory) and config (a config to train)")
        if self.run is not None and self.overrides:
            raise ValueError("overrides: only for a config to train, not for an existing run")
        return self

    @property
    def training_config(self) -> str:
        """The config to train (a source given as ``config``, not ``run``)."""
        if self.config is None:
            raise ValueError("the source is an existing run, not a config to train")
        return self.config


class ZeroShotStage(StrictModel):
    """Evaluate the sim policy on the target as it is."""

    enabled: bool = True


class SysidStage(StrictModel):
    """Record ``episodes`` target episodes with the sim policy, identify the parameters (``params``, default all;
    ``delay``: the action delay too), and report the dynamics gap before and after (``simreal sysid``'s options)."""

    enabled: bool = True
    episodes: int = Field(default=10, ge=1)
    params: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
    horizon: int = Field(default=10, ge=1)
    budget: int | None = Field(default=None, ge=10)
    delay: bool = False
    min_width: float = Field(default=0.1, ge=0, le=1.9)


class IdentifiedStage(StrictModel):
    """Train in the identified simulator (randomization over the identified intervals, the identified delay) for
    ``timesteps`` simulator steps: ``finetune`` continues the sim policy there, ``retrain`` starts a fresh one.
    Needs the sysid stage."""

    enabled: bool = True
    mode: Literal["finetune", "retrain"] = "finetune"
    timesteps: int = Field(default=200_000, gt=0)


class FinetuneStage(FinetuneSettings):
    """Fine-tune on the target (:class:`FinetuneSettings`, less ``seed`` and ``final_episodes``, which the pipeline
    sets). ``start``: the policy of the latest stage (``previous``) or the sim policy (``source``);
    ``scratch_baseline``: also train a fresh policy on the target with the same budget, and judge negative transfer
    against it."""

    enabled: bool = True
    steps: int = Field(default=50_000, gt=0)
    start: Literal["previous", "source"] = "previous"
    scratch_baseline: bool = True
    # not the stage's own: left out of its dump, so that a dumped pipeline config validates again
    final_episodes: int = Field(default=20, ge=1, exclude=True)
    seed: Seed = Field(default=0, exclude=True)

    @model_validator(mode="after")
    def _pipeline_sets_these(self) -> FinetuneStage:
        for name in ("seed", "final_episodes"):
            if name in self.model_fields_set:
                raise ValueError(f"{name}: set by the pipeline (its seed and episodes), not per stage")
        return self

    def settings(self, seed: int, final_episodes: int) -> FinetuneSettings:
        values = self.model_dump(exclude={"enabled", "start", "scratch_baseline"})
        return FinetuneSettings(**{**values, "seed": seed, "final_episodes": final_episodes})


#: The oracle's candidates: the sim policy fine-tuned on the target, a fresh policy trained there from scratch.
Candidate = Literal["finetuned", "scratch"]
ORACLE_CANDIDATES: tuple[Candidate, ...] = ("finetuned", "scratch")


class OracleStage(StrictModel):
    """The best target return the pipeline can train: the better, by mean target return on the pipeline's
    evaluation episodes, of its ``candidates``, each trained on the target for ``timesteps`` target steps (default:
    the sim budget, the source config's ``total_timesteps``):

    - ``finetuned``: the sim policy fine-tuned on the target (strategy ``full``: every layer trains, at ``lr_scale``
      times the source's learning rate, default 0.1);
    - ``scratch``: a fresh policy trained on the target from scratch with the source's recipe (its config:
      algorithm, hyperparameters, network, envs, normalization), at the target's fixed dynamics.

    ``run``: an existing run is the oracle instead, and nothing is trained (``candidates``, ``timesteps`` and
    ``lr_scale`` then stay at their defaults).
    """

    enabled: bool = True
    run: str | None = None
    candidates: list[Candidate] = Field(default_factory=lambda: list(ORACLE_CANDIDATES), min_length=1)
    timesteps: int | None = Field(default=None, gt=0)
    lr_scale: float | None = Field(default=None, gt=0)

    @field_validator("candidates")
    @classmethod
    def _each_candidate_once(cls, candidates: list[str], info: ValidationInfo) -> list[str]:
        for name in candidates:
            if candidates.count(name) > 1:
                raise ValueError(f"{name!r} listed twice")
        if info.data.get("run") is not None and candidates != list(ORACLE_CANDIDATES):
            raise ValueError("an existing oracle run (run) is the oracle: no candidate is trained")
        return candidates

    @field_validator("timesteps", "lr_scale")
    @classmethod
    def _only_when_training(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is not None and info.data.get("run") is not None:
            raise ValueError("an existing oracle run (run) is the oracle: nothing is trained")
        listed = info.data.get("candidates", ORACLE_CANDIDATES)
        if info.field_name == "lr_scale" and value is not None and "finetuned" not in listed:
            raise ValueError("only for the finetuned candidate, which candidates does not list")
        return value


class Stages(StrictModel):
    zero_shot: ZeroShotStage = Field(default_factory=ZeroShotStage)
    sysid: SysidStage = Field(default_factory=SysidStage)
    identified: IdentifiedStage = Field(default_factory=IdentifiedStage)
    finetune: FinetuneStage = Field(default_factory=FinetuneStage)
    oracle: OracleStage = Field(default_factory=OracleStage)

    @model_validator(mode="after")
    def _identified_needs_sysid(self) -> Stages:
        if self.identified.enabled and not self.sysid.enabled:
            raise ValueError("identified: needs the sysid stage (enable sysid, or disable identified)")
        return self


class TransferConfig(StrictModel):
    """``simreal transfer``'s config: the sim policy, the target, which stages run, and how every stage's policy is
    evaluated on the target (``episodes`` from seed ``eval_seed``, the same episodes for every stage).

    Attributes:
        target: a target name or YAML of the source's robot.
        seed: seed of every stage's training, collection and fine-tuning.
        episodes: evaluation episodes per stage.
        eval_seed: seed of the evaluation episodes and bootstrap.
        source: the sim policy (see :class:`SourceStage`).
        stages: what runs (see :class:`Stages`).
    """

    kind: Literal["transfer"] = "transfer"
    target: str
    seed: Seed = 0
    episodes: int = Field(default=20, ge=2)
    eval_seed: Seed = 1000
    source: SourceStage
    stages: Stages = Field(default_factory=Stages)


def load_transfer_config(path: str, overrides: list[str] | None = None) -> TransferConfig:
    """Read, override (``--set key=value``, dotted) and validate a transfer config; a bare name is a shipped one.

    Raises:
        ConfigError: one line naming the file (or the ``--set`` key) and the field.
    """
    return load_transfer_config_with_source(path, overrides)[0]


def load_transfer_config_with_source(
    path: str, overrides: list[str] | None = None
) -> tuple[TransferConfig, ConfigSource]:
    """:func:`load_transfer_config`, and where each field came from: the pipeline names it in the errors of the
    stage configs it derives (:func:`~simreal.transfer.pipeline.run_pipeline`'s ``origin``)."""
    data, source = read_config(path, "transfer", overrides)
    try:
        return TransferConfig.model_validate(data), source
    except ValidationError as exc:
        field, message = validation_problem(exc)
        raise ConfigError(f"{source.where(field)}: {message}") from None
