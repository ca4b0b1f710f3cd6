"""How a global batch is split over workers, micro-batches and ghost batches (all in examples)."""

from __future__ import annotations

import math


def micro_batch_size(local_batch: int, device_limit: int | None, ghost_batch_size: int | None) -> int | None:
    """The largest equal micro-batch ≤ ``device_limit`` that divides ``local_batch``.

    Gradients are accumulated over ``local_batch // micro`` micro-batches. With ghost
    batch norm every micro-batch must hold whole ghost batches. None when impossible.
    """
    if device_limit is None or local_batch <= device_limit:
        return local_batch
    for chunks in range(math.ceil(local_batch / device_limit), local_batch + 1):
        if local_batch % chunks:
            continue
        micro = local_batch // chunks
        if ghost_batch_size is None or micro % ghost_batch_size == 0:
            return micro
    return None


def bn_batch_size(batch_size: int, workers: int, ghost_batch_size: int | None, has_batch_norm: bool) -> int | None:
    """Examples that batch norm normalises over: G with ghost BN, else the per-worker batch B/W
    (plain BN is never split further: the spec refuses micro-batches that would), None without BN."""
    if not has_batch_norm:
        return None
    return ghost_batch_size if ghost_batch_size is not None else batch_size // workers


def penalty_block_size(batch_size: int, block_size: int) -> int:
    """Examples per block of the ``geiping_blocks`` gradient penalty for a global batch of ``batch_size``.

    Blocks are cut from the global batch, so W workers regularise the blocks one worker
    would; a batch smaller than a block is one block (Geiping et al.: max(B // sub_batch, 1)).
    """
    return min(block_size, batch_size)
