"""The trials ``bench pack`` packs onto one device: one trial's SGD step, and k trials as one vmapped stack.

Every trial of a pack benchmark runs the same update, written once here: indices drawn on the
device, a gather, the dataset's batched augmentation, forward under the device's precision
(``train.precision``), cross-entropy, backward, SGD with momentum. No host sync per step.

:class:`StackedMembers` trains k trials of one workload and batch size as one model:
``torch.func.stack_module_state`` stacks their parameters and buffers along a new leading
axis of size k, ``vmap`` over ``functional_call`` runs the k forwards as one (batched
convolutions, batched matmuls), and ordinary autograd through the vmap gives each member the
gradient of its own loss (members share no parameter, so the sum of the k losses separates).
Batch norm in training mode: ``nn.BatchNorm`` updates its stacked running statistics in place
under vmap; ghost batch norm switches to its plain-ops form (``ghost_batch_norm_ops``) there.
SGD then runs on the stacked tensors, with each member's own learning rate. Images stay in
NCHW under vmap (channels_last has no meaning for the 5-d stacked batch).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from scalestudy.data import load_dataset
from scalestudy.data.base import InMemoryDataset
from scalestudy.models import build_model
from scalestudy.train.precision import autocast_for, uses_channels_last


@dataclass(frozen=True)
class PackWorkload:
    """A trial shape the pack benchmark measures: dataset, model, ghost batch and SGD settings."""

    name: str
    model: str
    ghost_batch_size: int | None
    lr: float
    momentum: float

    def dataset(self, device: torch.device, tiny: bool) -> InMemoryDataset:
        if self.model == "mlp":  # the quickstart's data: mnist1d, 4000 training signals
            return load_dataset("mnist1d", {}, device=device)
        from scalestudy.data.cifar10 import random_cifar10  # torchvision: only for image workloads

        return random_cifar10(128 if tiny else 8192, 256, device)

    def build(self, data: InMemoryDataset, seed: int, device: torch.device) -> torch.nn.Module:
        torch.manual_seed(seed)  # a trial's seed fixes its initial weights, as in the epoch loop
        model = build_model(self.model, input_shape=data.input_shape, num_classes=data.num_classes,
                            ghost_batch_size=self.ghost_batch_size).to(device)
        return model.to(memory_format=torch.channels_last) if uses_channels_last(device, data.input_shape) else model


#: The quickstart's trial (mnist1d, MLP 256-256, ghost BN 16) and a ResNet-8 CIFAR trial (plain BN).
WORKLOADS = {
    "mlp": PackWorkload("mlp", "mlp", ghost_batch_size=16, lr=0.02, momentum=0.9),
    "resnet8": PackWorkload("resnet8", "resnet8", ghost_batch_size=None, lr=0.05, momentum=0.9),
}


def draw_batch(data: InMemoryDataset, shape: tuple[int, ...], generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Training examples at uniformly drawn indices of ``shape`` (B,) or (k, B), augmented, on the device."""
    index = torch.randint(data.train_size, shape, generator=generator, device=data.device)
    inputs, targets = data.train_x[index], data.train_y[index]
    if data.augment is not None:
        inputs = data.augment(inputs.flatten(0, len(shape) - 1), generator).view(inputs.shape)
    return inputs, targets


class Member:
    """One trial on its own: its model, ``torch.optim.SGD`` and its own stream of batches."""

    def __init__(self, workload: PackWorkload, data: InMemoryDataset, batch_size: int, seed: int,
                 device: torch.device) -> None:
        self.data, self.batch_size = data, batch_size
        self.model = workload.build(data, seed, device).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=workload.lr, momentum=workload.momentum)
        self.autocast = autocast_for(device)
        self.channels_last = uses_channels_last(device, data.input_shape)
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def draw(self) -> tuple[Tensor, Tensor]:
        return draw_batch(self.data, (self.batch_size,), self.generator)

    def step(self, batch: tuple[Tensor, Tensor] | None = None) -> None:
        inputs, targets = batch if batch is not None else self.draw()
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with self.autocast:
            loss = F.cross_entropy(self.model(inputs), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


class StackedMembers:
    """k trials of one workload and batch size trained as one vmapped model (see the module docstring).

    ``seeds`` give each member its initial weights (as :class:`Member` with that seed would have)
    and ``lrs`` its learning rate; the momentum is the workload's.
    """

    def __init__(self, workload: PackWorkload, data: InMemoryDataset, batch_size: int, seeds: Sequence[int],
                 device: torch.device, lrs: Sequence[float] | None = None) -> None:
        self.data, self.batch_size, self.k = data, batch_size, len(seeds)
        models = [workload.build(data, seed, device).to(memory_format=torch.contiguous_format).train()
                  for seed in seeds]
        self.params, self.buffers = stack_module_state(models)  # leaves of shape (k, ...), requiring grad
        self.base = copy.deepcopy(models[0]).to("meta")  # the architecture only; weights come stacked
        self.momentum = workload.momentum
        lr = torch.tensor(list(lrs) if lrs is not None else [workload.lr] * self.k, device=device)
        self.lr_views = [lr.view(self.k, *[1] * (p.dim() - 1)) for p in self.params.values()]
        self.momentum_buffers = [torch.zeros_like(p) for p in self.params.values()]
        self.autocast = autocast_for(device)
        self.generator = torch.Generator(device=device).manual_seed(seeds[0])
        self.losses = vmap(self._loss)

    def _loss(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(self.base, (params, buffers), (inputs,)), targets)

    def draw(self) -> tuple[Tensor, Tensor]:
        return draw_batch(self.data, (self.k, self.batch_size), self.generator)

    def step(self, batch: tuple[Tensor, Tensor] | None = None) -> None:
        """One SGD update of every member; ``batch`` is (k, B, ...) inputs and (k, B) targets."""
        inputs, targets = batch if batch is not None else self.draw()
        with self.autocast:
            losses = self.losses(self.params, self.buffers, inputs, targets)
        losses.sum().backward()  # member i's parameters get the gradient of loss i alone
        params = list(self.params.values())
        with torch.no_grad():
            # torch.optim.SGD's update (dampening 0, no Nesterov): buf ← m·buf + g, θ ← θ − ε_i·buf.
            torch._foreach_mul_(self.momentum_buffers, self.momentum)
            torch._foreach_add_(self.momentum_buffers, [p.grad for p in params])
            torch._foreach_addcmul_(params, self.momentum_buffers, self.lr_views, value=-1)
        for p in params:
            p.grad = None

    def member_state(self, index: int) -> dict[str, Tensor]:
        """Member ``index``'s parameters and buffers under the model's state-dict names."""
        return {name: t[index] for name, t in {**self.params, **self.buffers}.items()}
