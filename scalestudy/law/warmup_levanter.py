"""A batch warmup as Levanter's batch schedule (``levanter_train_batch_size.yaml``).

The form (stanford-crfm/levanter, ``src/levanter/schedule.py`` and ``TrainerConfig.train_batch_size:
int | IntSchedule`` in ``src/levanter/trainer.py``, commit 9263f81e8b45; an example config:
``config/gpt2_small_fast_batch_schedule.yaml``): ``trainer.train_batch_size`` is a list of
``{start: STEP, value: B}``, the first at step 0, in order of steps; ``BatchSchedule`` gives step s
the data at offset Σ (steps × B) of the segments before it, which is the warmup's examples seen.
Batch sizes are examples (sequences) per step. Levanter's lr schedules are functions of the step
and do not change with B: the file says so and gives each stage's lr.

Standard library only.
"""

from __future__ import annotations

from scalestudy.law.batch_warmup import BatchWarmup
from scalestudy.law.cbs import rule_label

LEVANTER_FILE = "levanter_train_batch_size.yaml"


def levanter_schedule(warmup: BatchWarmup) -> list[dict[str, int]]:
    """``trainer.train_batch_size`` as ``ScheduleStep(start, value)`` mappings."""
    return [{"start": s.start_step, "value": s.batch_size} for s in warmup.stages]


def levanter_file(warmup: BatchWarmup) -> str:
    """The text of ``levanter_train_batch_size.yaml``: a ``trainer:`` section to merge into the config."""
    lrs = ", ".join(f"{s.lr:.6g} from step {s.start_step}" for s in warmup.stages)
    lines = ["# Levanter: the batch warmup of batch_warmup.json (scalestudy plan --batch-warmup); merge into",
             "# your config's trainer section. Levanter keeps optimizer.learning_rate whatever the batch size;",
             f"# the {rule_label(warmup.rule, warmup.rule_exponent)} rule gives each stage its lr: {lrs}.",
             "trainer:",
             "  train_batch_size:"]
    for step in levanter_schedule(warmup):
        lines += [f"    - start: {step['start']}", f"      value: {step['value']}"]
    lines.append(f"  num_train_steps: {warmup.total_steps}")
    return "\n".join(lines) + "\n"


__all__ = ["LEVANTER_FILE", "levanter_file", "levanter_schedule"]
