"""The bare streaming loop ``bench loop`` holds scalestudy's streaming path against.

What a researcher writes when the data does not fit on the device: a plain ``torch`` DataLoader
over the map-style training set with a batch size and shuffling (``drop_last``, as scalestudy
drops the ragged tail), the same worker processes, pinned memory and prefetch as the streaming
path, each batch moved to the device, one optimizer step per batch; then the test set through a
second DataLoader, with one host sync at the end. It trains the model object it is given with
the task's own loss, so the two loops compute the same thing and differ only in how batches
reach the model (scalestudy: its own global-batch sampler, ``train.batches.StreamBatches``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from scalestudy.train.precision import autocast_for

EVAL_BATCH = 2048


class BareStreamLoop:
    """SGD with momentum over batches a shuffling DataLoader streams, one epoch per :meth:`epoch` call."""

    def __init__(self, model: torch.nn.Module, train: Dataset, test: Dataset, batch_size: int,
                 loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device: torch.device, lr: float = 0.01,
                 momentum: float = 0.9, workers: int = 0, prefetch_factor: int = 2, seed: int = 0) -> None:
        self.model, self.loss, self.device = model, loss, device
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
        self.autocast = autocast_for(device)
        self.pin = device.type == "cuda"
        options: dict[str, Any] = {"num_workers": workers, "pin_memory": self.pin}
        if workers > 0:
            options.update(prefetch_factor=prefetch_factor, persistent_workers=True)
        self.train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True,
                                       generator=torch.Generator().manual_seed(seed), **options)
        self.test_loader = DataLoader(test, batch_size=EVAL_BATCH, shuffle=False, **options)

    def _to_device(self, batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = batch
        return inputs.to(self.device, non_blocking=self.pin), targets.to(self.device, non_blocking=self.pin)

    def epoch(self) -> float:
        """Train one epoch, then evaluate; returns the mean test loss."""
        self.model.train()
        for batch in self.train_loader:
            inputs, targets = self._to_device(batch)
            with self.autocast:
                loss = self.loss(self.model(inputs), targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return self.evaluate()

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        total, count = torch.zeros((), device=self.device), 0
        for batch in self.test_loader:
            inputs, targets = self._to_device(batch)
            with self.autocast:
                total += self.loss(self.model(inputs), targets).float() * inputs.shape[0]
            count += inputs.shape[0]
        return float(total.item()) / max(count, 1)
