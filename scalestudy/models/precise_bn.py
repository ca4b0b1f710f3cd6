"""Precise BN (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", §3.1): exact population statistics.

The running statistics of training are an exponential average over recent batches taken with
older weights. Precise BN replaces them, before an evaluation, by the plain average over a fixed
set of training batches with the current weights: every BN batch's mean and unbiased variance
(every ghost batch's, for ghost batch norm) weigh the same. It sets each layer's momentum to None
(the cumulative average of ``nn.BatchNorm`` and of the ghost layer) on freshly reset statistics
and runs the batches forward in train mode without gradients.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from scalestudy.models.ghost_bn import batch_norm_layers

__all__ = ["recompute_running_stats"]


@torch.no_grad()
def recompute_running_stats(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set every batch-norm layer's running mean and variance to their average over ``batches``.

    Each batch is one forward (one BN batch for ``nn.BatchNorm``, k ghost batches for ghost BN).
    Momentum, ``num_batches_tracked``, train/eval modes and the RNG state (dropout draws) are as
    before. Returns the number of batches; raises ``ValueError`` for a model without batch norm
    or an empty ``batches``.
    """
    layers = batch_norm_layers(model)
    if not layers:
        raise ValueError("precise BN: the model has no batch-norm layer")
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in layers]
    modes = [(m, m.training) for m in model.modules()]
    device = next(model.parameters()).device
    count = 0
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for m in layers:
                m.reset_running_stats()
                m.momentum = None
            model.train()
            for inputs in batches:
                model(inputs)
                count += 1
    finally:
        for m, (momentum, tracked) in zip(layers, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
        for m, training in modes:
            m.training = training
    if count == 0:
        raise ValueError("precise BN: no batches")
    return count
