"""The batch warmup in Hugging Face's Trainer, tested with the real library: a tiny GPT-2 built from
a config (no download) trained by ``transformers.Trainer`` on random tokens, recording at every
optimizer step the lr in the optimizer and which examples the step's forward passes saw; they are
the warmup's (B 8 → 16 → 32 through gradient accumulation 2 → 4 → 8 of micro-batches of 4), in the
order :class:`WarmupBatchSampler` gives plain PyTorch, and the weights end where plain PyTorch's do;
on two processes (slow) each rank sees half of every update."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from scalestudy.law.records import LawError  # noqa: E402
from scalestudy.law.warmup_hf import (  # noqa: E402
    WarmupCallback,
    accumulation_steps,
    warmup_optimizers,
    warmup_training_args,
)
from scalestudy.law.warmup_pytorch import WarmupBatchSampler, WarmupDataset, WarmupLRScheduler  # noqa: E402
from warmup_curves import small_warmup  # noqa: E402

TOKENS, VOCAB = 6, 16


@pytest.fixture(autouse=True)
def one_thread():
    """A tiny model on a shared CPU: one thread is much faster than contending for two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Recorder(transformers.TrainerCallback):
    """The lr in the optimizer as it steps, and the examples (by row) the update's forward passes saw."""

    def __init__(self, model, rows):
        self.lrs, self.updates, self._seen, self.rows = [], [], [], rows
        model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        if module.training:
            self._seen += [self.rows[tuple(row.tolist())] for row in kwargs["input_ids"]]

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.lrs.append(optimizer.param_groups[0]["lr"])
        self.updates.append(self._seen)
        self._seen = []


def tiny_model():
    """A GPT-2 of a few hundred weights, without dropout (two runs of it can be compared weight for weight)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=TOKENS, n_embd=8, n_layer=1, n_head=2, n_inner=8,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(config)


def tokens_of(warmup):
    return torch.randint(0, VOCAB, (warmup.dataset_size, TOKENS), generator=torch.Generator().manual_seed(1))


def labels_of(tokens):
    """The tokens, the first ignored (-100): it predicts nothing in a causal LM, so the labels counted with
    or without the shift (the Trainer's count of items for the loss, the model's mean) are the same."""
    labels = tokens.clone()
    labels[:, 0] = -100
    return labels


def trainer_for(warmup, tmp_path, dataset=None, optimizers=True, **fields):
    model = tiny_model()
    tokens = tokens_of(warmup)
    rows = {tuple(row.tolist()): i for i, row in enumerate(tokens)}
    assert len(rows) == warmup.dataset_size  # every example recognisable by its tokens
    train = [{"input_ids": row, "labels": labels} for row, labels in zip(tokens, labels_of(tokens))]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, save_strategy="no",
                                          logging_strategy="no", disable_tqdm=True, seed=0, max_grad_norm=0.0, **fields)
    recorder = Recorder(model, rows)
    dataset = dataset or WarmupDataset(train, warmup, seed=5)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=dataset,
                                   optimizers=warmup_optimizers(model, warmup) if optimizers else (None, None),
                                   callbacks=[WarmupCallback(warmup), recorder])
    return trainer, recorder, args


def test_a_real_trainer_follows_the_warmup_update_by_update(tmp_path):
    warmup = small_warmup()
    fields = warmup_training_args(warmup, per_device_train_batch_size=4)
    assert fields == {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "max_steps": 35,
                      "train_sampling_strategy": "sequential"}
    trainer, recorder, args = trainer_for(warmup, tmp_path, **fields)
    trainer.train()
    expected = list(WarmupBatchSampler(warmup, seed=5))
    assert [len(u) for u in recorder.updates] == [8] * 14 + [16] * 13 + [32] * 8
    assert recorder.updates == expected  # the same examples, in the same updates, as plain PyTorch
    assert recorder.lrs == [warmup.at_step(s).lr for s in range(35)]
    assert trainer.state.global_step == 35 and args.gradient_accumulation_steps == 2  # given back as it was
    # Each update's gradient is the mean over its B examples (not over the first stage's g micro-batches):
    # the same model trained by plain PyTorch on whole batches ends with the same weights.
    model, tokens = tiny_model(), tokens_of(warmup)
    optimizer = torch.optim.SGD(model.parameters(), lr=warmup.base_lr, momentum=warmup.momentum)
    scheduler = WarmupLRScheduler(optimizer, warmup)
    for batch in WarmupBatchSampler(warmup, seed=5):
        loss = model(input_ids=tokens[batch], labels=labels_of(tokens[batch])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    for trained, plain in zip(trainer.model.parameters(), model.parameters()):
        torch.testing.assert_close(trained, plain, rtol=1e-4, atol=1e-6)


def test_the_per_device_sizes_that_fit_are_named():
    with pytest.raises(LawError, match=r"per_device_train_batch_size 3 × 1 device\(s\) does not divide every batch "
                                       r"size of the warmup \(8, 16, 32\); per-device sizes that do: 1, 2, 4, 8$"):
        accumulation_steps(small_warmup(), 3)
    assert accumulation_steps(small_warmup(), 2, devices=2) == (2, 4, 8)


@pytest.mark.parametrize("change, message", [
    ({"optimizers": False}, "lr scheduler is LambdaLR, not the warmup's: pass optimizers=warmup_optimizers"),
    ({"dataset": [{"input_ids": torch.zeros(TOKENS, dtype=torch.long)}] * 100}, "not the warmup's stream"),
    ({"train_sampling_strategy": "random"}, "train_sampling_strategy is 'random'"),
    ({"max_steps": 30}, "max_steps is 30, the warmup's updates 35"),
    ({"gradient_accumulation_steps": 4}, "gradient_accumulation_steps 4 is more than the first stage's 2"),
])
def test_the_callback_refuses_a_trainer_that_cannot_follow_the_warmup(tmp_path, change, message):
    warmup = small_warmup()
    fields = {**warmup_training_args(warmup, per_device_train_batch_size=4), **change}
    kwargs = {key: fields.pop(key) for key in ("dataset", "optimizers") if key in fields}
    trainer, _, _ = trainer_for(warmup, tmp_path, **kwargs, **fields)
    with pytest.raises(LawError, match=message):
        trainer.train()


@pytest.mark.slow
def test_two_processes_share_every_update_between_them(tmp_path):
    """torch.distributed.run, two CPU ranks (gloo), m = 2: each rank's forward passes see B/2 examples of
    every update, and the two halves together are the update's examples."""
    tests = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{tests.parent}:{tests}", "OMP_NUM_THREADS": "1"}
    # --standalone: the rendezvous store binds a port the OS picks. A port probed free and then handed to
    # torchrun could be taken in between by the suite's local Ray, and the run then failed in CI.
    ran = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(tests / "law" / "warmup_hf_ddp_worker.py"), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]  # the ranks' own traceback, not only an exit status
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    warmup = small_warmup()
    expected = list(WarmupBatchSampler(warmup, seed=5))
    assert [rank["world_size"] for rank in ranks] == [2, 2]
    halves = [4] * 14 + [8] * 13 + [16] * 8
    assert [len(u) for u in ranks[0]["updates"]] == halves == [len(u) for u in ranks[1]["updates"]]
    assert [sorted(a + b) for a, b in zip(ranks[0]["updates"], ranks[1]["updates"])] == [sorted(e) for e in expected]
    assert ranks[0]["lrs"] == ranks[1]["lrs"] == [warmup.at_step(s).lr for s in range(35)]
