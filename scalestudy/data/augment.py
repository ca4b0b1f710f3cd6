"""Batched image augmentation on the batch's device: random crop with padding + flip.

One gather per batch, no per-image Python loop: every output pixel (i, j) of image n
reads padded pixel (dy[n] + i, dx[n] + j), or (dy[n] + i, dx[n] + W - 1 - j) when
image n is flipped. Padding is zero in normalised space (the dataset's mean colour).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def crop_flip(images: Tensor, dy: Tensor, dx: Tensor, flip: Tensor, padding: int) -> Tensor:
    """Crop each zero-padded image at offset (dy, dx), then mirror it where ``flip``.

    ``images`` is (N, C, H, W); ``dy``, ``dx`` are int64 (N,) in [0, 2·padding]; ``flip`` is
    bool (N,). An offset of ``padding`` is the identity crop. Output shape = input shape.
    """
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding)) if padding else images
    device = images.device
    rows = dy[:, None] + torch.arange(h, device=device)  # (N, H)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)  # (N, W)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(images: Tensor, generator: torch.Generator, first: int = 0, total: int | None = None,
                     *, padding: int = 4) -> Tensor:
    """Standard CIFAR augmentation: random ``padding``-pixel crop + horizontal flip (p = 0.5).

    ``images`` are rows [first, first + n) of a global batch of ``total`` examples (default:
    the whole batch). The offsets and flips are drawn for all ``total`` examples from
    ``generator`` (which must be on ``images.device``) and the batch gets its rows of them, so
    W workers holding slices of one global batch augment it exactly as one worker would
    (``scalestudy.data.base.Augment``). The same generator state gives the same augmentation.
    """
    n, device = images.shape[0], images.device
    total = n if total is None else total
    if not 0 <= first <= total - n:
        raise ValueError(f"rows [{first}, {first + n}) are not inside a global batch of {total}")
    dy = torch.randint(0, 2 * padding + 1, (total,), generator=generator, device=device)[first:first + n]
    dx = torch.randint(0, 2 * padding + 1, (total,), generator=generator, device=device)[first:first + n]
    flip = (torch.rand(total, generator=generator, device=device) < 0.5)[first:first + n]
    return crop_flip(images, dy, dx, flip, padding)
