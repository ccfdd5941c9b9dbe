"""A stage's training config, derived from the resolved source config: a copy with the stage's changes, validated
and resolved again, never ``--set`` strings formatted and parsed back.

A value the pipeline changes comes from the pipeline's config (a stage's budget, the seed) or from what an earlier
stage measured (the identified ranges): errors about a changed field name where it came from, the others name the
source config's file, as :func:`simreal.runs.setup.resolve` would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from simreal.runs.config import TrainConfig
from simreal.runs.config_files import ConfigSource, validate_config
from simreal.runs.setup import TrainingSetup, resolve


def updated(model: BaseModel, changes: Mapping[str, Any]) -> BaseModel:
    """A copy of ``model`` with ``changes``; a mapping given for a nested model updates that model's own fields (a
    copy of it, recursively), any other value (a model among them) replaces the field whole.

    The copy is not validated: :func:`derive_setup` validates it.

    Raises:
        KeyError: a changed field that ``model`` does not have.
    """
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in type(model).model_fields:
            raise KeyError(f"{type(model).__name__} has no field {name!r}")
        current = getattr(model, name)
        if isinstance(value, Mapping) and isinstance(current, BaseModel):
            value = updated(current, value)
        values[name] = value
    return model.model_copy(update=values)


def changed_fields(changes: Mapping[str, Any], model: BaseModel, prefix: str = "") -> list[str]:
    """The dotted names of the fields ``changes`` sets on ``model`` (a nested model's own fields, not the model)."""
    fields = []
    for name, value in changes.items():
        dotted = f"{prefix}.{name}" if prefix else name
        current = getattr(model, name, None)
        if isinstance(value, Mapping) and isinstance(current, BaseModel):
            fields.extend(changed_fields(value, current, dotted))
        else:
            fields.append(dotted)
    return fields


def derive_setup(
    base: TrainConfig,
    changes: Mapping[str, Any],
    base_source: ConfigSource | str,
    origins: Mapping[str, str],
    default_origin: str,
) -> TrainingSetup:
    """The resolved setup of ``base`` with ``changes`` (see :func:`updated`), validated again so that a bad value is
    caught as in a config file.

    Args:
        base: the resolved source config.
        changes: the stage's changes, nested like the config.
        base_source: where ``base``'s fields came from (its file, and any ``--set`` keys).
        origins: where a changed field's value came from, by dotted field (e.g. ``total_timesteps`` ->
            ``transfer.yaml: stages.identified.timesteps``); for errors.
        default_origin: where the other changed fields came from (e.g. ``transfer.yaml: stages.identified``): an
            error names it and the field.

    Returns:
        The validated, resolved setup.

    Raises:
        ConfigError: the derived config is not valid, or does not fit its robot: one line naming where the field
            came from.
    """
    if isinstance(base_source, str):
        base_source = ConfigSource(base_source)
    fields = changed_fields(changes, base)
    labels = {**base_source.labels, **{name: origins.get(name, f"{default_origin}: {name}") for name in fields}}
    source = ConfigSource(base_source.path, [(key, None) for key in [*base_source.keys, *fields]], labels)
    derived = updated(base, changes)
    return resolve(validate_config(derived.model_dump(), source), source)
