"""The bare loop ``bench loop`` holds scalestudy's epoch loop against, written the airbench way.

What a researcher writes by hand for speed (KellerJordan/cifar10-airbench): the whole dataset
on the device; augmentation batched on the device once per epoch over the whole training
set (airbench's ``batch_crop`` and flip); batches are slices of one permutation; bf16 autocast
and channels_last on CUDA (``train.precision``, the loop's own rule); no host sync inside the
epoch (one ``.item()`` after the evaluation). It trains the model object it is given, so the
two loops train the same architecture, ghost batch norm included.

``compile=True`` wraps the model in ``torch.compile``: the measurement that says whether
compiling would pay in scalestudy's loop (the GPU check's ``compile`` step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scalestudy.data.base import InMemoryDataset
from scalestudy.train.precision import autocast_for, uses_channels_last

EVAL_BATCH = 2048


class BareLoop:
    """SGD with momentum over device-resident data, one epoch per :meth:`epoch` call."""

    def __init__(self, model: torch.nn.Module, data: InMemoryDataset, batch_size: int, lr: float = 0.01,
                 momentum: float = 0.9, seed: int = 0, compile: bool | str = False) -> None:
        self.data, self.batch_size = data, batch_size
        device = data.device
        self.channels_last = uses_channels_last(device, data.input_shape)
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum)
        # compile: True for the default backend, or a backend's name ("eager" checks the path fast).
        self.forward = (torch.compile(self.model, backend=compile if isinstance(compile, str) else "inductor")
                        if compile else self.model)
        self.autocast = autocast_for(device)
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def epoch(self) -> float:
        """Train one epoch (the ragged tail dropped), then evaluate; returns the test accuracy."""
        data, batch_size = self.data, self.batch_size
        inputs = data.train_x
        if data.augment is not None:  # the whole training set at once, as airbench does
            inputs = data.augment(inputs, self.generator)
        inputs = self._images(inputs)
        order = torch.randperm(data.train_size, generator=self.generator, device=data.device)
        self.model.train()
        for step in range(data.train_size // batch_size):
            batch = order[step * batch_size:(step + 1) * batch_size]
            with self.autocast:
                loss = F.cross_entropy(self.forward(self._images(inputs[batch])), data.train_y[batch])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return self.evaluate()

    @torch.no_grad()
    def evaluate(self) -> float:
        self.model.eval()
        correct = torch.zeros((), device=self.data.device)
        for start in range(0, self.data.test_size, EVAL_BATCH):
            with self.autocast:
                logits = self.forward(self._images(self.data.test_x[start:start + EVAL_BATCH]))
            correct += (logits.argmax(1) == self.data.test_y[start:start + EVAL_BATCH]).sum()
        return float(correct.item()) / self.data.test_size
