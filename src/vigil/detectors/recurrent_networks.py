"""PyTorch recurrent networks of the LSTM detectors (training glue: torch_base.py, autoencoders.py, forecasters.py).

Inputs are batches of windows shaped (batch, time, features), batch first.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LSTMAutoencoder", "LSTMForecaster"]


class LSTMAutoencoder(nn.Module):
    """Sequence-to-sequence LSTM autoencoder: the window is read into one code vector and rebuilt from it.

    The encoder LSTM reads the window; its last hidden state is projected to a ``latent``-sized code.
    The decoder LSTM receives that code at every time step and a linear layer maps its states back to the
    features, so the network must summarise the whole window in ``latent`` numbers (the "repeat vector"
    design of SKAB's LSTM-AE; Malhotra et al. 2016 use the same bottleneck).

    Examples
    --------
    >>> net = LSTMAutoencoder(n_features=3, hidden_size=8, latent=2)
    >>> net(torch.zeros(4, 10, 3)).shape
    torch.Size([4, 10, 3])
    """

    def __init__(
        self, n_features: int, hidden_size: int = 32, latent: int = 8, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        between = dropout if num_layers > 1 else 0.0  # nn.LSTM applies dropout between stacked layers only
        self.encoder = nn.LSTM(n_features, hidden_size, num_layers, batch_first=True, dropout=between)
        self.to_code = nn.Linear(hidden_size, latent)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.LSTM(latent, hidden_size, num_layers, batch_first=True, dropout=between)
        self.output = nn.Linear(hidden_size, n_features)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of each window, shape (batch, latent)."""
        _, (hidden, _) = self.encoder(x)
        return self.to_code(self.dropout(hidden[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = self.encode(x)
        states, _ = self.decoder(code.unsqueeze(1).expand(-1, x.shape[1], -1))
        return self.output(self.dropout(states))


class LSTMForecaster(nn.Module):
    """Stacked LSTM that predicts the next row from a window of past rows (Malhotra et al. 2015).

    Examples
    --------
    >>> net = LSTMForecaster(n_features=3, hidden_size=8)
    >>> net(torch.zeros(4, 10, 3)).shape
    torch.Size([4, 3])
    """

    def __init__(self, n_features: int, hidden_size: int = 32, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        between = dropout if num_layers > 1 else 0.0
        self.lstm = nn.LSTM(n_features, hidden_size, num_layers, batch_first=True, dropout=between)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(x)
        return self.output(self.dropout(hidden[-1]))
