"""PyTorch networks of the feed-forward and convolutional detectors (training glue: torch_base.py).

Every network takes a batch of windows shaped (batch, window, features). The autoencoders return a tensor
of the same shape, the forecaster one row per window, USAD a pair of reconstructions.
"""

from __future__ import annotations

import itertools
from typing import cast

import torch
from torch import nn

__all__ = ["ConvAutoencoder", "DenseAutoencoder", "TemporalConvForecaster", "USADNetwork", "tcn_geometry"]


class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder of a flattened window (or a row): in → hidden → latent → hidden → in.

    Hidden layers are ReLU with dropout, or with ``layer_norm`` LayerNorm then GELU (no dropout), which
    trains the wide, unevenly scaled one-hot inputs of encoded flow tables more steadily. The code and
    output layers are linear.

    Examples
    --------
    >>> net = DenseAutoencoder(n_inputs=6, hidden=(8,), latent=2)
    >>> net(torch.zeros(4, 3, 2)).shape
    torch.Size([4, 3, 2])
    >>> DenseAutoencoder(5, (4,), 2, layer_norm=True)(torch.zeros(3, 5)).shape
    torch.Size([3, 5])
    """

    def __init__(
        self, n_inputs: int, hidden: tuple[int, ...], latent: int, dropout: float = 0.0, *, layer_norm: bool = False
    ) -> None:
        super().__init__()
        sizes = [n_inputs, *hidden, latent]

        def stack(widths: list[int]) -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in itertools.pairwise(widths):
                after = [nn.LayerNorm(b), nn.GELU()] if layer_norm else [nn.ReLU(), nn.Dropout(dropout)]
                layers += [nn.Linear(a, b), *after]
            return nn.Sequential(*layers[:-2])  # the last layer is linear

        self.encoder = stack(sizes)
        self.decoder = stack(sizes[::-1])

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


class _CausalBlock(nn.Module):
    """Dilated causal convolution with a residual connection: output step t sees inputs up to t only."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.history = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(n_in, n_out, kernel_size, dilation=dilation)
        self.act = nn.ReLU()
        # Dropout has no state, so a network saved with either module loads into the other; without dropout
        # the identity saves two operations a block in every training step.
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.skip = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Zeros before the first step only: output t sees inputs up to t, and no output is computed only to
        # be thrown away (padding both sides and cropping would double the work at the widest dilations).
        out = self.conv(nn.functional.pad(x, (self.history, 0)))
        return self.act(self.dropout(self.act(out)) + self.skip(x))

    def forward_strided(self, x: torch.Tensor, stride: int) -> torch.Tensor:
        """The outputs at every ``stride``-th step counted back from the last, for ``x`` that holds the steps
        this block's dilation apart (so its taps are adjacent here): the same values :meth:`forward` gives
        at those steps, for ``1 / stride`` of the work."""
        kernel = self.conv.kernel_size[0]
        offset = (x.shape[2] - 1) % stride
        padded = nn.functional.pad(x, (kernel - 1, 0))[:, :, offset:]
        out = nn.functional.conv1d(padded, self.conv.weight, self.conv.bias, stride=stride)
        return self.act(self.dropout(self.act(out)) + self.skip(x[:, :, offset::stride]))


def tcn_geometry(window: int, kernel_size: int, dilation_base: int = 2) -> tuple[int, int]:
    """``(levels, receptive field)`` of the fewest dilated levels (dilations 1, b, b², …) that span ``window``.

    Level ``i`` adds ``(kernel_size - 1) * b**i`` rows of history; with ``b ≤ kernel_size`` they leave no gaps.

    Examples
    --------
    >>> tcn_geometry(32, 3), tcn_geometry(32, 4, dilation_base=4)
    ((5, 63), (3, 64))
    """
    levels, field = 1, kernel_size
    while field < window:
        field += (kernel_size - 1) * dilation_base**levels
        levels += 1
    return levels, field


class TemporalConvForecaster(nn.Module):
    """Temporal convolutional network (TCN) that predicts the next row from a window of past rows.

    Dilated causal convolutions (dilations 1, b, b², … with b = ``dilation_base``, enough levels for the
    receptive field to span the window) with residual connections, then a linear layer on the last time
    step. With ``persistence=True`` a learnt linear map of the last row is added to the forecast; it
    starts as the identity, with the convolutional part scaled down, so training starts from "the next row
    is like the last one" and learns the corrections. A convolutional forecaster in the line of DeepAnT
    (Munir et al. 2019) and the TCN of Bai et al. (2018).

    Examples
    --------
    >>> net = TemporalConvForecaster(n_features=3, window=16, filters=8, kernel_size=3)
    >>> len(net.blocks), net.receptive_field, net(torch.zeros(4, 16, 3)).shape
    (4, 31, torch.Size([4, 3]))
    >>> net.predict_sequence(torch.zeros(1, 100, 3)).shape
    torch.Size([1, 100, 3])
    """

    def __init__(
        self,
        n_features: int,
        window: int,
        filters: int = 32,
        kernel_size: int = 3,
        dropout: float = 0.0,
        dilation_base: int = 2,
        persistence: bool = False,
    ) -> None:
        super().__init__()
        levels, self.receptive_field = tcn_geometry(window, kernel_size, dilation_base)
        self.dilation_base = dilation_base
        blocks = [
            _CausalBlock(n_features if i == 0 else filters, filters, kernel_size, dilation_base**i, dropout)
            for i in range(levels)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.output = nn.Linear(filters, n_features)
        self.persistence = nn.Linear(n_features, n_features, bias=False) if persistence else None
        if self.persistence is not None:
            with torch.no_grad():
                self.persistence.weight.copy_(torch.eye(n_features))
                self.output.weight.mul_(0.1)
                self.output.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Only the last step's forecast is wanted, and it reads level i at every b**(i+1)-th step back from
        # the last (b = dilation_base): each level computes just those (stride b on the steps the level
        # below kept), about 1 / (b - 1) of a full level's outputs in all instead of one full level each.
        features = x.transpose(1, 2)
        for block in self.blocks:  # nn.Sequential yields them as plain modules
            features = cast(_CausalBlock, block).forward_strided(features, self.dilation_base)
        forecast = self.output(features[:, :, -1])
        return forecast if self.persistence is None else forecast + self.persistence(x[:, -1])

    def predict_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions at every step of series ``x`` (batch, time, features): output ``t`` forecasts row
        ``t + 1`` from rows up to ``t`` (the last ``receptive_field`` of them, zeros before the start)."""
        features = self.blocks(x.transpose(1, 2))
        forecast = self.output(features.transpose(1, 2))
        return forecast if self.persistence is None else forecast + self.persistence(x)


class USADNetwork(nn.Module):
    """USAD (Audibert et al., KDD 2020): one encoder, two decoders trained adversarially.

    ``forward`` returns the reconstructions ``w1 = D1(E(w))`` and ``w3 = D2(E(w1))`` that the anomaly
    score combines; ``w2 = D2(E(w))`` (training only) comes from :meth:`reconstructions`.

    Examples
    --------
    >>> net = USADNetwork(n_inputs=12, hidden=(8,), latent=3)
    >>> w1, w3 = net(torch.zeros(4, 4, 3))
    >>> w1.shape, w3.shape
    (torch.Size([4, 4, 3]), torch.Size([4, 4, 3]))
    """

    def __init__(self, n_inputs: int, hidden: tuple[int, ...], latent: int) -> None:
        super().__init__()
        sizes = [n_inputs, *hidden, latent]

        def stack(widths: list[int], last: nn.Module) -> nn.Sequential:
            layers: list[nn.Module] = []
            for a, b in itertools.pairwise(widths):
                layers += [nn.Linear(a, b), nn.ReLU()]
            layers[-1] = last
            return nn.Sequential(*layers)

        # Inputs are min-max scaled to [0, 1] as in the paper, and the decoders end in a sigmoid: bounded
        # outputs keep AE2's adversarial goal (push w3 away from w) from growing without limit. The code
        # is linear: a ReLU on a small code would discard the sign of whole directions.
        self.encoder = stack(sizes, nn.Identity())
        self.decoder1 = stack(sizes[::-1], nn.Sigmoid())
        self.decoder2 = stack(sizes[::-1], nn.Sigmoid())

    def reconstructions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(w1, w2, w3)`` for windows ``x``, each shaped like ``x``."""
        flat = x.reshape(x.shape[0], -1)
        code = self.encoder(flat)
        w1 = self.decoder1(code)
        w2 = self.decoder2(code)
        w3 = self.decoder2(self.encoder(w1))
        return w1.reshape(x.shape), w2.reshape(x.shape), w3.reshape(x.shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(x.shape[0], -1)
        w1 = self.decoder1(self.encoder(flat))
        w3 = self.decoder2(self.encoder(w1))
        return w1.reshape(x.shape), w3.reshape(x.shape)
