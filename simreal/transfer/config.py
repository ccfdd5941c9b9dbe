"""Settings of fine-tuning on a target (``simreal finetune`` and the pipeline's ``finetune`` stage), validated with
pydantic."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simreal.envs.spec import format_validation_error
from simreal.errors import ConfigError
from simreal.transfer.strategies import DEFAULT_LR_SCALE


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FinetuneSettings(_Strict):
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
    seed: int = Field(default=0, ge=0)

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
        return FinetuneSettings(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None
