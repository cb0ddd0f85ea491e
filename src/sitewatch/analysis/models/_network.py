"""The network: a compact Siamese U-Net of the FC-Siam-diff class (Daudt, Le Saux & Boulch 2018).

One encoder with shared weights runs on BEFORE and AFTER; the decoder starts from the absolute
difference of the two bottlenecks and, at each scale, is fed the absolute difference of the two
skip features ``|skip_a - skip_b|``. The output is one change logit per pixel. GroupNorm (not
BatchNorm) keeps training and inference identical for any batch or tile size. Optional per-pixel
"pair" channels (a property of the two dates together, such as an unsupervised change magnitude)
join the last, full-resolution decoder block beside the difference of the first skip features.

The output layer's bias can start at the log-odds of the share of changed pixels
(:meth:`SiamDiffUNet.start_at_prior`, as RetinaNet does for rare classes). Starting at 0 (a
probability of 0.5 everywhere), the first steps lower every logit fast, and the cheapest way to
do that is to drive the last block's channels that vote for change below zero, where the ReLU
stops their gradient for good: in the OSCD cross-validation such a network ended with 11 of its
16 last-block channels dead and could no longer reach a probability of 0.48 anywhere.

This module imports torch at import time; import it only through the package's lazy functions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SiamDiffUNet"]


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, max(1, channels // 4)), channels)


class _Block(nn.Sequential):
    """Two 3x3 conv + GroupNorm + ReLU layers."""

    def __init__(self, c_in: int, c_out: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            _norm(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            _norm(c_out),
            nn.ReLU(inplace=True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class SiamDiffUNet(nn.Module):
    """FC-Siam-diff: ``forward(a, b)`` with (N, bands, H, W) inputs gives (N, 1, H, W) logits.

    ``widths`` are the channel counts of the encoder levels (the last is the bottleneck); H and W
    must be multiples of ``2 ** (len(widths) - 1)``.
    """

    def __init__(
        self,
        in_channels: int,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        dropout: float = 0.1,
        pair_channels: int = 0,
    ) -> None:
        super().__init__()
        if in_channels < 1 or len(widths) < 2 or pair_channels < 0:
            raise ValueError("need at least one input band and two levels")
        self.in_channels = in_channels
        self.pair_channels = pair_channels
        self.widths = tuple(widths)
        self.encoder = nn.ModuleList()
        c = in_channels
        for i, w in enumerate(widths):
            self.encoder.append(_Block(c, w, dropout if i == len(widths) - 1 else 0.0))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for w_deep, w_skip in zip(widths[:0:-1], widths[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(w_deep, w_skip, 2, stride=2))
            extra = pair_channels if len(self.decoder) == len(widths) - 2 else 0
            self.decoder.append(_Block(2 * w_skip + extra, w_skip))
        self.head = nn.Conv2d(widths[0], 1, 1)

    def start_at_prior(self, share: float) -> None:
        """Set the output bias so that the untrained network predicts ``share`` (the expected
        share of changed pixels, clipped to [0.001, 0.5]) everywhere."""
        p = min(max(float(share), 1e-3), 0.5)
        bias = self.head.bias
        assert bias is not None
        with torch.no_grad():
            bias.fill_(math.log(p / (1.0 - p)))

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this."""
        return int(2 ** (len(self.widths) - 1))

    def _encode(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i, block in enumerate(self.encoder):
            if i:
                x = self.pool(x)
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, a: Tensor, b: Tensor, pair: Tensor | None = None) -> Tensor:
        """Logits for BEFORE ``a`` and AFTER ``b``; ``pair`` (N, pair_channels, H, W) when the
        network has pair channels."""
        if (pair is None) != (self.pair_channels == 0) or (
            pair is not None and pair.shape[1] != self.pair_channels
        ):
            raise ValueError(f"the network takes {self.pair_channels} pair channel(s)")
        n = a.shape[0]
        feats = self._encode(torch.cat([a, b], dim=0))  # one pass through the shared encoder
        diffs = [torch.abs(f[:n] - f[n:]) for f in feats]
        x = diffs[-1]
        last = len(self.decoder) - 1
        for i, (up, block, skip) in enumerate(
            zip(self.up, self.decoder, diffs[-2::-1], strict=True)
        ):
            parts = [up(x), skip] if i < last or pair is None else [up(x), skip, pair]
            x = block(torch.cat(parts, dim=1))
        out: Tensor = self.head(x)
        return out
