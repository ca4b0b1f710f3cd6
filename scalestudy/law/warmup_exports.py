"""What ``scalestudy plan --batch-warmup`` writes and prints: ``batch_warmup.json`` and each trainer's
form of it (Megatron-LM, OLMo-core, Levanter), and the stages as a table. PyTorch loops and Hugging
Face's Trainer read ``batch_warmup.json`` itself (:mod:`.warmup_pytorch`, :mod:`.warmup_hf`).

Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scalestudy.law.batch_warmup import BatchWarmup
from scalestudy.law.cbs import rule_label
from scalestudy.law.warmup_levanter import LEVANTER_FILE, levanter_file
from scalestudy.law.warmup_megatron import MEGATRON_ARRAY, MEGATRON_FILE, megatron_args
from scalestudy.law.warmup_olmo import OLMO_CORE_FILE, olmo_core_file, olmo_core_refusal

WARMUP_FILE = "batch_warmup.json"
EXPORT_FILES = (WARMUP_FILE, MEGATRON_FILE, OLMO_CORE_FILE, LEVANTER_FILE)  # every file the command may write


@dataclass(frozen=True)
class WarmupExport:
    """One file of the output folder: its name, what it is for, and its text (None: not written, ``reason``)."""

    name: str
    purpose: str
    text: str | None
    reason: str | None = None


def warmup_exports(warmup: BatchWarmup, sequence_length: int | None = None) -> tuple[WarmupExport, ...]:
    """The trainers' files (``batch_warmup.json`` is the warmup's own ``save``)."""
    units = "tokens" if sequence_length else "samples"
    refusal = olmo_core_refusal(warmup, sequence_length)
    return (
        WarmupExport(MEGATRON_FILE, f"Megatron-LM: source it, add \"${{{MEGATRON_ARRAY}[@]}}\" to the pretrain "
                     f"arguments (--step-batch-size-schedule in {units}, --train-samples; the lr stays --lr)",
                     megatron_args(warmup, sequence_length)),
        WarmupExport(OLMO_CORE_FILE, "OLMo-core: BatchSizeSchedulerCallback(batch_sizes=..., schedule=[Duration(**d) "
                     "...]) in tokens; it rescales an AdamW lr by √(B ratio) itself",
                     None if refusal else olmo_core_file(warmup, sequence_length), refusal),
        WarmupExport(LEVANTER_FILE, "Levanter: trainer.train_batch_size as ScheduleStep(start, value) in steps, "
                     "and num_train_steps (the lr stays optimizer.learning_rate)", levanter_file(warmup)),
    )


def write_exports(warmup: BatchWarmup, folder: Path, sequence_length: int | None = None) -> list[tuple[Path, str]]:
    """Write ``batch_warmup.json`` and the trainers' files in ``folder`` (which exists): (path, purpose) of
    each written (:func:`skipped_lines` says which were not, and why)."""
    written = [(warmup.save(folder / WARMUP_FILE),
                "the stages: PyTorch (scalestudy.law.warmup_pytorch) and Hugging Face's Trainer "
                "(scalestudy.law.warmup_hf) read it with BatchWarmup.load")]
    for export in warmup_exports(warmup, sequence_length):
        if export.text is not None:
            path = folder / export.name
            path.write_text(export.text)
            written.append((path, export.purpose))
    return written


def stage_lines(warmup: BatchWarmup, sequence_length: int | None = None) -> list[str]:
    """The stages as a table: where each starts (examples, tokens, update), its B and lr."""
    tokens = sequence_length is not None
    head = f"{'start examples':>15}{'  start tokens' if tokens else ''}{'start step':>12}{'batch size':>12}{'lr':>12}"
    lines = [f"batch warmup: B_0 = {warmup.base_batch_size} × {warmup.factor} at each stage CBS ({warmup.basis}) "
             f"admits, lr by the {rule_label(warmup.rule, warmup.rule_exponent)} rule ({warmup.optimizer}); "
             f"{len(warmup.stages)} stage(s), "
             f"{warmup.total_steps} updates, {warmup.examples_before(warmup.total_steps)} examples", head]
    for s in warmup.stages:
        where = f"{s.start_examples * sequence_length:>14}" if tokens else ""
        lines.append(f"{s.start_examples:>15}{where}{s.start_step:>12}{s.batch_size:>12}{s.lr:>12.6g}")
    return lines


def skipped_lines(warmup: BatchWarmup, sequence_length: int | None = None) -> list[str]:
    """One line per trainer's file not written, and why."""
    return [f"not written: {e.name} ({e.reason})" for e in warmup_exports(warmup, sequence_length) if e.text is None]


__all__ = ["EXPORT_FILES", "WARMUP_FILE", "WarmupExport", "skipped_lines", "stage_lines", "warmup_exports",
           "write_exports"]
