"""The transfer pipeline: from a sim policy to the target, one stage at a time, with the target return, the gap and
the target steps used at every stage.

Stages (each optional, in this order): ``source`` (train the sim policy, or take an existing run), ``zero_shot``,
``sysid`` (record target episodes, identify the parameters), ``identified`` (train in the identified simulator),
``scratch`` and ``finetune`` (a fresh policy and the fine-tuned one on the target, same budget), ``oracle`` (the
better of the sim policy fine-tuned on the target and a fresh policy trained there from scratch with the source's
recipe, each with the sim budget). Every stage's policy, and each oracle candidate, is evaluated on the target with
the same episodes. ``pipeline.json`` records each finished stage, and each finished oracle candidate while the other
is still to train (``partial``); a killed pipeline continues from the last finished one (an interrupted training
stage continues from its checkpoint, others start over; an oracle candidate that finished is not trained again).

Every training config a stage uses is derived from the resolved source config (:mod:`simreal.transfer.stage_setups`,
through :mod:`simreal.transfer.derive`): a copy with the stage's changes, validated again; an error names the pipeline
config's field that set the value. The state file's checks and the stages' folders are in
:mod:`simreal.transfer.pipeline_folder`.

Layout of the output folder::

    pipeline.json   the config, every finished stage's record, and finished oracle candidates (``partial``)
    source/ identified/ scratch/ finetune/   run directories (simreal evaluate takes each)
    oracle/finetuned/ oracle/scratch/        the oracle's candidates' run directories
    sysid/          recording.npz, identified.yaml, sysid.json
    evaluations/    <stage>.json: simreal evaluate's document for each stage's policy on the target (oracle.json:
                    the winning candidate's); oracle_<candidate>.json for each oracle candidate
    report.md report.json returns.png curves.png tb/   the report (see :mod:`simreal.transfer.report`)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from stable_baselines3.common.callbacks import BaseCallback

from simreal.envs.robots import load_target
from simreal.errors import ConfigError, DataError
from simreal.evaluate.evaluator import evaluate_run
from simreal.evaluate.gap import reality_gap
from simreal.fileio import atomic_write_json, atomic_write_text, read_json
from simreal.locks import LOCK, hold
from simreal.runs.config_files import ConfigSource
from simreal.runs.policy import load_policy
from simreal.runs.rundir import MODEL, run_dir_of, saved_config
from simreal.sysid.collect import collect
from simreal.sysid.identify import identify
from simreal.sysid.trajectories import save_trajectories, split_holdout
from simreal.train.trainer import train
from simreal.transfer.config import FinetuneSettings, TransferConfig
from simreal.transfer.finetune import finetune
from simreal.transfer.pipeline_folder import check_state_paths, first_difference, fresh_folder, training_folder
from simreal.transfer.report import write_report
from simreal.transfer.stage_setups import check_source, check_target, identified_setup, oracle_settings, source_setup

SCHEMA = "simreal.pipeline/1"
STATE = "pipeline.json"
STAGES = ("source", "zero_shot", "sysid", "identified", "scratch", "finetune", "oracle")

#: ``progress(stage, total_steps)``: extra stable-baselines3 callbacks for a stage that trains (a progress bar).
Progress = Callable[[str, int], Sequence[BaseCallback]]
#: ``on_stage(stage, event)``: ``event`` is ``start``, ``done`` or ``finished before``; the oracle's candidates are
#: told as ``oracle.<candidate>`` inside the oracle stage.
OnStage = Callable[[str, str], None]


@dataclass
class PipelineResult:
    """The output folder and the report document (``report.json``)."""

    out: Path
    report: dict[str, Any]


def run_pipeline(
    config: TransferConfig,
    out: str | Path,
    *,
    device: str = "cpu",
    progress: Progress | None = None,
    on_stage: OnStage | None = None,
    origin: ConfigSource | str = "transfer config",
    trust_pickles: bool = False,
) -> PipelineResult:
    """Run the enabled stages that have not finished yet, then write the report.

    Args:
        config: the validated pipeline config.
        out: the output folder (created; a folder of another config's pipeline is refused).
        device: torch device of every training stage.
        progress: extra callbacks for training stages (the CLI's progress bars).
        on_stage: told when a stage (or an oracle candidate) starts, ends, or was finished by an earlier run.
        origin: where ``config`` came from (its file, and any ``--set`` keys, see
            :func:`~simreal.transfer.config.load_transfer_config_with_source`): errors in the training configs the
            stages derive name the pipeline config's field through it.
        trust_pickles: let a source run holding stable-baselines3's pickles only load
            (:data:`~simreal.errors.TRUST_PICKLES`).

    Raises:
        ConfigError: ``out`` holds a pipeline with another config; an unknown target; a derived training config
            that is not valid.
        DataError: the source run is missing or corrupt.
    """
    out = Path(out)
    origin = ConfigSource(origin) if isinstance(origin, str) else origin
    # before anything is written: a wrong source or target leaves no state behind
    check_source(config, origin, trust_pickles)
    check_target(config, origin)
    read_json(out / STATE)  # a damaged state is refused before the folder is held (and a lock file made in it)
    with hold(out, "pipeline folder"):
        return _run_stages(config, out, device, progress, on_stage, origin, trust_pickles)


def _run_stages(
    config: TransferConfig,
    out: Path,
    device: str,
    progress: Progress | None,
    on_stage: OnStage | None,
    origin: ConfigSource,
    trust_pickles: bool,
) -> PipelineResult:
    """:func:`run_pipeline` in an output folder this process holds."""
    state = _state(config, out)
    told = on_stage or (lambda stage, event: None)
    runner = _Stages(
        config,
        out=out,
        state=state,
        device=device,
        progress=progress or (lambda stage, total: []),
        on_stage=told,
        origin=origin,
        trust_pickles=trust_pickles,
    )
    for name in STAGES:
        if not runner.enabled(name):
            continue
        if name in state["stages"]:
            if on_stage:
                on_stage(name, "finished before")
            continue
        if on_stage:
            on_stage(name, "start")
        started = time.perf_counter()
        record = getattr(runner, name)()
        # a stage finished in parts (the oracle's candidates) counts each part's time
        record.setdefault("seconds", time.perf_counter() - started)
        state["stages"][name] = record
        atomic_write_json(out / STATE, state)
        if on_stage:
            on_stage(name, "done")
    report = write_report(config, out, state)
    return PipelineResult(out, report)


def _state(config: TransferConfig, out: Path) -> dict[str, Any]:
    """The pipeline's state in ``out``: a new one for a new folder (or one where nothing began), else the recorded
    one, its paths checked.

    Raises:
        ConfigError: ``out`` holds something else, or a pipeline that began with another config.
        DataError: ``pipeline.json`` is not a pipeline's state, or names a path outside ``out``.
    """
    wanted = config.model_dump(mode="json")
    state = read_json(out / STATE)
    if state is None:
        if out.exists() and any(p.name != LOCK for p in out.iterdir()):
            raise ConfigError(f"{out}: not empty and not a pipeline's folder (choose another output folder)")
        out.mkdir(parents=True, exist_ok=True)
        state = {"schema": SCHEMA, "config": wanted, "stages": {}}
        atomic_write_json(out / STATE, state)
        return state
    if state.get("schema") != SCHEMA or not isinstance(state.get("stages"), dict):
        raise DataError(f"{out / STATE}: not a simreal pipeline state")
    check_state_paths(state, out / STATE, config.source.run)
    started = state["stages"] or any(p.name not in (STATE, LOCK) for p in out.iterdir())
    if state.get("config") != wanted and not started:
        # nothing started under the old config: nothing to mix, the new one starts afresh
        state = {"schema": SCHEMA, "config": wanted, "stages": {}}
        atomic_write_json(out / STATE, state)
        return state
    if state.get("config") != wanted:
        differing = first_difference(state.get("config"), wanted)
        raise ConfigError(
            f"{out}: holds a pipeline run with another config ({differing} differs); continue it with the same "
            "config, or choose another output folder"
        )
    return state


class _Stages:
    """One method per stage; each returns the stage's record for ``pipeline.json``."""

    def __init__(
        self,
        config: TransferConfig,
        out: Path,
        state: dict[str, Any],
        device: str,
        progress: Progress,
        on_stage: OnStage,
        origin: ConfigSource,
        trust_pickles: bool,
    ) -> None:
        self.config, self.out, self.state, self.device, self.progress = config, out, state, device, progress
        self.on_stage, self.origin, self.trust_pickles = on_stage, origin, trust_pickles
        self.stages = config.stages

    def enabled(self, name: str) -> bool:
        if name == "source":
            return True
        if name == "scratch":
            return self.stages.finetune.enabled and self.stages.finetune.scratch_baseline
        return getattr(self.stages, name).enabled

    # -- helpers --------------------------------------------------------------------------------------------------
    @property
    def source_run(self) -> Path:
        return Path(self.state["stages"]["source"]["policy"])

    def _evaluate(self, name: str, policy: Path) -> dict[str, Any]:
        report = evaluate_run(
            policy,
            [self.config.target],
            self.config.episodes,
            self.config.eval_seed,
            device=self.device,
            trust_pickles=self.trust_pickles,
        )
        atomic_write_json(self.out / "evaluations" / f"{name}.json", report)
        (row,) = report["targets"].values()
        keys = ("mean_return", "mean_return_ci95", "returns", "gap", "gap_ci95", "relative_gap", "relative_gap_ci95")
        return {
            **{key: row[key] for key in keys},
            "source_nominal_return": report["source"]["nominal"]["mean_return"],
        }

    def _chain_steps(self) -> int:
        """Target steps the adaptation chain has used so far (sysid's recording, then fine-tuning)."""
        return sum(self.state["stages"].get(name, {}).get("target_steps", 0) for name in ("sysid",))

    def _policy_record(self, name: str, policy: Path, steps: int, total: int, **extra: Any) -> dict[str, Any]:
        return {
            "policy": str(policy),
            "target_steps": steps,
            "target_steps_total": total,
            "evaluation": self._evaluate(name, policy),
            **extra,
        }

    # -- stages ---------------------------------------------------------------------------------------------------
    def source(self) -> dict[str, Any]:
        source = self.config.source
        if source.run is not None:
            try:
                # fails early, with one line, on a missing or corrupt run
                policy = load_policy(source.run, trust_pickles=self.trust_pickles)
            except DataError as exc:
                raise DataError(f"{self.origin.where('source.run')}: {exc}") from None
            load_target(policy.setup.spec, self.config.target)
            return {"policy": str(Path(source.run)), "target_steps": 0, "trained": False}
        setup = source_setup(self.config, self.origin)
        load_target(setup.spec, self.config.target)
        folder, resume = training_folder(self.out, "source")
        callbacks = self.progress("source", setup.config.total_timesteps)
        train(setup, folder, device=self.device, resume=resume, callbacks=callbacks)
        return {"policy": str(folder), "target_steps": 0, "trained": True}

    def zero_shot(self) -> dict[str, Any]:
        return self._policy_record("zero_shot", self.source_run, 0, 0)

    def sysid(self) -> dict[str, Any]:
        settings = self.stages.sysid
        folder = fresh_folder(self.out, "sysid")
        folder.mkdir(parents=True)
        # a robot of one's own too, not only a shipped name
        robot = load_policy(self.source_run, trust_pickles=self.trust_pickles).setup.spec
        recording = collect(
            self.source_run,
            robot,
            self.config.target,
            settings.episodes,
            self.config.seed,
            trust_pickles=self.trust_pickles,
        )
        save_trajectories(recording, folder / "recording.npz")
        fitted, held_out = split_holdout(recording)
        result = identify(
            fitted,
            robot,
            settings.params,
            horizon=settings.horizon,
            budget=settings.budget,
            seed=self.config.seed,
            delays=range(4) if settings.delay else None,
            holdout=held_out,
            min_width=settings.min_width,
        )
        identified = folder / "identified.yaml"
        text = yaml.safe_dump(result.target_yaml(str(folder / "recording.npz")), sort_keys=False)
        atomic_write_text(identified, text)
        details = result.as_dict()
        atomic_write_json(folder / "sysid.json", details)
        misfit = details["misfit"]
        return {
            "target_steps": len(recording),
            "target_steps_total": len(recording),
            "identified": str(identified),
            "dynamics_gap": details["dynamics_gap"],
            "mean_relative_error": details["mean_relative_error"],
            "action_delay_steps": details["action_delay_steps"],
            "misfit_flagged": bool(misfit and misfit["flagged"]),
        }

    def identified(self) -> dict[str, Any]:
        settings, sysid = self.stages.identified, self.state["stages"]["sysid"]
        setup = identified_setup(self.config, self.source_run, Path(sysid["identified"]).resolve(), self.origin)
        folder, resume = training_folder(self.out, "identified")
        init = self._model_of(self.source_run) if settings.mode == "finetune" else None
        callbacks = self.progress("identified", settings.timesteps)
        train(
            setup,
            folder,
            device=self.device,
            resume=resume,
            callbacks=callbacks,
            init=init,
            trust_pickles=self.trust_pickles,
        )
        steps = self._chain_steps()
        return self._policy_record("identified", folder, 0, steps, mode=settings.mode, sim_steps=settings.timesteps)

    def scratch(self) -> dict[str, Any]:
        settings = self.stages.finetune.settings(self.config.seed, self.config.episodes)
        settings = settings.model_copy(update={"strategy": "scratch", "l2sp": 0.0, "lr_scale": None})
        result = self._finetune("scratch", self.source_run, settings, None)
        used = result.report["budget"]["used"]
        return self._policy_record("scratch", result.run_dir, used, used)

    def finetune(self) -> dict[str, Any]:
        stage = self.stages.finetune
        start = self.source_run
        if stage.start == "previous" and "identified" in self.state["stages"]:
            start = Path(self.state["stages"]["identified"]["policy"])
        baseline = self.out / "scratch" if "scratch" in self.state["stages"] else None
        result = self._finetune("finetune", start, stage.settings(self.config.seed, self.config.episodes), baseline)
        used = result.report["budget"]["used"]
        total = used + (self._chain_steps() if start != self.source_run else 0)
        extra = {key: result.report[key] for key in ("forgetting", "against_scratch") if key in result.report}
        return self._policy_record("finetune", result.run_dir, used, total, start=str(start), **extra)

    def oracle(self) -> dict[str, Any]:
        stage = self.stages.oracle
        if stage.run is not None:
            run = Path(stage.run)
            # an oracle trained elsewhere: its own target steps, from its fine-tuning report or its run record
            finetuned = read_json(run / "finetune.json", default={}) if run.is_dir() else {}
            steps = (finetuned.get("budget") or {}).get("train_steps")
            if steps is None:
                steps = read_json(run_dir_of(run) / "run.json", default={}).get("num_timesteps", 0)
            record = self._policy_record("oracle", run, steps, steps, trained=False, winner="run", won_by=None)
            record["candidates"] = {"run": {key: record[key] for key in ("policy", "target_steps", "evaluation")}}
            return record
        budget = stage.timesteps or saved_config(run_dir_of(self.source_run)).total_timesteps
        # each finished candidate is recorded at once: a killed pipeline does not train it again
        finished = self.state.setdefault("partial", {}).setdefault("oracle", {})
        for name in stage.candidates:
            if name in finished:
                self.on_stage(f"oracle.{name}", "finished before")
                continue
            self.on_stage(f"oracle.{name}", "start")
            finished[name] = self._oracle_candidate(name, budget)
            atomic_write_json(self.out / STATE, self.state)
            self.on_stage(f"oracle.{name}", "done")
        candidates = {name: finished[name] for name in stage.candidates}
        means = {name: candidate["evaluation"]["mean_return"] for name, candidate in candidates.items()}
        winner = max(candidates, key=means.__getitem__)  # a tie goes to the candidate listed first
        others = [name for name in candidates if name != winner]
        won_by = None
        if others:
            runner_up = max(others, key=means.__getitem__)
            rng = np.random.default_rng(self.config.eval_seed)
            ours, theirs = (candidates[name]["evaluation"]["returns"] for name in (winner, runner_up))
            difference = reality_gap(ours, theirs, rng)  # the winner's mean target return minus the runner-up's
            won_by = {"runner_up": runner_up, "difference": difference.gap, "difference_ci95": list(difference.gap_ci)}
        evaluations = self.out / "evaluations"
        atomic_write_json(evaluations / "oracle.json", read_json(evaluations / f"oracle_{winner}.json"))
        chosen = candidates[winner]
        del self.state["partial"]["oracle"]  # the stage's record, written next, holds the candidates
        if not self.state["partial"]:
            del self.state["partial"]
        return {
            "policy": chosen["policy"],
            "target_steps": chosen["target_steps"],
            "target_steps_total": chosen["target_steps"],
            "evaluation": chosen["evaluation"],
            "trained": True,
            "winner": winner,
            "won_by": won_by,
            "candidates": candidates,
            "seconds": sum(candidate["seconds"] for candidate in candidates.values()),
        }

    def _oracle_candidate(self, name: str, budget: int) -> dict[str, Any]:
        """Train one oracle candidate on the target for ``budget`` target steps and evaluate it there: ``finetuned``
        continues the sim policy (every layer), ``scratch`` starts a fresh one with the source's config."""
        started = time.perf_counter()
        settings = oracle_settings(self.config, name, budget, self.origin)
        result = self._finetune(f"oracle.{name}", self.source_run, settings, None, folder=f"oracle/{name}")
        return {
            "policy": str(result.run_dir),
            "target_steps": result.report["budget"]["train_steps"],
            "evaluation": self._evaluate(f"oracle_{name}", result.run_dir),
            "seconds": time.perf_counter() - started,
        }

    def _finetune(
        self, name: str, start: Path, settings: FinetuneSettings, baseline: Path | None, folder: str | None = None
    ) -> Any:
        run_dir = fresh_folder(self.out, folder or name)
        callbacks = self.progress(name, settings.steps)
        return finetune(
            start,
            self.config.target,
            settings,
            run_dir,
            device=self.device,
            baseline=baseline,
            callbacks=callbacks,
            trust_pickles=self.trust_pickles,
        )

    def _model_of(self, policy: Path) -> Path:
        return policy / MODEL if policy.is_dir() else policy
