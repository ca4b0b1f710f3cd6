"""The batch warmup in Megatron-LM, OLMo-core and Levanter, checked against each target's own rules.

None of the three installs here as a test dependency: megatron-core's latest wheel (0.16.1) predates
``--step-batch-size-schedule``; ai2-olmo-core 3.0 requires torch < 2.14 (this project runs 2.14) and
its callback's import pulls google-cloud-storage; Levanter needs JAX and its wheel on PyPI (1.1)
predates ``BatchSchedule``. So each test below transcribes the target's parser and the loop that
reads it, from the file and commit named, and runs the exported value through them.
"""

import dataclasses
import json
import math
import subprocess

import pytest
import yaml

from scalestudy.law.batch_warmup import warmup_from_cbs
from scalestudy.law.warmup_levanter import levanter_file, levanter_schedule
from scalestudy.law.warmup_megatron import MEGATRON_ARRAY, megatron_args, megatron_number, step_batch_size_schedule
from scalestudy.law.warmup_olmo import olmo_core_callback, olmo_core_file, olmo_core_refusal
from warmup_curves import cbs_curve, small_warmup


# --- Megatron-LM: megatron/core/num_microbatches_calculator.py at d98e8a64ddf34856e74b24714e3bedb2f5a39553
# (StepBatchsizeNumMicroBatchesCalculator._parse_numeric_value, _parse_schedule, _validate_schedule,
# _get_batch_size_for_samples) and megatron/training/training.py (update_train_iters).

def megatron_parse_number(text):
    text, multiplier = text.strip().upper(), 1
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if text.endswith(suffix):
            text, multiplier = text[:-1], scale
            break
    return int(float(text) * multiplier)


def megatron_parse_schedule(text, seq_length):
    schedule = []
    for entry in text.strip().replace(",", " ").split():
        threshold, batch_size = entry.split(":", 1)
        threshold = megatron_parse_number(threshold)
        if seq_length is not None:
            threshold //= seq_length
        schedule.append((threshold, megatron_parse_number(batch_size)))
    schedule.sort(key=lambda pair: pair[0])
    assert schedule and schedule[0][0] == 0
    assert all(b[0] > a[0] for a, b in zip(schedule, schedule[1:])) and all(size > 0 for _, size in schedule)
    return schedule


def megatron_batch_sizes(schedule, train_samples):
    """update_train_iters: the batch of every iteration, from the samples consumed before it."""
    sizes, consumed = [], 0
    while consumed < train_samples:
        size = [bs for threshold, bs in schedule if consumed >= threshold][-1]
        sizes.append(size)
        consumed += size
    return sizes


def sourced_array(text, tmp_path):
    path = tmp_path / "megatron_args.sh"
    path.write_text(text)
    out = subprocess.run(["bash", "-c", f'source "{path}" && printf "%s\\n" "${{{MEGATRON_ARRAY}[@]}}"'],
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


@pytest.mark.parametrize("sequence_length", [None, 1024, 4096])
def test_megatron_reads_the_warmups_batch_size_at_every_update(tmp_path, sequence_length):
    warmup = small_warmup()
    args = sourced_array(megatron_args(warmup, sequence_length), tmp_path)
    flags = dict(zip(args[::2], args[1::2]))
    assert set(flags) == {"--step-batch-size-schedule", "--train-samples", "--lr"} and len(args) == 6
    schedule = megatron_parse_schedule(flags["--step-batch-size-schedule"], sequence_length)
    assert schedule == [(s.start_examples, s.batch_size) for s in warmup.stages]
    sizes = megatron_batch_sizes(schedule, int(flags["--train-samples"]))
    assert sizes == [warmup.at_step(step).batch_size for step in range(warmup.total_steps)]
    assert float(flags["--lr"]) == warmup.base_lr


def test_megatron_numbers_take_the_largest_exact_suffix():
    assert [megatron_number(v) for v in (0, 1536, 250 * 10**9, 2_400_000_000, 3 * 10**12, 114688)] == \
        ["0", "1536", "250B", "2400M", "3T", "114688"]
    for value in (0, 7, 1000, 250 * 10**9, 123_456_000_000, 9 * 10**15):
        assert megatron_parse_number(megatron_number(value)) == value
    warmup = small_warmup()
    assert step_batch_size_schedule(warmup, 1000) == "0:8 112K:16 320K:32"


# --- OLMo-core: src/olmo_core/train/callbacks/batch_size_scheduler.py at fa6c5014c9f6e9ee789da2d9c20d5126fee8df0d
# (BatchSizeSchedulerCallback.__post_init__, _maybe_update_batch_size_and_lr, _update_batch_size_and_lr) and
# src/olmo_core/train/common.py (Duration.due) and src/olmo_core/data/data_loader.py (global_batch_size setter).

def olmo_validate(batch_sizes, schedule):
    assert len(batch_sizes) == len(schedule) and len({d["unit"] for d in schedule}) == 1
    assert schedule[0]["value"] == 0
    for (size, start), (next_size, next_start) in zip(zip(batch_sizes, schedule), zip(batch_sizes[1:], schedule[1:])):
        assert next_start["value"] > start["value"]
        assert next_size != size and (next_size % size == 0 if next_size > size else size % next_size == 0)


def olmo_run(fields, tokens_per_instance, total_tokens, lr):
    """The trainer's batches: before each, the latest due event applies (growth by r only when the batches
    processed in the epoch divide by r); each change multiplies the AdamW lr by √ratio. (B, lr) per batch."""
    sizes, schedule = fields["batch_sizes"], fields["schedule"]
    current, processed, seen, out = sizes[0], 0, 0, []
    while seen < total_tokens:
        for target, event in reversed(list(zip(sizes, schedule))):
            if seen >= event["value"]:  # Duration.due for unit "tokens"
                if target > current and processed % (target // current) == 0:
                    lr *= math.sqrt(target / current)
                    processed //= target // current
                    current = target
                break
        out.append((current // tokens_per_instance, lr))
        seen += current
        processed += 1
    return out


def test_olmo_core_changes_the_batch_and_the_lr_at_the_planned_examples():
    length = 512
    warmup = small_warmup(rule="sqrt", optimizer="adamw")
    fields = json.loads(olmo_core_file(warmup, length))
    assert fields == olmo_core_callback(warmup, length) and fields["enabled"] is True
    olmo_validate(fields["batch_sizes"], fields["schedule"])
    assert {d["unit"] for d in fields["schedule"]} == {"tokens"}
    run = olmo_run(fields, length, warmup.examples_before(warmup.total_steps) * length, warmup.base_lr)
    expected = [warmup.at_step(step) for step in range(warmup.total_steps)]
    assert [size for size, _ in run] == [s.batch_size for s in expected]
    assert [lr for _, lr in run] == pytest.approx([s.lr for s in expected], rel=1e-12)


def test_olmo_core_would_wait_for_a_stage_that_starts_off_its_batches():
    """Why stages start at a multiple of their B: OLMo-core defers a growth until the batches processed divide."""
    length = 1
    fields = {"batch_sizes": [8, 32], "schedule": [{"value": 0, "unit": "tokens"}, {"value": 104, "unit": "tokens"}]}
    run = olmo_run(fields, length, 400, 1.0)
    assert [size for size, _ in run].index(32) == 16  # planned after 13 batches of 8 (104), taken after 16 (128)


def test_olmo_core_has_no_form_for_the_linear_rule_or_without_tokens():
    assert "Adam-type optimizers only" in olmo_core_refusal(small_warmup(), 512)
    assert "--sequence-length" in olmo_core_refusal(small_warmup(rule="sqrt", optimizer="adamw"), None)
    with pytest.raises(ValueError, match="linear rule"):
        olmo_core_callback(small_warmup(), 512)


def test_olmo_core_has_no_form_for_the_law_rule_even_for_adamw():
    # OLMo-core multiplies the lr by √(B ratio) at each change; a law's α = 0.6 makes it 2^0.6, not √2.
    warmup = warmup_from_cbs(dataclasses.replace(cbs_curve(rule="law", optimizer="adamw"), rule_exponent=0.6))
    assert warmup.stages[1].lr == pytest.approx(0.05 * 2 ** 0.6)
    refusal = olmo_core_refusal(warmup, 512)
    assert "Adam-type optimizers only" in refusal and "law (α = 0.6) rule" in refusal
    with pytest.raises(ValueError, match="law"):
        olmo_core_callback(warmup, 512)


# --- Levanter: src/levanter/schedule.py at 9263f81e8b453241332c2c0b2d2001bfb2d2241c (ScheduleStep,
# validate_schedule_sorted, BatchSchedule.__init__ and global_data_offset_by_step).

def test_levanter_gives_each_step_the_warmups_batch_and_data_offset():
    warmup = small_warmup()
    config = yaml.safe_load(levanter_file(warmup))["trainer"]
    steps = config["train_batch_size"]
    assert steps == levanter_schedule(warmup) and config["num_train_steps"] == warmup.total_steps
    assert all(set(step) == {"start", "value"} for step in steps) and steps[0]["start"] == 0
    assert all(b["start"] >= a["start"] for a, b in zip(steps, steps[1:]))
    offset, segments = 0, []
    for i, step in enumerate(steps):  # BatchSchedule.__init__'s segments (start, until, value, offset)
        until = steps[i + 1]["start"] if i + 1 < len(steps) else 2**63 - 1
        segments.append((step["start"], until, step["value"], offset))
        offset += (until - step["start"]) * step["value"] if i + 1 < len(steps) else 0
    for step in range(warmup.total_steps + 1):
        start, _, value, offset = [seg for seg in segments if seg[0] <= step < seg[1]][0]
        assert offset + (step - start) * value == warmup.examples_before(step)  # global_data_offset_by_step
        if step < warmup.total_steps:
            assert value == warmup.at_step(step).batch_size
