"""A trained policy as one self-contained torch module, the thing an export writes: from the robot's observation and
a state vector to the action and the next state, with everything simreal does around the model inside it (history
stacking, UP-OSI's estimator or RMA's adaptation module, the privileged padding, observation normalization, action
clipping or unscaling).

The state holds the histories (UP-OSI's estimator's, RMA's raw history, the policy's own) and the last action sent;
it is all zeros at the start of every episode. Stacking is a shift: each step the window drops its oldest entry and
takes the newest, which on a zero state gives exactly :class:`~simreal.envs.history.History`'s start (zeros where
the episode had not begun). Normalization runs in float64, as stable-baselines3's VecNormalize does. The networks
run in float32 as its ``predict`` does (torch's own kernels: TorchScript gives simreal's actions bit for bit), or in
float64 (for ONNX: onnxruntime's float32 kernels round differently from torch's, so its float64 result lies closer
to torch's float32 one than its float32 result does; RMA's convolution stays float32, the only precision
onnxruntime's CPU provider has for it).
"""

from __future__ import annotations

import copy
from typing import Any, cast

import gymnasium as gym
import torch
from stable_baselines3 import SAC

from simreal.adaptation.osi import OSIEstimator
from simreal.adaptation.rma import RMAExtractor
from simreal.envs.inputs import InputLayout
from simreal.envs.runner import ObservationScaling
from simreal.errors import DataError
from simreal.runs.policy import LoadedPolicy


class _Window(torch.nn.Module):
    """Where one history lives in the state: ``steps`` entries of ``size`` then ``steps`` actions."""

    def __init__(self, offset: int, steps: int, size: int, action: int) -> None:
        super().__init__()
        self.offset, self.steps, self.size, self.action = offset, steps, size, action

    @property
    def width(self) -> int:
        return self.steps * (self.size + self.action)

    def push(self, state: torch.Tensor, entry: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The window after ``action`` was sent and ``entry`` came back: the flattened input it gives."""
        entries = state[:, self.offset : self.offset + self.steps * self.size]
        actions = state[:, self.offset + self.steps * self.size : self.offset + self.width]
        return torch.cat([entries[:, self.size :], entry, actions[:, self.action :], action], dim=1)


class DeployedPolicy(torch.nn.Module):
    """``forward(observation, state) -> (action, next_state)``, batch first, float64 in and out.

    Args:
        policy: a loaded policy whose dynamics input, if any, needs no simulator (estimated, or unread by RMA).
        dtype: the networks' precision (``torch.float32`` or ``torch.float64``).

    Raises:
        DataError: a policy that reads the true dynamics (a universal policy without its estimator), or a SAC
            policy with state-dependent exploration.
    """

    # registered buffers (torch types them as Tensor | Module), and stable-baselines3's policy, composed at run time
    scale: torch.Tensor
    mean: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    policy: Any

    def __init__(self, policy: LoadedPolicy, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        layout: InputLayout = policy.layout
        if layout.source == "true":
            raise DataError(
                f"{policy.path}: the policy reads the true dynamics, which no robot reports (a universal policy "
                "without its trained estimator, or one given the true dynamics): it cannot be exported"
            )
        self.layout = layout
        model = policy.model
        self.sac = isinstance(model, SAC)
        sb3_policy: Any = model.policy
        if self.sac and sb3_policy.actor.use_sde:
            raise DataError(f"{policy.path}: SAC with state-dependent exploration cannot be exported")
        self.dtype = dtype
        # a copy: the loaded policy keeps acting in simreal as it was
        self.policy = copy.deepcopy(model.policy).to(device="cpu", dtype=dtype).eval()
        extractor = self.policy.pi_features_extractor if not self.sac else None
        if isinstance(extractor, RMAExtractor):
            extractor.adapter.float()
        obs, act = layout.observation, layout.action
        windows: list[_Window] = []
        offset = 0

        def window(steps: int, size: int) -> _Window | None:
            nonlocal offset
            if not steps:
                return None
            made = _Window(offset, steps, size, act)
            windows.append(made)
            offset += made.width
            return made

        self.estimator_window = window(layout.estimator_history, obs)
        self.raw_window = window(layout.raw_history, obs)
        self.stack_window = window(layout.history, layout.step_size)
        self.windows = torch.nn.ModuleList(windows)
        self.last_action_offset = offset
        #: the state's size: the windows, then the last action sent
        self.state_size = offset + act
        estimator = policy.estimator
        network = estimator.network if isinstance(estimator, OSIEstimator) else None
        self.estimator = copy.deepcopy(network).to(dtype).eval() if network is not None else None
        if layout.source == "estimated" and self.estimator is None:
            raise DataError(f"{policy.path}: the policy's estimator is not an OSI network: it cannot be exported")
        scaling = ObservationScaling.of(policy.statistics)
        size = layout.size
        mean = torch.as_tensor(scaling.mean if scaling else [0.0] * size, dtype=torch.float64)
        var = torch.as_tensor(scaling.var if scaling else [1.0] * size, dtype=torch.float64)
        epsilon = scaling.epsilon if scaling else 0.0
        self.register_buffer("scale", torch.sqrt(var + epsilon))
        self.register_buffer("mean", mean)
        self.clip = float(scaling.clip) if scaling else float("inf")
        space = cast(gym.spaces.Box, model.action_space)
        self.register_buffer("low", torch.as_tensor(space.low, dtype=dtype))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=dtype))

    def forward(self, observation: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        layout = self.layout
        batch = observation.shape[0]
        sent = state[:, self.last_action_offset :]
        pieces = []
        if self.estimator_window is not None and self.estimator is not None:
            seen = self.estimator_window.push(state, observation, sent)
            pieces.append(seen)
            z = self.estimator(seen.to(self.dtype)).double()
        else:
            z = torch.zeros(batch, len(layout.dynamics), dtype=torch.float64)  # none, or unread (RMA)
        step = [observation, z]
        if self.raw_window is not None:
            raw = self.raw_window.push(state, observation, sent)
            pieces.append(raw)
            step.append(raw)
        inputs = torch.cat(step, dim=1)
        if self.stack_window is not None:
            inputs = self.stack_window.push(state, inputs, sent)
            pieces.append(inputs)
        inputs = torch.cat([inputs, torch.zeros(batch, layout.privileged, dtype=torch.float64)], dim=1)
        scaled = torch.clamp((inputs - self.mean) / self.scale, -self.clip, self.clip).to(self.dtype)
        action = self._action(scaled)
        return action.double(), torch.cat([*pieces, action.double()], dim=1)

    def _action(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic action, as stable-baselines3's ``predict`` returns it."""
        policy = self.policy
        if self.sac:
            actor = policy.actor  # its own layers: stable-baselines3's preprocessing would cast to float32
            mean = actor.mu(actor.latent_pi(actor.features_extractor(x)))
            return self.low + 0.5 * (torch.tanh(mean) + 1.0) * (self.high - self.low)  # unscaled from [-1, 1]
        extractor = policy.pi_features_extractor
        if isinstance(extractor, RMAExtractor):
            own, _, history = extractor.parts(x)
            latent = extractor.adapter(history.float()).to(self.dtype)  # adapting: the truth is never read
            features = torch.cat([own, latent], dim=1)
        else:
            features = extractor(x)
        mean = policy.action_net(policy.mlp_extractor.forward_actor(features))
        return torch.maximum(torch.minimum(mean, self.high), self.low)
