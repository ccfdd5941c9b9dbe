"""Finding and reading a config: a path or a shipped config's name, ``--set key=value`` overrides by dotted path,
where each field came from (:class:`ConfigSource`, so errors name the file's field or the override that set it),
and a training config validated against its schema (:mod:`simreal.runs.config`), a sysid file's ranges read in
place of its path. Transfer configs are read by the same :func:`read_config` and validated by
:mod:`simreal.transfer.config`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from simreal.envs.robots import load_target_file, robot_label
from simreal.envs.spec import Effects, validation_problem
from simreal.errors import ConfigError, SpecError, unknown_name
from simreal.fileio import parse_yaml, read_text, read_yaml
from simreal.resources import configs_dir
from simreal.runs.config import SCHEDULE_KINDS, EffectsConfig, TrainConfig


def parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """Parse ``key=value`` strings; values are YAML (``3``, ``1e-4``, ``[64, 64]``, ``true``, ``null``).

    Raises:
        ConfigError: a pair without ``=`` or with an empty key.
    """
    parsed = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {pair!r}: expected key=value with a dotted key, e.g. algorithm.name=sac")
        try:
            value = parse_yaml(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        parsed.append((key.strip(), value))
    return parsed


def apply_overrides(data: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Set each dotted key in a copy of the raw config mapping (validation happens afterwards)."""
    data = copy.deepcopy(data)
    for key, value in overrides:
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key}: {part} is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


ConfigKind = Literal["train", "transfer"]


def shipped_configs(kind: ConfigKind | None = None) -> list[str]:
    """The names of the shipped configs, sorted; with ``kind``, only training configs or only transfer pipelines
    (``kind: transfer`` in the file)."""
    names = []
    for path in configs_dir().glob("*.yaml"):
        data = parse_yaml(read_text(path, ConfigError))
        found: ConfigKind = "transfer" if isinstance(data, dict) and data.get("kind") == "transfer" else "train"
        if kind is None or found == kind:
            names.append(path.stem)
    return sorted(names)


def resolve_config_path(config: str | os.PathLike[str], kind: ConfigKind | None = None) -> Path:
    """A config path as given, or the name of a shipped config (``hopper_ppo_dr`` or ``hopper_ppo_dr.yaml``).

    Args:
        config: a path or a shipped config's name.
        kind: the kind of config the caller runs: an unknown name lists only the shipped configs of that kind.

    Raises:
        ConfigError: a bare name that is neither a file nor a shipped config (the message lists the shipped ones).
    """
    path = Path(config)
    if path.exists():
        return path
    shipped = configs_dir() / (path.name if path.suffix else f"{path.name}.yaml")
    if len(path.parts) == 1 and shipped.exists():
        return shipped
    if len(path.parts) == 1 and path.suffix in ("", ".yaml", ".yml"):
        raise ConfigError(unknown_name("config", str(config), [*shipped_configs(kind), "or a YAML file"]))
    return path


class ConfigSource:
    """Where each field of a config came from: a ``--set`` override or the file, to name it in errors.

    Args:
        path: the config file.
        overrides: the parsed ``key=value`` overrides, in order.
        labels: how the caller names an override key it set on the user's behalf (the CLI's ``--seed`` sets
            ``seed``): errors about that field name the label, not ``--set key``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        overrides: list[tuple[str, Any]] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.path = str(path)
        self.keys = [key for key, _ in overrides or []]
        self.labels = dict(labels or {})

    def where(self, field: str) -> str:
        """``--set key: field`` when an override set ``field`` (or a mapping holding it), else ``file: field``."""
        for key in reversed(self.keys):  # the last override of a field wins
            shown = self.labels.get(key, f"override {key}")
            if field == key:
                return shown
            if field.startswith(f"{key}.") or key.startswith(f"{field}."):
                return f"{shown}: {field}"
        return f"{self.path}: {field}" if field else self.path


def load_config(config: str | os.PathLike[str], overrides: list[str] | None = None) -> TrainConfig:
    """Read, override and validate a training config (its schema only: :func:`simreal.runs.setup.load_setup`
    also checks it against the robot).

    Args:
        config: a YAML path, or the name of a shipped config.
        overrides: ``key=value`` strings with dotted keys.

    Raises:
        ConfigError: missing or malformed file, unknown key, wrong type, out-of-range value; the message names the
            file and the field, or the ``--set`` key that set it.
    """
    return load_config_with_source(config, overrides)[0]


def load_config_with_source(
    config: str | os.PathLike[str], overrides: list[str] | None = None, labels: Mapping[str, str] | None = None
) -> tuple[TrainConfig, ConfigSource]:
    """:func:`load_config`, and where each field came from (for the errors of later checks; ``labels``: see
    :class:`ConfigSource`)."""
    data, source = read_config(config, "train", overrides, labels)
    return validate_config(data, source), source


def read_config(
    config: str | os.PathLike[str],
    kind: ConfigKind,
    overrides: list[str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], ConfigSource]:
    """A config's raw mapping with its ``key=value`` overrides applied (validation is the caller's, by kind), and
    where each field came from.

    Raises:
        ConfigError: an unknown shipped name, a missing or malformed file, a malformed override.
    """
    path = resolve_config_path(config, kind)
    pairs = parse_overrides(overrides or [])
    return apply_overrides(read_yaml(path, ConfigError), pairs), ConfigSource(path, pairs, labels)


def validate_config(data: dict[str, Any], source: ConfigSource) -> TrainConfig:
    """Validate a raw config mapping; a ``randomization.ranges`` path is replaced by the ranges in that file.

    Raises:
        ConfigError: naming the field and where it came from.
    """
    if isinstance(data, dict) and data.get("kind") == "transfer":
        raise ConfigError(f"{source.where('kind')}: a transfer pipeline's config: run it with simreal transfer")
    try:
        parsed = TrainConfig.model_validate(data)
    except ValidationError as exc:
        field, message = validation_problem(exc, drop=("ppo", "sac", *SCHEDULE_KINDS))
        raise ConfigError(f"{source.where(field)}: {message}") from None
    if isinstance(parsed.robot, str) and Path(parsed.robot).suffix in (".yaml", ".yml"):
        # the run keeps the robot file's content, not a path that may change or move
        robot = read_yaml(parsed.robot, ConfigError)
        robot.setdefault("robot", Path(parsed.robot).stem)
        parsed = parsed.model_copy(update={"robot": robot})
    if isinstance(parsed.randomization.ranges, str):
        # the run keeps the ranges themselves, not a path that may change or move
        where = source.where("randomization.ranges")
        ranges, effects = from_sysid_file(parsed.randomization.ranges, robot_label(parsed.robot), where)
        update: dict[str, Any] = {"ranges": ranges}
        if "effects" not in (data.get("randomization") or {}):
            # the identified delay and noise, unless the config names its own
            update["effects"] = EffectsConfig(**effects.model_dump())
        parsed = parsed.model_copy(update={"randomization": parsed.randomization.model_copy(update=update)})
    return parsed


def from_sysid_file(path: str, robot: str, where: str) -> tuple[dict[str, list[float]], Effects]:
    """The training ranges and the effects in a YAML written by ``simreal sysid``.

    Raises:
        ConfigError: the file is missing, malformed, for another robot, or holds no ranges.
    """
    try:
        spec, _, target = load_target_file(path)
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if spec.robot != robot:
        raise ConfigError(f"{where}: {path}: base: ranges for {spec.robot}, not {robot}")
    if not target.ranges:
        raise ConfigError(f"{where}: {path}: ranges: none in the file (write it with simreal sysid)")
    return {name: list(bounds) for name, bounds in target.ranges.items()}, target.effects
