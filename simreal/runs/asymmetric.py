"""Asymmetric actor-critic policies for stable-baselines3's PPO and SAC (Pinto et al. 2018, "Asymmetric Actor
Critic for Image-Based Robot Learning"): the critic reads the whole observation, whose last ``privileged`` entries
are what only a simulator knows (:class:`~simreal.envs.privileged.PrivilegedInput`); the actor reads the entries
before them, what a robot has.

Envs that do not train (evaluation, targets, a robot) append padding there, which the actor never reads: a saved
policy acts the same whatever stands in those entries. The classes are stable-baselines3 policies, so a model file
saves and loads them as any other (its ``policy_kwargs`` hold ``privileged``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, MlpExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.sac.policies import Actor, SACPolicy

from simreal.envs.mujoco_base import box_space


class ActorSlice(MlpExtractor):
    """PPO's policy and value networks, the policy network reading only the first ``actor_inputs`` features.

    Args:
        feature_dim: the whole observation's size (the value network's input).
        actor_inputs: how many leading features the policy network reads.
        net_arch, activation_fn, device: as :class:`~stable_baselines3.common.torch_layers.MlpExtractor`'s.
    """

    def __init__(
        self,
        feature_dim: int,
        actor_inputs: int,
        net_arch: list[int] | dict[str, list[int]],
        activation_fn: type[torch.nn.Module],
        device: torch.device | str = "auto",
    ) -> None:
        super().__init__(feature_dim, net_arch, activation_fn, device)
        self.actor_inputs = actor_inputs
        # the same layers, sized for the actor's part of the observation
        self.policy_net = MlpExtractor(actor_inputs, net_arch, activation_fn, device).policy_net

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return self.policy_net(features[..., : self.actor_inputs])


class _PrivilegedPart:
    """What both asymmetric policies share: the split of the observation, and ``privileged`` in the saved
    constructor arguments (so a loaded model is built the same way). Comes first among the bases."""

    def _split(self, observation_space: gym.spaces.Space[Any], privileged: int) -> None:
        """Set ``privileged`` and ``actor_inputs`` (before the stable-baselines3 constructor builds the networks)."""
        total = int(box_space(observation_space).shape[0])
        if not 0 < privileged < total:
            raise ValueError(f"privileged inputs: {privileged} of an observation of {total}")
        self.privileged, self.actor_inputs = privileged, total - privileged

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "privileged": self.privileged}  # type: ignore[misc]


class AsymmetricActorCriticPolicy(_PrivilegedPart, ActorCriticPolicy):
    """PPO's ``MlpPolicy`` with a privileged value function: the last ``privileged`` observation entries reach the
    value network only.

    Args:
        observation_space: flat ``Box``: the actor's part, then the privileged part.
        action_space, lr_schedule: as :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s.
        privileged: the size of the privileged part.
        **kwargs: :class:`~stable_baselines3.common.policies.ActorCriticPolicy`'s (the features extractor must be
            the default flattening one: it is shared and passes every entry through).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        lr_schedule: Schedule,
        privileged: int = 0,
        **kwargs: Any,
    ) -> None:
        self._split(observation_space, privileged)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = ActorSlice(
            self.features_dim, self.actor_inputs, self.net_arch, self.activation_fn, self.device
        )


class LeadingEntries(BaseFeaturesExtractor):
    """The first ``count`` entries of a flat observation: what SAC's actor reads."""

    def __init__(self, observation_space: gym.spaces.Box, count: int) -> None:
        super().__init__(observation_space, features_dim=count)
        self.count = count

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.flatten(observations, start_dim=1)[:, : self.count]


class AsymmetricSACPolicy(_PrivilegedPart, SACPolicy):
    """SAC's ``MlpPolicy`` with privileged Q-functions: the last ``privileged`` observation entries reach the
    critics only (their features extractor is their own, as SAC's is by default).

    Args:
        observation_space: flat ``Box``: the actor's part, then the privileged part.
        action_space, lr_schedule: as :class:`~stable_baselines3.sac.policies.SACPolicy`'s.
        privileged: the size of the privileged part.
        **kwargs: :class:`~stable_baselines3.sac.policies.SACPolicy`'s (``share_features_extractor`` must stay
            ``False``).
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        action_space: gym.spaces.Box,
        lr_schedule: Schedule,
        privileged: int = 0,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("share_features_extractor"):
            raise ValueError("an asymmetric SAC policy cannot share the critic's features extractor with its actor")
        self._split(observation_space, privileged)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        leading = LeadingEntries(box_space(self.observation_space), self.actor_inputs)
        return super().make_actor(leading)


#: The asymmetric policy class of each algorithm, by config name.
ASYMMETRIC_POLICIES: dict[str, type] = {"ppo": AsymmetricActorCriticPolicy, "sac": AsymmetricSACPolicy}
