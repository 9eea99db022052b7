"""The PyTorch networks of the image detectors, kept apart from their training glue.

* :class:`FilterBank` — a fixed (not trained) convolutional feature extractor for textured surfaces: an
  illumination-normalised log residual, Gaussian, difference-of-Gaussian and gradient-energy responses at
  several scales, pooled onto a coarse grid of patches.
* :class:`ConvAutoencoder` — a strided-convolution encoder and a transposed-convolution decoder.
* :class:`SmallCNN` — a compact classifier whose global-average-pooled head gives class activation maps.
* :class:`UNet` — a small encoder-decoder with skip connections giving one defect logit per pixel.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvAutoencoder", "FilterBank", "SmallCNN", "UNet", "gaussian_blur", "standardise_and_pad"]


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) matrix of a 1-D Gaussian blur whose taps beyond the border fall on the edge pixel.

    Kept per size, sigma, type and device (callers only multiply by it): a detector blurs images of one
    size, and an ONNX trace then finds the matrix made and records it as a constant. Made outside inference
    mode, so that a matrix first made while scoring can still be saved for backward by a training step.
    """
    with torch.inference_mode(False):
        return _make_blur_matrix(n, sigma, dtype, device)


def _make_blur_matrix(n: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = max(1, int(3.0 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    taps = taps / taps.sum()
    rows = torch.arange(n).repeat_interleave(len(offsets))
    cols = (torch.arange(n)[:, None] + offsets.long()[None, :]).clamp(0, n - 1).reshape(-1)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.index_put_((rows, cols), taps.repeat(n), accumulate=True)
    return matrix.to(dtype=dtype, device=device)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (n, C, H, W) with edge-replicating borders (works for any image size).

    Done as two matrix products with banded blur matrices: on CPUs this is several times faster than a
    convolution with long 1-D kernels, and exactly the same filter.

    Examples
    --------
    >>> x = torch.zeros(1, 1, 9, 9); x[0, 0, 4, 4] = 1.0
    >>> y = gaussian_blur(x, 1.0)
    >>> round(float(y.sum()), 6), bool(y[0, 0, 4, 4] == y.max())
    (1.0, True)
    """
    if sigma <= 0:
        return x
    h, w = (int(v) for v in x.shape[-2:])  # plain ints, also while an ONNX trace records sizes as tensors
    across = _blur_matrix(w, sigma, x.dtype, x.device)
    down = _blur_matrix(h, sigma, x.dtype, x.device)
    return torch.matmul(down, torch.matmul(x, across.T))


def standardise_and_pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Each image of (n, C, H, W) to zero mean and unit deviation (exposure drops out), edge-padded to ``stride``.

    The padding goes right and below, so ``out[..., :H, :W]`` are the original pixels.

    Examples
    --------
    >>> out = standardise_and_pad(torch.rand(2, 1, 10, 13), 4)
    >>> out.shape, bool(out[..., :10, :13].mean().abs() < 1e-5)
    (torch.Size([2, 1, 12, 16]), True)
    """
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) / (std + 1e-3)
    h, w = x.shape[2:]
    pad_h, pad_w = (-h) % stride, (-w) % stride
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x


class FilterBank(nn.Module):
    """Fixed texture features on a ``grid`` × ``grid`` patch layout.

    For each channel: the log ratio ``r`` of the image to its blur at ``flat_sigma`` (divides out slow
    illumination changes, the main nuisance of camera images), ``|r|``, ``r²``, the log illumination itself
    (minus its image mean, so that a large dark or bright region still shows), and at every scale ``s``:
    blurred ``r``, its difference of Gaussians (``s`` vs ``2s``), the absolute value of that, and the
    horizontal and vertical gradient energies. Each map is averaged over the patch; the first four are also
    summarised by their patch minimum and maximum, which keep a small blowhole visible in a large patch.

    Parameters
    ----------
    grid : int
        Patches per side.
    flat_sigma : float
        Blur (pixels) of the illumination estimate.
    scales : tuple of float
        Blurs (pixels) of the texture responses.

    Examples
    --------
    >>> bank = FilterBank(grid=4, flat_sigma=4.0, scales=(1.0, 2.0))
    >>> bank(torch.rand(2, 1, 32, 32)).shape
    torch.Size([2, 22, 4, 4])
    """

    def __init__(self, grid: int = 16, flat_sigma: float = 8.0, scales: tuple[float, ...] = (1.0, 2.0, 4.0)) -> None:
        super().__init__()
        self.grid = grid
        self.flat_sigma = flat_sigma
        self.scales = tuple(scales)

    @staticmethod
    def n_features(channels: int, n_scales: int) -> int:
        """Feature channels produced for images with ``channels`` channels and ``n_scales`` scales."""
        return channels * (4 + 5 * n_scales + 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps = 0.02  # keeps the log finite on black pixels; ~5 grey levels of 255
        illumination = gaussian_blur(x, self.flat_sigma)
        r = torch.log(x + eps) - torch.log(illumination + eps)
        light = torch.log(illumination + eps)
        light = light - light.mean(dim=(2, 3), keepdim=True)
        first = [r, r.abs(), r * r, light]
        # Pool every response as soon as it exists, one by one: stacking ~20 full-resolution maps first
        # costs more memory traffic than the filtering itself.
        pooled = [self.mean_pool(m) for m in first]
        for s in self.scales:
            b = gaussian_blur(r, s)
            dog = b - gaussian_blur(r, 2.0 * s)
            gy = F.pad(b[:, :, 2:, :] - b[:, :, :-2, :], (0, 0, 1, 1), mode="replicate").abs()
            gx = F.pad(b[:, :, :, 2:] - b[:, :, :, :-2], (1, 1, 0, 0), mode="replicate").abs()
            pooled += [self.mean_pool(m) for m in (b, dog, dog.abs(), gx, gy)]
        low = [-self.max_pool(-m) for m in first]
        high = [self.max_pool(m) for m in first]
        return torch.cat([*pooled, *low, *high], dim=1)

    def mean_pool(self, m: torch.Tensor) -> torch.Tensor:
        """Mean of each patch of the ``grid`` × ``grid`` layout (an ONNX export pools fixed cells instead)."""
        return F.adaptive_avg_pool2d(m, self.grid)

    def max_pool(self, m: torch.Tensor) -> torch.Tensor:
        """Largest value of each patch of the ``grid`` × ``grid`` layout."""
        return F.adaptive_max_pool2d(m, self.grid)


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder: ``len(widths)`` stride-2 stages down to a ``latent``-channel bottleneck and back.

    Input height and width must be multiples of ``2 ** len(widths)`` (the detector pads to that).

    Examples
    --------
    >>> net = ConvAutoencoder(1, widths=(8, 16), latent=4)
    >>> net(torch.rand(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (32, 64, 128), latent: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, 4, stride=2, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.1)]
            previous = width
        layers += [nn.Conv2d(previous, latent, 3, padding=1)]
        self.encoder = nn.Sequential(*layers)
        layers = [nn.Conv2d(latent, previous, 3, padding=1), nn.BatchNorm2d(previous), nn.LeakyReLU(0.1)]
        outputs = (*reversed(widths[:-1]), in_channels)
        for i, width in enumerate(outputs):
            layers.append(nn.ConvTranspose2d(previous, width, 4, stride=2, padding=1))
            if i < len(outputs) - 1:
                layers += [nn.BatchNorm2d(width), nn.LeakyReLU(0.1)]
            previous = width
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class SmallCNN(nn.Module):
    """A compact classifier: conv blocks (conv, group norm, ReLU, 2× pooling) and a linear head.

    :meth:`cam` returns the class activation maps (the head applied at every position of the last
    feature map), which the supervised detector turns into a defect heat map.

    Examples
    --------
    >>> net = SmallCNN(1, n_classes=3, widths=(8, 16))
    >>> net(torch.rand(2, 1, 32, 32)).shape, net.cam(torch.rand(2, 1, 32, 32)).shape
    (torch.Size([2, 3]), torch.Size([2, 3, 16, 16]))
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.GroupNorm(min(8, width), width), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            previous = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(previous, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.cam(x))

    @staticmethod
    def pool(cams: torch.Tensor) -> torch.Tensor:
        """Logits from class activation maps: the mean plus the maximum over positions.

        The maximum lets one small defect decide (a blowhole covers ~0.2 % of a tile, and a mean alone
        dilutes it); the mean keeps large defects and context in play.
        """
        return cams.mean(dim=(2, 3)) + cams.amax(dim=(2, 3))

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps, shape (n, n_classes, h, w): the head applied at every position."""
        features = self.features(x)
        return torch.einsum("nchw,kc->nkhw", features, self.head.weight) + self.head.bias.view(1, -1, 1, 1)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    groups = min(8, out_channels)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.ReLU(),
    )


class UNet(nn.Module):
    """A small U-Net giving one logit per pixel: ``len(widths) - 1`` poolings, skip connections, a 1×1 head.

    Input height and width must be multiples of ``2 ** (len(widths) - 1)`` (the detector pads to that).

    Examples
    --------
    >>> net = UNet(1, widths=(4, 8, 16))
    >>> net(torch.rand(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (8, 16, 32, 64)) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(_double_conv(previous, width))
            previous = width
        self.up = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(_double_conv(previous + width, width))
            previous = width
        self.head = nn.Conv2d(previous, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.down):
            x = stage(x)
            if i < len(self.down) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for stage in self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = stage(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)
