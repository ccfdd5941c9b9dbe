"""Multi-seed and parameter sweeps as Ray tasks: many ``train`` + ``evaluate`` (or ``transfer``) jobs, locally or on a
cluster, aggregated over seeds.

A sweep is the product of a grid of ``--set`` overrides and seeds; each job gets its own folder under the sweep's
output folder. Every job's config is validated before anything runs (a bad value is one line, nothing started). A
job that fails is reported with its error (``error.txt`` in its folder) and the others go on; a finished job
(``result.json`` in its folder) is skipped when the sweep runs again, an interrupted one continues from its last
checkpoint. The aggregate is one row per grid point and env (nominal, the training distribution, each target; or
each transfer stage): the mean return over seeds with a two-stage bootstrap 95% CI (seeds, then episodes).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import itertools
import math
import os
import re
import socket
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simreal.errors import ConfigError, SetupError, shown
from simreal.fileio import atomic_write, atomic_write_json, atomic_write_text, read_json, read_yaml
from simreal.locks import hold
from simreal.runs.config import check_seed
from simreal.runs.config_files import resolve_config_path

RESULT = "result.json"
ERROR = "error.txt"
SCHEMA = "simreal.sweep/1"
#: The most jobs one sweep plans (grid points times seeds): each job trains a policy, so ten thousand is already a
#: cluster's week; a bigger product is a typo, refused before a single config is validated.
MAX_JOBS = 10_000
#: How long a Ray cluster's address is given to accept a connection before the sweep gives up on it (Ray itself
#: retries an address that does not answer for minutes).
RAY_CONNECT_SECONDS = 5.0


JobKind = Literal["train", "transfer"]
JobStatus = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class SweepJob:
    """One job: a config with overrides and a seed, run into ``folder``."""

    name: str
    kind: JobKind
    config: str
    overrides: tuple[str, ...]
    point: tuple[tuple[str, str], ...]  # the grid point: (key, value) pairs
    seed: int
    folder: str
    episodes: int
    eval_seed: int


@dataclass
class JobOutcome:
    """What became of a job: ``done``, ``skipped`` (finished before), or ``failed`` with the error."""

    job: SweepJob
    status: JobStatus
    error: str = ""
    seconds: float = 0.0


@dataclass
class SweepResult:
    """Every job's outcome and the aggregate rows."""

    outcomes: list[JobOutcome]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``key=v1,v2`` strings as key -> values (raises :class:`ConfigError` naming ``--grid``). A value holding a
    comma (a YAML list) is written with brackets: ``algorithm.network.pi=[64,64],[256,256]``."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        values = [v.strip() for v in re.split(r",(?![^\[]*\])", text) if v.strip()]
        if not sep or not key.strip() or not values:
            raise ConfigError(f"grid: {item!r}: expected key=v1,v2 with a dotted key, e.g. algorithm.name=ppo,sac")
        if key.strip() in grid:
            raise ConfigError(f"grid: {key.strip()}: given twice")
        grid[key.strip()] = values
    return grid


def plan_sweep(
    config: str,
    out: str | os.PathLike[str],
    seeds: Sequence[int],
    grid: dict[str, list[str]] | None = None,
    overrides: Sequence[str] = (),
    episodes: int = 10,
    eval_seed: int = 1000,
) -> list[SweepJob]:
    """The sweep's jobs, each config validated now (a train config against its robot, a transfer config's schema).

    Args:
        config: a training or transfer config (YAML path or shipped name; ``kind: transfer`` marks a transfer one).
        out: the sweep's folder; job folders are ``<key>=<value>,.../seed_<s>``.
        seeds: the seeds of every grid point.
        grid: key -> values, every combination is a point (none: one point, the config itself).
        overrides: ``--set`` overrides applied to every job before the grid's.
        episodes, eval_seed: the evaluation of each trained policy (``simreal evaluate --episodes --seed``).

    Raises:
        ConfigError: more than :data:`MAX_JOBS` jobs, a seed out of range, an invalid config for some point, naming
            the point.
    """
    grid = grid or {}
    if not seeds:
        raise ConfigError("seeds: at least one seed")
    count = math.prod(len(values) for values in grid.values())
    if count * len(seeds) > MAX_JOBS:
        field = "grid" if grid else "seeds"
        raise ConfigError(
            f"{field}: {count} grid points x {len(seeds)} seeds = {count * len(seeds)} jobs, "
            f"at most {MAX_JOBS} in one sweep"
        )
    check_seed(min(seeds), "seeds")
    check_seed(max(seeds), "seeds")
    check_seed(eval_seed, "eval_seed")
    path = resolve_config_path(config)
    kind: JobKind = "transfer" if read_yaml(path, ConfigError).get("kind") == "transfer" else "train"
    points = [tuple(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    jobs = []
    for point in points:
        label = ",".join(f"{key}={value}" for key, value in point) or "config"
        for index, seed in enumerate(seeds):
            settings = (*overrides, *(f"{key}={value}" for key, value in point), f"seed={seed}")
            if index == 0:  # the seeds of a point differ by their (checked) seed only: one validation per point
                try:
                    _validate(kind, str(path), list(settings))
                except ConfigError as exc:
                    raise ConfigError(f"{label}: {exc}") from None
            folder = Path(out) / _safe(label) / f"seed_{seed}"
            name = f"{label} seed {seed}"
            jobs.append(
                SweepJob(
                    name,
                    kind=kind,
                    config=str(path),
                    overrides=settings,
                    point=point,
                    seed=seed,
                    folder=str(folder),
                    episodes=episodes,
                    eval_seed=eval_seed,
                )
            )
    return jobs


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", label)


def _validate(kind: JobKind, config: str, settings: list[str]) -> None:
    if kind == "transfer":
        from simreal.transfer.config import load_transfer_config

        load_transfer_config(config, settings)
    else:
        from simreal.runs.setup import load_setup

        load_setup(config, settings)


def run_job(job: SweepJob, device: str = "cpu") -> dict[str, Any]:
    """Run one job in this process: train (continuing its checkpoint, if any) and evaluate, or the transfer pipeline;
    write ``result.json`` (or ``error.txt``) in its folder. Never raises: a failure is returned as
    ``{"status": "failed", "error": ...}``."""
    import time

    folder = Path(job.folder)
    started = time.perf_counter()
    try:
        if job.kind == "transfer":
            from simreal.transfer.config import load_transfer_config
            from simreal.transfer.pipeline import run_pipeline

            report = run_pipeline(load_transfer_config(job.config, list(job.overrides)), folder, device=device).report
            result = {"kind": "transfer", "rows": _transfer_rows(report, folder)}
        else:
            result = {"kind": "train", "rows": _train_and_evaluate(job, folder, device)}
    except Exception as exc:  # noqa: BLE001 - one failed job must not stop the sweep: it is reported instead
        message = f"{type(exc).__name__}: {exc}"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / ERROR, message + "\n\n" + traceback.format_exc())
        return {"status": "failed", "error": message, "seconds": time.perf_counter() - started}
    (folder / ERROR).unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    atomic_write_json(folder / RESULT, {"schema": SCHEMA, "job": asdict(job), **result, "seconds": seconds})
    return {"status": "done", "seconds": seconds}


def _train_and_evaluate(job: SweepJob, folder: Path, device: str) -> dict[str, list[float]]:
    import shutil

    from simreal.evaluate.evaluator import evaluate_run
    from simreal.runs.rundir import MODEL, resume_point
    from simreal.runs.setup import load_setup
    from simreal.train.trainer import train

    run_dir = folder / "run"
    setup = load_setup(job.config, list(job.overrides))
    if not (run_dir / MODEL).exists():
        resume = run_dir.is_dir() and resume_point(run_dir).folder is not None
        if run_dir.is_dir() and not resume:
            shutil.rmtree(run_dir)  # killed before its first checkpoint: nothing to continue from
        train(setup, run_dir, device=device, resume=resume, command=["simreal", "sweep", job.name])
    report = evaluate_run(run_dir, episodes=job.episodes, seed=job.eval_seed, device=device)
    atomic_write_json(folder / "eval.json", report)
    rows = {name: row["returns"] for name, row in report["source"].items()}
    rows.update({f"target: {name}": row["returns"] for name, row in report["targets"].items()})
    return rows


def _transfer_rows(report: dict[str, Any], folder: Path) -> dict[str, list[float]]:
    """Each evaluated stage's episode returns on the target (``evaluations/<stage>.json``)."""
    rows = {}
    for row in report["stages"]:
        if "mean_return" in row:
            evaluation = read_json(folder / "evaluations" / f"{row['stage']}.json") or {}
            targets = list(evaluation.get("targets", {}).values())
            rows[row["stage"]] = targets[0]["returns"] if targets else [row["mean_return"]]
    return rows


def require_ray() -> None:
    """Raise :class:`SetupError` naming the extra to install when Ray is missing."""
    if importlib.util.find_spec("ray") is None:
        raise SetupError("simreal sweep needs Ray: pip install 'simreal[ray]'")


def check_ray_address(address: str | None, timeout: float = RAY_CONNECT_SECONDS) -> None:
    """A Ray cluster's address answers within ``timeout`` seconds (a TCP connection to its host and port), so that
    a wrong one is one line at once rather than minutes of Ray's retries. ``None`` (a local instance) and ``auto``
    (the running cluster Ray finds itself) are not checked.

    Raises:
        ConfigError: an address that is not ``host:port`` or ``ray://host:port``, or that does not answer; naming
            ``address`` and the time given.
    """
    if address is None or address in ("auto", "local"):
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # an IPv6 address in brackets
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"address: expected host:port, ray://host:port or auto, got {shown(address)}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"address: no Ray cluster answers at {address} within {timeout:g} s ({reason})") from None


def check_sweep_options(device: str, address: str | None, cpus_per_job: float) -> None:
    """What :func:`run_sweep` is given besides its jobs, checked before Ray starts and before anything is written:
    the device (:func:`~simreal.runs.algorithms.resolve_device`), the cluster's address (:func:`check_ray_address`)
    and, for a local instance, that a job's CPUs fit this machine (Ray would wait for them forever).

    Raises:
        ConfigError: naming ``device``, ``address`` or ``cpus_per_job``.
    """
    from simreal.runs.algorithms import resolve_device

    resolve_device(device)
    if not cpus_per_job > 0:
        raise ConfigError(f"cpus_per_job: must be > 0, got {cpus_per_job:g}")
    ray = sys.modules.get("ray")
    running = ray is not None and ray.is_initialized()  # an instance of the caller's, with the CPUs it was given
    cores = os.cpu_count() or 1
    if address is None and not running and cpus_per_job > cores:
        raise ConfigError(f"cpus_per_job: {cpus_per_job:g} CPUs, but a local Ray has this machine's {cores}")
    check_ray_address(address)


def run_sweep(
    jobs: list[SweepJob],
    address: str | None = None,
    cpus_per_job: float = 1.0,
    device: str = "cpu",
    on_event: Callable[[JobOutcome], None] | None = None,
) -> SweepResult:
    """Run the jobs that have not finished as Ray tasks and aggregate every finished one.

    Args:
        jobs: from :func:`plan_sweep`.
        address: an existing Ray cluster (``ray://host:10001`` or ``auto``); ``None`` starts a local instance with
            this machine's cores. Cluster workers need simreal installed and the sweep's folder on a shared file
            system.
        cpus_per_job: Ray CPUs each job reserves (so many jobs run at once: cores / cpus_per_job).
        device: torch device of the jobs.
        on_event: told about each job as it is skipped, done or failed.

    Raises:
        SetupError: Ray is not installed.
        ConfigError: an unknown device, an address that does not answer (see :func:`check_sweep_options`).
    """
    require_ray()
    check_sweep_options(device, address, cpus_per_job)
    outcomes: list[JobOutcome] = []

    def tell(outcome: JobOutcome) -> None:
        outcomes.append(outcome)
        if on_event:
            on_event(outcome)

    folders = {Path(job.folder).parents[1] for job in jobs}
    with ExitStack() as held:
        for folder in sorted(folders):  # one, for a plan_sweep plan: the sweep's folder
            held.enter_context(hold(folder, "sweep folder"))
        _run_pending(jobs, address, cpus_per_job, device, tell)
    order = {job.folder: index for index, job in enumerate(jobs)}
    outcomes.sort(key=lambda o: order[o.job.folder])
    return SweepResult(outcomes, aggregate(jobs))


def _run_pending(
    jobs: list[SweepJob], address: str | None, cpus_per_job: float, device: str, tell: Callable[[JobOutcome], None]
) -> None:
    """Run the jobs without a result as Ray tasks, telling each outcome."""
    import ray

    pending = []
    for job in jobs:
        if (Path(job.folder) / RESULT).exists():
            tell(JobOutcome(job, "skipped"))
        else:
            pending.append(job)
    if pending:
        started_here = not ray.is_initialized()
        if started_here:
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
            ray.init(address=address, **options)
        try:
            remote = ray.remote(num_cpus=cpus_per_job, max_retries=0)(run_job)
            futures = {remote.remote(job, device): job for job in pending}
            waiting = list(futures)
            while waiting:
                ready, waiting = ray.wait(waiting, num_returns=1)
                job = futures[ready[0]]
                try:
                    answer = ray.get(ready[0])
                except Exception as exc:  # noqa: BLE001 - a worker that died (killed, out of memory) is one failed job
                    answer = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
                tell(JobOutcome(job, answer["status"], answer.get("error", ""), answer.get("seconds", 0.0)))
        finally:
            if started_here:
                ray.shutdown()


def aggregate(jobs: list[SweepJob], seed: int = 0) -> list[dict[str, Any]]:
    """One row per grid point and env (or stage) over the finished jobs: seeds, mean return over seeds with a
    two-stage bootstrap 95% CI, the per-seed means."""
    from simreal.evaluate.gap import mean_return_ci

    rng = np.random.default_rng(seed)
    groups: dict[tuple[tuple[str, str], ...], list[dict[str, list[float]]]] = {}
    for job in jobs:
        result = read_json(Path(job.folder) / RESULT)
        groups.setdefault(job.point, [])
        if result is not None:
            groups[job.point].append(result["rows"])
    rows = []
    for point, results in groups.items():
        envs = list(dict.fromkeys(env for result in results for env in result))
        for env in envs:
            returns = [result[env] for result in results if env in result]
            low, high = mean_return_ci(returns, rng)
            means = [float(np.mean(r)) for r in returns]
            row: dict[str, Any] = {key: value for key, value in point}
            row.update(env=env, seeds=len(returns), mean_return=float(np.mean(means)), ci_low=low, ci_high=high)
            row["per_seed"] = " ".join(f"{m:.1f}" for m in means)
            rows.append(row)
    return rows


def write_aggregate(rows: list[dict[str, Any]], out: str | os.PathLike[str]) -> None:
    """``summary.csv`` and ``summary.png`` (mean return over seeds with its 95% CI, per env, one bar per grid
    point) in the sweep's folder, written atomically."""
    out = Path(out)
    if not rows:
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "summary.csv", buffer.getvalue())

    from matplotlib.figure import Figure

    envs = list(dict.fromkeys(row["env"] for row in rows))
    keys = [c for c in columns if c not in ("env", "seeds", "mean_return", "ci_low", "ci_high", "per_seed")]
    points = list(dict.fromkeys(tuple(row.get(k) for k in keys) for row in rows))
    figure = Figure(figsize=(max(6, 1.6 * len(envs) * max(1, len(points)) ** 0.5), 4))
    axes = figure.subplots()
    width = 0.8 / len(points)
    for index, point in enumerate(points):
        chosen = {row["env"]: row for row in rows if tuple(row.get(k) for k in keys) == point}
        x = [envs.index(env) + (index - (len(points) - 1) / 2) * width for env in chosen]
        means = [row["mean_return"] for row in chosen.values()]
        errors = [[m - r["ci_low"] for m, r in zip(means, chosen.values(), strict=True)],
                  [r["ci_high"] - m for m, r in zip(means, chosen.values(), strict=True)]]  # fmt: skip
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, point, strict=True)) or "config"
        axes.bar(x, means, width, yerr=errors, capsize=3, label=label)
    axes.set_xticks(range(len(envs)), envs, rotation=20, ha="right")
    axes.set_ylabel("mean return over seeds (95% CI)")
    if len(points) > 1:
        axes.legend(fontsize="small")
    figure.tight_layout()
    atomic_write(out / "summary.png", lambda tmp: figure.savefig(tmp, format="png", dpi=100))
