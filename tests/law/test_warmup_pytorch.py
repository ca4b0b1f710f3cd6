"""The batch warmup in a real PyTorch loop: at every optimizer step the examples the step's batch
held and the lr in the optimizer equal the warmup's stage; the stream covers each epoch once; DDP
shares, a resumed sampler and a restored scheduler give the same updates."""

import torch
from torch.utils.data import DataLoader, TensorDataset

from scalestudy.law.warmup_pytorch import ExampleStream, WarmupBatchSampler, WarmupDataset, WarmupLRScheduler
from warmup_curves import small_warmup


def test_a_real_loop_follows_the_warmup_step_by_step():
    warmup = small_warmup()
    torch.manual_seed(0)
    inputs = torch.randn(warmup.dataset_size, 4)
    data = TensorDataset(inputs, inputs.sum(1, keepdim=True))
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=warmup.base_lr, momentum=warmup.momentum)
    scheduler = WarmupLRScheduler(optimizer, warmup)
    examples, lrs = [], []
    for x, y in DataLoader(data, batch_sampler=WarmupBatchSampler(warmup, seed=3)):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        lrs.append(optimizer.param_groups[0]["lr"])
        examples.append(len(x))
        optimizer.step()
        scheduler.step()
    expected = [warmup.at_step(s) for s in range(warmup.total_steps)]
    assert examples == [s.batch_size for s in expected] == [8] * 14 + [16] * 13 + [32] * 8
    assert lrs == [s.lr for s in expected] and lrs[0] == 0.05 and lrs[-1] == 0.2
    assert torch.isfinite(loss)


def test_the_stream_takes_every_example_once_per_epoch_across_batches():
    warmup = small_warmup()
    batches = list(WarmupBatchSampler(warmup, seed=1))
    flat = [i for batch in batches for i in batch]
    assert len(flat) == warmup.examples_before(warmup.total_steps) == 576
    for epoch in range(5):
        assert sorted(flat[epoch * 100:(epoch + 1) * 100]) == list(range(100))
    assert flat[:100] != list(range(100))  # shuffled
    # One of B = 32 crosses the epoch's end at 400 (positions 384 … 415): it takes the two epochs' parts.
    assert batches[29] == ExampleStream(100, 1).permutation(3)[84:].tolist() + \
        ExampleStream(100, 1).permutation(4)[:16].tolist()
    assert list(WarmupDataset(list(range(100)), warmup, seed=1)) == flat  # the same stream, example by example


def test_ddp_shares_and_resumption_give_the_same_updates():
    warmup = small_warmup()
    whole = list(WarmupBatchSampler(warmup, seed=2))
    ranks = [list(WarmupBatchSampler(warmup, seed=2, rank=r, world_size=2)) for r in range(2)]
    assert [a + b for a, b in zip(*ranks)] == whole
    resumed = WarmupBatchSampler(warmup, seed=0, start_step=20)
    resumed.load_state_dict(WarmupBatchSampler(warmup, seed=2, start_step=20).state_dict())
    assert list(resumed) == whole[20:] and len(WarmupBatchSampler(warmup, start_step=20)) == 15


def test_a_restored_scheduler_sets_the_stage_lr():
    warmup = small_warmup()
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=warmup.base_lr)
    scheduler = WarmupLRScheduler(optimizer, warmup)
    for _ in range(27):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    assert "warmup" not in state and optimizer.param_groups[0]["lr"] == 0.2
    fresh = torch.optim.SGD(model.parameters(), lr=warmup.base_lr)
    restored = WarmupLRScheduler(fresh, warmup)
    restored.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == 0.2 and restored.get_last_lr() == [0.2]
