"""The layers of a stable-baselines3 PPO or SAC policy, counted from the output down, and what fine-tuning does with
them: which are trainable, a fresh optimizer with one parameter group per layer, and per-layer learning rates that
survive stable-baselines3's schedule.

A policy is a few *towers* (PPO: the policy and the value network; SAC: the actor and the two critics), each a stack
of layers from the input up. Depth 0 is a tower's output layer (with PPO's and SAC's ``log_std``), depth 1 the hidden
layer below it, and so on. "The top k layers" means depths 0..k-1 of every tower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm

from simreal import compat

#: Parameter-group key holding a layer's learning-rate factor (its rate = the schedule's rate x this factor).
LR_FACTOR = "lr_factor"


@dataclass(frozen=True)
class Layer:
    """One layer of a tower: its name (``policy.0``, ``value.head``...), depth from the top, and parameters."""

    name: str
    depth: int
    parameters: tuple[torch.nn.Parameter, ...]


def _linears(module: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def _tower(name: str, hidden: Sequence[torch.nn.Module], head: list[torch.nn.Parameter]) -> list[Layer]:
    layers = [tuple(module.parameters()) for module in hidden] + [tuple(head)]
    count = len(layers)
    labels = [f"{name}.{index}" for index in range(count - 1)] + [f"{name}.head"]
    return [
        Layer(label, count - 1 - index, params)
        for index, (label, params) in enumerate(zip(labels, layers, strict=True))
    ]


def policy_layers(model: BaseAlgorithm) -> list[Layer]:
    """Every trainable layer of a PPO or SAC model's policy, tower by tower, each from the input up.

    Raises:
        TypeError: another algorithm.
    """
    # stable-baselines3 composes its policies at run time: their submodules are typed as torch's Module | Tensor
    policy: Any = model.policy
    if isinstance(model, PPO):
        head_pi = [*policy.action_net.parameters()] + ([policy.log_std] if hasattr(policy, "log_std") else [])
        # a features extractor with weights (RMA's encoder and adaptation module) is the policy's bottom layer
        extractor: list[torch.nn.Module] = (
            [policy.features_extractor] if any(True for _ in policy.features_extractor.parameters()) else []
        )
        return [
            *_tower("policy", [*extractor, *_linears(policy.mlp_extractor.policy_net)], head_pi),
            *_tower("value", _linears(policy.mlp_extractor.value_net), [*policy.value_net.parameters()]),
        ]
    if isinstance(model, SAC):
        actor, critic = policy.actor, policy.critic
        layers = _tower("actor", _linears(actor.latent_pi), [*actor.mu.parameters(), *actor.log_std.parameters()])
        for index, q_net in enumerate(critic.q_networks):
            *hidden, head = _linears(q_net)
            layers += _tower(f"q{index}", hidden, [*head.parameters()])
        return layers
    raise TypeError(f"fine-tuning supports PPO and SAC, not {type(model).__name__}")


def depth(layers: list[Layer]) -> int:
    """The number of layers of the deepest tower."""
    return max(layer.depth for layer in layers) + 1


def set_trainable(layers: list[Layer], top: int | None) -> list[str]:
    """Make the top ``top`` layers of every tower trainable (``None``: all) and freeze the others.

    Returns:
        The names of the trainable layers.
    """
    trainable = []
    for layer in layers:
        train = top is None or layer.depth < top
        for parameter in layer.parameters:
            parameter.requires_grad_(train)
        if train:
            trainable.append(layer.name)
    return trainable


def fresh_optimizers(model: BaseAlgorithm, layer_decay: float = 1.0) -> None:
    """Replace the model's optimizers with fresh ones (no moments) holding one parameter group per layer, weight
    decay off.

    stable-baselines3 restores the source run's optimizer state on ``load()``: a layer unfrozen later would otherwise
    start from moments accumulated in simulation. A frozen layer gets no gradient, so Adam keeps no state for it
    until it is unfrozen. Layer ``d`` below the top learns at ``layer_decay ** -d`` times the schedule's rate
    (ULMFiT's discriminative fine-tuning; 1.0: one rate for all).
    """
    layers = policy_layers(model)
    by_parameter = {id(p): layer for layer in layers for p in layer.parameters}

    def rebuild(optimizer: torch.optim.Optimizer, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        groups: dict[str, dict[str, Any]] = {}
        for parameter in parameters:
            layer = by_parameter.get(id(parameter))
            key = layer.name if layer is not None else "other"
            factor = layer_decay**-layer.depth if layer is not None else 1.0
            groups.setdefault(key, {"params": [], LR_FACTOR: factor, "name": key})["params"].append(parameter)
        defaults = {**optimizer.defaults, "weight_decay": 0.0}
        return type(optimizer)(list(groups.values()), **defaults)

    policy: Any = model.policy
    if isinstance(model, PPO):
        policy.optimizer = rebuild(policy.optimizer, list(policy.parameters()))
    elif isinstance(model, SAC):
        actor, critic = policy.actor, policy.critic
        actor.optimizer = rebuild(actor.optimizer, list(actor.parameters()))
        critic_parameters = [p for name, p in critic.named_parameters() if "features_extractor" not in name]
        critic.optimizer = rebuild(critic.optimizer, critic_parameters)
    else:
        raise TypeError(f"fine-tuning supports PPO and SAC, not {type(model).__name__}")
    _keep_layer_rates(model)


def standard_optimizers(model: BaseAlgorithm) -> None:
    """Merge the per-layer parameter groups back into one (moments kept) and drop the layer-rate override, so the
    model saves and loads like any stable-baselines3 model (``load()`` expects its own single-group optimizers)."""
    policy: Any = model.policy
    holders = [policy] if isinstance(model, PPO) else [policy.actor, policy.critic]
    for holder in holders:
        old = holder.optimizer
        parameters = [p for group in old.param_groups for p in group["params"]]
        merged = type(old)(parameters, **{**old.defaults, "lr": old.param_groups[0]["lr"]})
        merged.state.update(old.state)
        holder.optimizer = merged
    compat.unwrap_learning_rate_update(model)


def _keep_layer_rates(model: BaseAlgorithm) -> None:
    """stable-baselines3 sets every parameter group to the schedule's rate on each update: scale each group by its
    factor right after."""

    def scale_by_factors(optimizers: list[torch.optim.Optimizer]) -> None:
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= group.get(LR_FACTOR, 1.0)

    compat.wrap_learning_rate_update(model, scale_by_factors)
