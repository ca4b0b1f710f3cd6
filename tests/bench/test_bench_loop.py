"""``bench loop``'s streaming comparison: scalestudy's streaming path and the bare DataLoader loop train
the same model on the same map-style data, one update per batch of B, the ragged tail dropped."""

import math

import torch
import torch.nn.functional as F

from scalestudy.bench.bare_stream import BareStreamLoop
from scalestudy.bench.loop import LoopCase, loop_config, measure
from scalestudy.data.stream import MapDataset
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop

CPU = torch.device("cpu")


def test_the_stream_case_streams_and_the_bare_loop_sees_the_same_batches():
    torch.set_num_threads(1)
    config = loop_config(LoopCase("mlp", 32, 250, 64, 1, "stream"), CPU)
    ours = EpochLoop(config, Distributed(device=CPU))
    assert ours.batches.streaming and isinstance(ours.data, MapDataset)
    assert not EpochLoop(loop_config(LoopCase("mlp", 32, 250, 64, 1), CPU), Distributed(device=CPU)).batches.streaming
    batches: list[int] = []

    def counted(outputs, targets):
        batches.append(targets.shape[0])
        return F.cross_entropy(outputs, targets)

    bare = BareStreamLoop(ours.model, ours.data.train, ours.data.test, 32, counted, CPU, lr=config.lr,
                          momentum=config.momentum)
    before = [p.detach().clone() for p in ours.model.parameters()]
    test_loss = bare.epoch()
    # 250 = 7·32 + 26: seven updates of 32 (the tail dropped, as scalestudy drops it), then the
    # 64 test examples in one evaluation batch.
    assert batches == [32] * 7 + [64] and math.isfinite(test_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, ours.model.parameters()))  # it trained
    ours.train_epoch()
    assert (ours.updates, ours.examples_seen) == (7, 7 * 32)


def test_bench_loop_reports_the_stream_path_of_the_language_model():
    row = measure(LoopCase("transformer", 16, 96, 32, 1, "stream"), CPU, threads=1)
    assert (row["path"], row["model"], row["B"]) == ("stream", "transformer", 16)
    assert all(math.isfinite(row[k]) and row[k] > 0 for k in ("bare ex/s", "scalestudy ex/s", "ratio"))
