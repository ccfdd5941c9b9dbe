"""RMA (Kumar, Fu, Pathak & Malik 2021): a base policy conditioned on a latent ``z = mu(e)`` encoded from the
privileged parameters ``e``, then an adaptation module ``phi`` (a 1-D convolution over the last ``h`` observations
and actions) trained to regress ``z`` from history, on-policy, with the policy acting on its estimate.

Both live in the policy's features extractor (:class:`RMAExtractor`), so the model file holds everything and
stable-baselines3 runs it as any policy. Its observation is ``[x, e, history]``
(:class:`~simreal.envs.privileged.DynamicsInput` with ``history``): in phase 1 the extractor encodes ``e``; once the
adaptation module is trained it switches to ``phi(history)`` and never reads ``e`` again (a robot can pass zeros;
simreal passes the truth, only to measure the estimate's error).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor


class RMASettings(Protocol):
    """How the encoder and the adaptation module are built and trained (:class:`simreal.runs.config.RMAConfig`)."""

    latent: int
    encoder: list[int]
    channels: int
    kernel: int
    iterations: int
    steps: int
    epochs: int
    learning_rate: float
    batch_size: int


class RMAExtractor(BaseFeaturesExtractor):
    """Features ``[x, z]``: ``z = encoder(e)`` (phase 1), or ``z = adapter(history)`` once ``adapting`` is set.

    Args:
        observation_space: ``[x, e, history]``, flat.
        obs_dim: size of ``x`` (the robot's observation).
        act_dim: size of an action.
        params: size of ``e`` (the log-multipliers).
        history: steps in ``history``.
        latent: size of ``z``.
        encoder: hidden sizes of the encoder MLP.
        channels: channels of the adapter's convolutions.
        kernel: their kernel size (time steps).
    """

    adapting: torch.Tensor  # a registered buffer (torch types them as Tensor | Module)

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        obs_dim: int,
        act_dim: int,
        params: int,
        history: int,
        latent: int = 8,
        encoder: list[int] | None = None,
        channels: int = 32,
        kernel: int = 5,
    ) -> None:
        super().__init__(observation_space, features_dim=obs_dim + latent)
        self.obs_dim, self.act_dim, self.params, self.history = obs_dim, act_dim, params, history
        sizes = [params, *(encoder or [64, 64])]
        layers: list[torch.nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [torch.nn.Linear(a, b), torch.nn.ELU()]
        self.encoder = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], latent))
        kernel = min(kernel, history)
        length = history - kernel + 1
        self.adapter = torch.nn.Sequential(
            torch.nn.Conv1d(obs_dim + act_dim, channels, kernel),
            torch.nn.ELU(),
            torch.nn.Conv1d(channels, channels, 1),
            torch.nn.ELU(),
            torch.nn.Flatten(),
            torch.nn.Linear(channels * length, latent),
        )
        self.register_buffer("adapting", torch.zeros((), dtype=torch.bool))

    def parts(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x``, ``e`` and the history as ``(batch, obs_dim + act_dim, history)`` for the convolution."""
        x = obs[:, : self.obs_dim]
        e = obs[:, self.obs_dim : self.obs_dim + self.params]
        flat = obs[:, self.obs_dim + self.params :]
        observations = flat[:, : self.history * self.obs_dim].reshape(-1, self.history, self.obs_dim)
        actions = flat[:, self.history * self.obs_dim :].reshape(-1, self.history, self.act_dim)
        return x, e, torch.cat([observations, actions], dim=2).transpose(1, 2)

    @property
    def is_adapting(self) -> bool:
        """Whether ``z`` comes from the adaptation module (phase 2 and deployment), not from the true dynamics."""
        return bool(self.adapting)

    def use_adapter(self) -> None:
        """``z`` from the history from now on (phase 2 trains the module; a deployed policy has only the history)."""
        self.adapting.fill_(True)

    def use_encoder(self) -> None:
        """``z`` from the true dynamics from now on (phase 1; the base policy given the truth, a reference)."""
        self.adapting.fill_(False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x, e, history = self.parts(obs)
        z = self.adapter(history) if self.is_adapting else self.encoder(e)
        return torch.cat([x, z], dim=1)

    def latent_error(self, obs: torch.Tensor) -> torch.Tensor:
        """Per sample: ``||phi(history) - mu(e)|| / ||mu(e)||``, the adaptation module's relative error."""
        with torch.no_grad():
            _, e, history = self.parts(obs)
            target = self.encoder(e)
            return (self.adapter(history) - target).norm(dim=1) / target.norm(dim=1).clamp(min=1e-6)


def rma_extractor(model: BaseAlgorithm) -> RMAExtractor | None:
    """The RMA extractor of ``model``'s policy (``None``: not an RMA policy)."""
    extractor = getattr(model.policy, "features_extractor", None)
    return extractor if isinstance(extractor, RMAExtractor) else None


def extractor_kwargs(obs_dim: int, act_dim: int, params: int, history: int, settings: RMASettings) -> dict[str, Any]:
    """The policy keyword arguments that put an :class:`RMAExtractor` in a stable-baselines3 policy."""
    return {
        "features_extractor_class": RMAExtractor,
        "features_extractor_kwargs": {
            "obs_dim": obs_dim,
            "act_dim": act_dim,
            "params": params,
            "history": history,
            "latent": settings.latent,
            "encoder": list(settings.encoder),
            "channels": settings.channels,
            "kernel": settings.kernel,
        },
    }


def train_adapter(
    model: BaseAlgorithm,
    settings: RMASettings,
    seed: int,
    log: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """RMA's phase 2 on the model's own (training) envs, their normalization frozen: each round collects
    ``settings.steps`` steps with the policy acting on the adaptation module's estimate, then fits the module to the
    frozen encoder's latent on them. Returns the per-round reports (loss, relative latent error before the fit)."""
    extractor = rma_extractor(model)
    if extractor is None:
        raise ValueError("RMA's adaptation module trains on an RMA policy: this one has no RMA extractor")
    extractor.use_adapter()
    venv: Any = model.get_env()  # the model's training envs: a VecEnv, maybe a VecNormalize
    training = getattr(venv, "training", None)
    if training is not None:
        venv.training = False  # the policy's input scaling stays what it learned
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(extractor.adapter.parameters(), lr=settings.learning_rate)
    reports = []
    obs = venv.reset()
    try:
        for round_ in range(settings.iterations):
            collected = []
            for _ in range(max(1, settings.steps // venv.num_envs)):
                collected.append(obs)
                action, _ = model.predict(obs, deterministic=False)
                obs, *_ = venv.step(action)
            data = torch.as_tensor(np.concatenate(collected), dtype=torch.float32, device=model.device)
            before = float(extractor.latent_error(data).mean())
            with torch.no_grad():
                target = extractor.encoder(extractor.parts(data)[1])
            losses = []
            for _ in range(settings.epochs):
                order = torch.as_tensor(rng.permutation(len(data)), device=model.device)
                for start in range(0, len(data), settings.batch_size):
                    index = order[start : start + settings.batch_size]
                    estimate = extractor.adapter(extractor.parts(data[index])[2])
                    loss = torch.nn.functional.mse_loss(estimate, target[index])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    losses.append(loss.item())
            report = {
                "round": round_,
                "samples": len(data),
                "latent_error_before": before,
                "loss": float(np.mean(losses)),
            }
            reports.append(report)
            if log is not None:
                log(round_, report)
    finally:
        if training is not None:
            venv.training = training
    return reports
