"""UP-OSI's online system identification (Yu, Tan, Liu & Turk 2017): a small MLP that estimates the episode's
log-multipliers from the last ``h`` observations and actions, trained by supervised regression on rollouts of the
universal policy, the first round with the true multipliers driving the policy, later rounds with the network's own
estimates (DAgger-like: the data come from the states the deployed pair visits), the data aggregated.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from simreal.envs.coordinates import estimate_errors, to_coordinates
from simreal.envs.factory import make_env
from simreal.envs.history import History
from simreal.envs.inputs import InputLayout
from simreal.envs.runner import ObservationScaling, PolicyRunner
from simreal.envs.spec import Effects, ParameterRange, RobotSpec
from simreal.errors import DataError, shown
from simreal.fileio import atomic_write, open_regular

#: The estimator's file in a run directory.
OSI_FILE = "osi.pt"
#: The largest estimator file read, and the widest layer it may declare (a config's own bound on a layer's units):
#: a file is data, and the sizes it declares are checked before anything is allocated for them.
MAX_ESTIMATOR_BYTES = 2**30
MAX_WIDTH = 8192


class OSISettings(Protocol):
    """How the estimator is trained (:class:`simreal.runs.config.OSIConfig`)."""

    hidden: list[int]
    iterations: int
    episodes: int
    epochs: int
    learning_rate: float
    batch_size: int


class OSINetwork(torch.nn.Module):
    """An MLP from standardized history to standardized log-multipliers, with the standardization inside."""

    # registered buffers (torch types them as Tensor | Module)
    x_mean: torch.Tensor
    x_std: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, inputs: int, outputs: int, hidden: list[int]) -> None:
        super().__init__()
        sizes = [inputs, *hidden]
        layers: list[torch.nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
        self.body = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], outputs))
        for name, size in (("x_mean", inputs), ("x_std", inputs), ("y_mean", outputs), ("y_std", outputs)):
            self.register_buffer(name, torch.zeros(size) if "mean" in name else torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.x_mean) / self.x_std) * self.y_std + self.y_mean


class OSIEstimator:
    """The trained network as a :class:`~simreal.envs.privileged.DynamicsEstimator` (numpy in, numpy out).

    Attributes:
        names: the parameters it estimates.
        history: steps of observations and actions it reads.
    """

    def __init__(self, network: OSINetwork, names: list[str], history: int, meta: dict[str, Any]) -> None:
        self.network, self.names, self.history, self.meta = network.eval(), list(names), int(history), meta

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(inputs, dtype=np.float32)).reshape(1, -1)
            return self.network(x)[0].double().numpy()

    def batch(self, inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.network(torch.as_tensor(np.asarray(inputs, dtype=np.float32))).double().numpy()

    def save(self, path: Path) -> None:
        """Write the weights and what rebuilds the network (plain types: loadable with ``weights_only``)."""
        payload = {"state_dict": self.network.state_dict(), "names": self.names, "history": self.history, **self.meta}
        atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_estimator(path: Path) -> OSIEstimator:
    """Load an estimator written by :meth:`OSIEstimator.save`.

    Raises:
        DataError: a missing or unreadable file.
    """
    try:
        with open_regular(path, DataError, MAX_ESTIMATOR_BYTES) as handle:
            payload = torch.load(handle, map_location="cpu", weights_only=True)
        sizes = [payload["inputs"], *payload["hidden"]]
        if not all(isinstance(size, int) and 1 <= size <= MAX_WIDTH for size in sizes) or len(sizes) > 17:
            raise ValueError(f"inputs/hidden: sizes {shown(sizes)}, each at most {MAX_WIDTH}, at most 16 layers")
        network = OSINetwork(payload["inputs"], len(payload["names"]), list(payload["hidden"]))
        network.load_state_dict(payload["state_dict"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, AttributeError, pickle.UnpicklingError) as exc:
        raise DataError(f"{path}: not a readable OSI estimator ({type(exc).__name__}: {exc})") from None
    meta = {key: payload[key] for key in ("inputs", "hidden")}
    return OSIEstimator(network, payload["names"], payload["history"], meta)


@dataclass
class Rollouts:
    """Estimator inputs (histories) and targets (true log-multipliers), one row per step."""

    inputs: np.ndarray
    targets: np.ndarray


@dataclass(frozen=True)
class UniversalPolicy:
    """A universal policy and what its estimator learns from: the policy's training distribution and the history
    the estimator reads.

    Attributes:
        model: the universal policy.
        statistics: its observation normalization (``None``: not normalized).
        spec, ranges, effects: the robot and the distribution the policy trained on.
        layout: the policy's input (its log-multipliers true).
        history: the steps of observations and actions the estimator reads.
    """

    model: BaseAlgorithm
    statistics: VecNormalize | None
    spec: RobotSpec
    ranges: dict[str, ParameterRange]
    effects: Effects
    layout: InputLayout
    history: int


def rollouts(
    policy: UniversalPolicy,
    episodes: int,
    seed: int,
    estimator: OSIEstimator | None = None,
    deterministic: bool = False,
) -> Rollouts:
    """Run the universal policy on its training distribution and record (history, true log-multipliers) per step.

    The policy is given the true log-multipliers (``estimator`` None) or the estimator's, as it would be deployed.
    Episode ``i`` is reset with seed ``seed + i``; the policy samples its actions unless ``deterministic``.
    """
    env = make_env(policy.spec, policy.ranges, None, policy.effects)
    layout = policy.layout
    if estimator is not None:
        layout = replace(layout, source="estimated", estimator_history=estimator.history)
    runner = PolicyRunner(policy.model, layout, ObservationScaling.of(policy.statistics), estimator, deterministic)
    buffer = History(policy.history, layout.observation, layout.action)
    inputs, targets = [], []
    try:
        for episode in range(episodes):
            obs, info = env.reset(seed=seed + episode)
            truth = to_coordinates(
                layout.dynamics, [info["dynamics"][n] for n in layout.dynamics], dict(layout.offsets)
            )
            x = buffer.start(obs)
            action = runner.reset(obs, info)
            while True:
                inputs.append(x)
                targets.append(truth)
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
                x = buffer.add(action, obs)
                action = runner.step(obs)
    finally:
        env.close()
    return Rollouts(np.asarray(inputs, dtype=np.float32), np.asarray(targets, dtype=np.float32))


def fit(network: OSINetwork, data: Rollouts, settings: OSISettings, rng: np.random.Generator) -> float:
    """Fit ``network`` to ``data`` (standardization refitted to it): ``settings.epochs`` passes of Adam on the mean
    squared error of standardized log-multipliers. Returns the last epoch's mean loss."""
    x, y = torch.as_tensor(data.inputs), torch.as_tensor(data.targets)
    network.x_mean.copy_(x.mean(0))
    network.x_std.copy_(x.std(0).clamp(min=1e-6))
    network.y_mean.copy_(y.mean(0))
    network.y_std.copy_(y.std(0).clamp(min=1e-6))
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    network.train()
    loss_value = float("nan")
    for _ in range(settings.epochs):
        order = torch.as_tensor(rng.permutation(len(x)))
        losses = []
        for start in range(0, len(x), settings.batch_size):
            index = order[start : start + settings.batch_size]
            prediction = (network(x[index]) - network.y_mean) / network.y_std
            loss = torch.nn.functional.mse_loss(prediction, (y[index] - network.y_mean) / network.y_std)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        loss_value = float(np.mean(losses))
    network.eval()
    return loss_value


def errors(
    estimator: OSIEstimator, data: Rollouts, offsets: dict[str, float] | None = None
) -> dict[str, dict[str, float]]:
    """Per parameter: RMSE of the log-multiplier (an offset: divided by its scale) and mean absolute relative error
    of the multiplier (an offset: absolute, as a fraction of its scale)."""
    predicted = estimator.batch(data.inputs)
    truth = data.targets.astype(np.float64)
    rmse = np.sqrt(np.mean((predicted - truth) ** 2, axis=0))
    relative = np.mean(estimate_errors(estimator.names, predicted, truth, offsets or {}), axis=0)
    return {
        name: {"log_rmse": float(r), "relative_error": float(e)}
        for name, r, e in zip(estimator.names, rmse, relative, strict=True)
    }


def train_osi(
    policy: UniversalPolicy,
    settings: OSISettings,
    seed: int,
    log: Callable[[int, dict[str, Any]], None] | None = None,
) -> tuple[OSIEstimator, list[dict[str, Any]]]:
    """Train the estimator for a universal policy, round by round (see the module docstring).

    After each round its error is measured on held-out rollouts (other seeds, the true multipliers driving the
    policy) and handed to ``log(round, report)``.

    Returns:
        The estimator and the per-round reports.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    names = list(policy.layout.dynamics)
    held_out = rollouts(policy, episodes=max(2, settings.episodes // 4), seed=seed + 1_000_000)
    inputs = held_out.inputs.shape[1]  # history x (observation + action)
    network = OSINetwork(inputs, len(names), list(settings.hidden))
    estimator = OSIEstimator(network, names, policy.history, {"inputs": inputs, "hidden": list(settings.hidden)})
    collected: list[Rollouts] = []
    reports = []
    for round_ in range(settings.iterations):
        driving = None if round_ == 0 else estimator
        collected.append(rollouts(policy, settings.episodes, seed + round_ * settings.episodes, driving))
        data = Rollouts(np.concatenate([r.inputs for r in collected]), np.concatenate([r.targets for r in collected]))
        loss = fit(network, data, settings, rng)
        held_out_errors = errors(estimator, held_out, dict(policy.layout.offsets))
        report = {"round": round_, "samples": len(data.inputs), "loss": loss, "held_out": held_out_errors}
        reports.append(report)
        if log is not None:
            log(round_, report)
    return estimator, reports
