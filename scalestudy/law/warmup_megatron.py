"""A batch warmup as Megatron-LM's ``--step-batch-size-schedule`` (``megatron_args.sh``).

The grammar (NVIDIA/Megatron-LM, ``megatron/core/num_microbatches_calculator.py``,
``StepBatchsizeNumMicroBatchesCalculator._parse_schedule``, commit d98e8a64ddf3): space-separated
``THRESHOLD:BATCH_SIZE`` pairs; a number may end in K, M, B or T (×10³, 10⁶, 10⁹, 10¹²); the first
threshold is 0 and they strictly increase. Batch sizes are samples (sequences) per update. A
threshold counts tokens when Megatron has a sequence length (``--seq-length``, which its GPT
training always passes: ``megatron/training/global_vars.py``), turned into samples by
``threshold // seq_length``; else samples. The batch size of an update is that of the last
threshold ≤ the samples consumed before it. The schedule replaces ``--global-batch-size`` and
``--rampup-batch-size`` and needs sample-based training (``--train-samples``).

Megatron does not change the lr with the batch size (its scheduler steps by samples consumed,
``megatron/core/optimizer_param_scheduler.py``): the file says so, and gives each stage's lr.

Standard library only.
"""

from __future__ import annotations

from scalestudy.law.batch_warmup import BatchWarmup
from scalestudy.law.cbs import rule_label

MEGATRON_FILE = "megatron_args.sh"
MEGATRON_ARRAY = "SCALESTUDY_BATCH_WARMUP_ARGS"
_SUFFIXES = (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3))


def megatron_number(value: int) -> str:
    """``value`` with Megatron's largest suffix that keeps it exact (250000000000 → 250B, 1536 → 1536)."""
    for suffix, scale in _SUFFIXES:
        if value and value % scale == 0:
            return f"{value // scale}{suffix}"
    return str(value)


def step_batch_size_schedule(warmup: BatchWarmup, sequence_length: int | None = None) -> str:
    """The ``--step-batch-size-schedule`` value: thresholds in tokens (examples × ``sequence_length``)
    when a sequence length is given, else in samples."""
    unit = sequence_length or 1
    return " ".join(f"{megatron_number(s.start_examples * unit)}:{s.batch_size}" for s in warmup.stages)


def megatron_args(warmup: BatchWarmup, sequence_length: int | None = None) -> str:
    """The text of ``megatron_args.sh``: a bash array of the flags, with comments saying the units
    and the lr each stage needs."""
    units = (f"tokens: valid with --seq-length {sequence_length}" if sequence_length else
             "samples: valid only where Megatron has no --seq-length (with one, it reads them as tokens)")
    lrs = ", ".join(f"{s.lr:.6g} from sample {s.start_examples}" for s in warmup.stages)
    return "\n".join([
        f"# Megatron-LM flags for the batch warmup of batch_warmup.json (written by scalestudy plan --batch-warmup).",
        f"# Add them to the pretrain script's arguments: \"${{{MEGATRON_ARRAY}[@]}}\" (no --global-batch-size,",
        "# no --rampup-batch-size, no --train-iters: the schedule sets the batch size of every update).",
        f"# Thresholds are {units}; batch sizes are samples (sequences) per update.",
        f"# Megatron keeps --lr whatever the batch size; the {rule_label(warmup.rule, warmup.rule_exponent)} rule "
        f"gives each stage its lr: {lrs}.",
        f"{MEGATRON_ARRAY}=(",
        f"    --step-batch-size-schedule \"{step_batch_size_schedule(warmup, sequence_length)}\"",
        f"    --train-samples {warmup.examples_before(warmup.total_steps)}",
        f"    --lr {warmup.base_lr!r}",
        ")",
        "",
    ])


__all__ = ["MEGATRON_ARRAY", "MEGATRON_FILE", "megatron_args", "megatron_number", "step_batch_size_schedule"]
