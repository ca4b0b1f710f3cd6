"""A batch warmup as OLMo-core's ``BatchSizeSchedulerCallback`` (``olmo_core_batch_size_scheduler.json``).

The callback (allenai/OLMo-core, ``src/olmo_core/train/callbacks/batch_size_scheduler.py``, commit
fa6c5014c9f6): ``batch_sizes`` (ints, in the data loader's units: its text data loaders count the
global batch in *tokens*, ``src/olmo_core/data/data_loader.py``) and ``schedule`` (one ``Duration``
each: ``{"value": n, "unit": "steps" | "tokens" | "epochs"}``, one unit for all, the first 0, each
later than the one before); every change is by a whole factor. Before each batch it applies the
latest event that is due, but grows B by a ratio r only once the batches processed in the epoch
are a multiple of r (else it would repeat or skip data): the warmup's stages start where the
examples seen are a multiple of their B, so the change comes at the planned example.

Its lr: at each change it multiplies the optimizer's (base) lr by √(new B / old B), and only for
Adam-type optimizers (Adam, AdamW, SkipStepAdamW; others raise). That is the ``sqrt`` rule exactly,
so a warmup of the ``linear`` rule (SGD) has no OLMo-core form: :func:`olmo_core_refusal` says why.

Standard library only.
"""

from __future__ import annotations

import json

from scalestudy.law.batch_warmup import BatchWarmup
from scalestudy.law.cbs import rule_label

OLMO_CORE_FILE = "olmo_core_batch_size_scheduler.json"


def olmo_core_refusal(warmup: BatchWarmup, sequence_length: int | None) -> str | None:
    """Why the warmup has no OLMo-core form, or None."""
    if warmup.rule != "sqrt":
        return (f"OLMo-core's callback rescales the lr by √(B ratio) for Adam-type optimizers only; this warmup "
                f"follows the {rule_label(warmup.rule, warmup.rule_exponent)} rule ({warmup.optimizer})")
    if sequence_length is None:
        return "OLMo-core counts batches in tokens: give --sequence-length"
    return None


def olmo_core_callback(warmup: BatchWarmup, sequence_length: int) -> dict:
    """``BatchSizeSchedulerCallback``'s fields: batch sizes and starts in tokens."""
    refusal = olmo_core_refusal(warmup, sequence_length)
    if refusal is not None:
        raise ValueError(refusal)
    return {"batch_sizes": [s.batch_size * sequence_length for s in warmup.stages],
            "schedule": [{"value": s.start_examples * sequence_length, "unit": "tokens"} for s in warmup.stages],
            "enabled": True}


def olmo_core_file(warmup: BatchWarmup, sequence_length: int) -> str:
    """The text of ``olmo_core_batch_size_scheduler.json``."""
    return json.dumps(olmo_core_callback(warmup, sequence_length), indent=2) + "\n"


__all__ = ["OLMO_CORE_FILE", "olmo_core_callback", "olmo_core_file", "olmo_core_refusal"]
