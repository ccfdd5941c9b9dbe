"""What the pipeline's training stages train with: the source stage's setup (its training config with the user's
overrides and the pipeline's seed), the identified simulator's (the identified ranges and effects over the source
run's config) and the oracle candidates' fine-tuning settings; and the check, before anything is written, that the
target is one of the source robot's.

Every training config is derived from a resolved config (:func:`~simreal.transfer.derive.derive_setup`): errors name
the pipeline config's field that set the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simreal.envs.robots import load_robot, load_target, robot_label
from simreal.errors import ConfigError, DataError, SpecError
from simreal.fileio import read_json
from simreal.runs.algorithms import require_model_files
from simreal.runs.config import FixedScheduleConfig
from simreal.runs.config_files import (
    ConfigSource,
    from_sysid_file,
    load_config_with_source,
    parse_overrides,
    read_config,
)
from simreal.runs.rundir import CONFIG, MODEL, run_dir_of, saved_config
from simreal.runs.setup import TrainingSetup
from simreal.transfer.config import FinetuneSettings, TransferConfig, finetune_settings
from simreal.transfer.derive import derive_setup


def check_source(config: TransferConfig, origin: ConfigSource, trust_pickles: bool = False) -> None:
    """The source is there: an existing run (a run directory or a model file inside one, with the run's config and
    simreal's own model files, or stable-baselines3's pickles with ``trust_pickles``), or a training config that can
    be read.

    Raises:
        ConfigError: naming the pipeline config's ``source.run`` or ``source.config`` field.
    """
    source = config.source
    if source.run is not None:
        where, run = origin.where("source.run"), Path(source.run)
        if not run.exists():
            raise ConfigError(f"{where}: {run}: no such run directory or model file")
        try:
            saved_config(run_dir_of(run))
            require_model_files(run / MODEL if run.is_dir() else run, trust_pickles)
        except DataError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return
    try:
        read_config(source.training_config, "train")
    except ConfigError as exc:
        raise ConfigError(f"{origin.where('source.config')}: {exc}") from None


def check_target(config: TransferConfig, origin: ConfigSource) -> None:
    """The target is one of the source robot's (a name or a YAML file that fits it).

    Raises:
        ConfigError: naming the pipeline config's ``target`` field.
    """
    source = config.source
    try:
        if source.run is not None:  # the run's config names its robot: the model is loaded by the source stage
            robot = saved_config(run_dir_of(Path(source.run))).robot
        else:
            robot = load_config_with_source(source.training_config, source.overrides)[0].robot
        spec = load_robot(robot)
    except (ConfigError, DataError, SpecError):
        return  # the source stage reports its own problem, naming its own field
    try:
        load_target(spec, config.target)
    except SpecError as exc:
        raise ConfigError(f"{origin.where('target')}: {exc}") from None


def source_setup(config: TransferConfig, origin: ConfigSource) -> TrainingSetup:
    """The source stage's setup: its training config with the user's overrides, at the pipeline's seed.

    Raises:
        ConfigError: a bad override or derived config, naming the pipeline config's field.
    """
    source = config.source
    # the user's overrides are --set strings; the pipeline's own change (its seed) is a copy of the parsed config
    overrides_at = origin.where("source.overrides")
    try:
        keys = [key for key, _ in parse_overrides(source.overrides)]
    except ConfigError as exc:
        raise ConfigError(f"{overrides_at}: {exc}") from None
    parsed, parsed_source = load_config_with_source(
        source.training_config, source.overrides, {key: f"{overrides_at}: {key}" for key in keys}
    )
    seed = {"seed": origin.where("seed")}
    return derive_setup(parsed, {"seed": config.seed}, parsed_source, seed, origin.where("source"))


def identified_setup(config: TransferConfig, source_run: Path, identified: Path, origin: ConfigSource) -> TrainingSetup:
    """The identified simulator's setup: the source run's config over the identified ranges and effects.

    Args:
        config: the pipeline config (the stage's budget, the seed).
        source_run: the source stage's policy.
        identified: the sysid stage's ``identified.yaml`` (its ``sysid.json`` beside it).
        origin: where ``config`` came from.

    Raises:
        ConfigError: the derived config is not valid, naming the pipeline config's field.
    """
    details = read_json(identified.parent / "sysid.json")
    run_dir = run_dir_of(source_run)
    base = saved_config(run_dir)
    stage_at = origin.where("stages.identified")
    ranges_at = f"{stage_at}: randomization.ranges from {identified}"
    ranges, _ = from_sysid_file(str(identified), robot_label(base.robot), ranges_at)
    # a parameter the data could not pin down keeps the source's training range (its interval may be its limits)
    identifiable = {name: entry["identifiable"] for name, entry in details["parameters"].items()}
    source_ranges = base.randomization.ranges if isinstance(base.randomization.ranges, dict) else {}
    kept = {name: bounds for name, bounds in ranges.items() if identifiable.get(name, True)}
    ranges = {**source_ranges, **kept}
    identified_effects: dict[str, Any] = {}
    if details["action_delay_steps"] is not None:
        identified_effects["action_delay_steps"] = details["action_delay_steps"]
    if details["observation_noise"] is not None:
        identified_effects["obs_noise_std"] = details["observation_noise"]
    # the effects the source drew stay drawn (an identified one over [value, value]), so that a privileged
    # critic's inputs keep the source's layout; the rest are the identified values
    drawn = base.randomization.effects.drawn()
    effects: dict[str, Any] = {name: tuple(bounds) for name, bounds in drawn.items()}
    for name, value in identified_effects.items():
        effects[name] = (value, value) if name in drawn else value
    changes = {
        # every identifiable parameter over its identified interval (the others over the source's ranges), the
        # identified effects
        "randomization": {
            "enabled": True,
            "parameters": None,
            "ranges": ranges,
            "schedule": FixedScheduleConfig(),
            "effects": effects,
        },
        "total_timesteps": config.stages.identified.timesteps,
        "seed": config.seed,
        "eval": {"targets": []},  # the target is not looked at while training in the identified simulator
    }
    origins = {
        "total_timesteps": origin.where("stages.identified.timesteps"),
        "seed": origin.where("seed"),
        "randomization.ranges": ranges_at,
    }
    return derive_setup(base, changes, ConfigSource(run_dir / CONFIG), origins, stage_at)


def oracle_settings(config: TransferConfig, candidate: str, budget: int, origin: ConfigSource) -> FinetuneSettings:
    """An oracle candidate's fine-tuning settings: ``finetuned`` continues the sim policy (every layer), ``scratch``
    starts a fresh one with the source's config; each for ``budget`` target steps.

    Raises:
        ConfigError: naming the pipeline config's ``stages.oracle``.
    """
    lr_scale = config.stages.oracle.lr_scale if candidate == "finetuned" else None
    return finetune_settings(
        origin.where("stages.oracle"),
        steps=budget,
        strategy="full" if candidate == "finetuned" else "scratch",
        lr_scale=lr_scale,
        count_eval=False,
        eval_every=max(1, budget // 10),
        final_episodes=config.episodes,
        seed=config.seed,
    )
