"""Fine-tuning strategies from transfer-learning practice, and the L2-SP penalty.

- ``full``: every layer trains (at a scaled-down learning rate, see :data:`DEFAULT_LR_SCALE`);
- ``head``: feature extraction: only each tower's output layer (and ``log_std``) trains;
- ``partial``: the top ``trainable_layers`` layers of each tower train, the ones below stay frozen;
- ``progressive``: gradual unfreezing (ULMFiT, Howard & Ruder 2018): the output layers first, then one more layer
  down at equal fractions of the budget, all of them for the last fraction;
- ``scratch``: a fresh policy trained on the target with the same budget (the baseline; every layer trains).

L2-SP (Li, Grandvalet & Davoine 2018) adds ``alpha / 2 * ||w - w0||^2`` over the trained weights to every loss,
pulling them toward the starting point ``w0`` against catastrophic forgetting.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from simreal.transfer.layers import Layer

STRATEGIES = ("full", "head", "partial", "progressive", "scratch")

#: Default learning-rate scale per strategy: ``full`` moves every pretrained weight, so it takes a tenth of the
#: source rate; the others train only the top layers (or a fresh net) at the source rate.
DEFAULT_LR_SCALE = {"full": 0.1, "head": 1.0, "partial": 1.0, "progressive": 1.0, "scratch": 1.0}


def trainable_top(strategy: str, progress: float, tower_depth: int, trainable_layers: int) -> int | None:
    """How many layers from the top of each tower train at ``progress`` (fraction of the budget used, 0..1).

    Args:
        strategy: one of :data:`STRATEGIES`.
        progress: fraction of the target budget spent.
        tower_depth: layers in the deepest tower.
        trainable_layers: ``partial``'s count.

    Returns:
        The count, or ``None`` for every layer.
    """
    if strategy in ("full", "scratch"):
        return None
    if strategy == "head":
        return 1
    if strategy == "partial":
        return min(trainable_layers, tower_depth)
    if strategy == "progressive":
        stage = int(min(max(progress, 0.0), 1.0) * tower_depth)
        return min(stage + 1, tower_depth)
    raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")


class L2SP:
    """Adds the gradient of ``alpha / 2 * ||w - w0||^2`` (that is, ``alpha * (w - w0)``) to each parameter's
    gradient as it is computed, so the penalty is part of every loss stable-baselines3 backpropagates, before its
    gradient clipping. A frozen parameter gets no gradient and no penalty.

    Args:
        layers: the layers to hold near their current weights (their starting point ``w0``).
        alpha: the penalty's strength (0: none).
    """

    def __init__(self, layers: list[Layer], alpha: float) -> None:
        self.alpha = alpha
        self._pairs = [(p, p.detach().clone()) for layer in layers for p in layer.parameters]
        self._handles = [p.register_hook(self._hook(p, start)) for p, start in self._pairs] if alpha > 0 else []

    def _hook(self, parameter: torch.nn.Parameter, start: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        def add_penalty(grad: torch.Tensor) -> torch.Tensor:
            return grad + self.alpha * (parameter.detach() - start)

        return add_penalty

    def distance(self) -> float:
        """``||w - w0||`` over every layer (the quantity the penalty shrinks)."""
        with torch.no_grad():
            return float(torch.sqrt(sum((((p - start) ** 2).sum() for p, start in self._pairs), torch.zeros(()))))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
