"""PyTorch networks of the feed-forward and convolutional detectors (training glue: torch_base.py).

Every network maps a batch of windows (batch, window, features) to a tensor of the same shape.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

__all__ = ["ConvAutoencoder", "DenseAutoencoder"]


class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder of a flattened window: in → hidden → latent → hidden → in.

    Examples
    --------
    >>> net = DenseAutoencoder(n_inputs=6, hidden=(8,), latent=2)
    >>> net(torch.zeros(4, 3, 2)).shape
    torch.Size([4, 3, 2])
    """

    def __init__(self, n_inputs: int, hidden: tuple[int, ...], latent: int, dropout: float = 0.0) -> None:
        super().__init__()
        sizes = [n_inputs, *hidden, latent]
        encoder: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            encoder += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.encoder = nn.Sequential(*encoder[:-2])  # the code layer is linear
        back = sizes[::-1]
        decoder: list[nn.Module] = []
        for a, b in itertools.pairwise(back):
            decoder += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
        self.decoder = nn.Sequential(*decoder[:-2])  # the output layer is linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        return self.decoder(self.encoder(flat)).reshape(x.shape)


class ConvAutoencoder(nn.Module):
    """1-D convolutional autoencoder over time (the architecture of SKAB's leading Conv-AE).

    Two stride-2 convolutions compress the window four-fold in time; two transposed convolutions and a
    final convolution restore it, cropped to the input length.

    Examples
    --------
    >>> net = ConvAutoencoder(n_features=3, filters=(8, 4), kernel_size=5)
    >>> net(torch.zeros(2, 30, 3)).shape
    torch.Size([2, 30, 3])
    """

    def __init__(
        self, n_features: int, filters: tuple[int, int] = (32, 16), kernel_size: int = 7, dropout: float = 0.2
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        wide, narrow = filters
        self.encoder = nn.Sequential(
            nn.Conv1d(n_features, wide, kernel_size, stride=2, padding=pad),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv1d(wide, narrow, kernel_size, stride=2, padding=pad),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose1d(narrow, narrow, kernel_size, stride=2, padding=pad, output_padding=1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.ConvTranspose1d(narrow, wide, kernel_size, stride=2, padding=pad, output_padding=1),
            nn.ReLU(),
            nn.Conv1d(wide, n_features, kernel_size, padding=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        out = self.decoder(self.encoder(x.transpose(1, 2)))
        return out[:, :, :length].transpose(1, 2)
