"""The PyTorch network of the flow classifier, apart from its training code (the flow autoencoder's is
:class:`vigil.detectors.networks.DenseAutoencoder`).

Kept small on purpose: flow tables have ~120 inputs after encoding, so two or three dense layers are
enough, and the models train in seconds on a CPU. Importing this module needs PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised only without torch
    msg = "the deep network models need PyTorch: pip install 'vigil[deep]'"
    raise ImportError(msg) from exc

__all__ = ["FlowMLP"]


def _stack(n_inputs: int, hidden: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), nn.LayerNorm(size), nn.GELU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    return nn.Sequential(*layers), width


class FlowMLP(nn.Module):
    """A multilayer perceptron with two heads: attack-or-not (one logit) and attack category (k logits).

    Parameters
    ----------
    n_inputs : int
    n_categories : int
        Classes of the category head (``normal`` included).
    hidden : sequence of int
        Widths of the shared hidden layers.
    dropout : float

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> net = FlowMLP(6, 3, hidden=(8,), dropout=0.0)
    >>> binary, category = net(torch.zeros(2, 6))
    >>> tuple(binary.shape), tuple(category.shape)
    ((2,), (2, 3))
    """

    def __init__(self, n_inputs: int, n_categories: int, *, hidden: Sequence[int] = (256, 128), dropout: float = 0.1):
        super().__init__()
        self.body, width = _stack(n_inputs, hidden, dropout)
        self.binary_head = nn.Linear(width, 1)
        self.category_head = nn.Linear(width, n_categories)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.binary_head(h).squeeze(-1), self.category_head(h)
