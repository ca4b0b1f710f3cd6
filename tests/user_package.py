"""A user's package written to a temporary folder (real files, imported for real): its own models,
datasets and optimizers, some of them breaking the contracts on purpose."""

from __future__ import annotations

import textwrap
from pathlib import Path

MODELS = '''
import math
import os

from torch import nn


def build(input_shape, num_classes, width=16):
    """An MLP with batch norm."""
    _check_shipped()
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width, bias=False), nn.BatchNorm1d(width),
                         nn.ReLU(), nn.Linear(width, num_classes))


def build_plain(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def build_3d(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.BatchNorm3d(4), nn.Linear(math.prod(input_shape), num_classes))


def not_a_module(input_shape, num_classes):
    return 42


def failing(input_shape, num_classes):
    raise RuntimeError("out of widgets")


def no_arguments():
    return nn.Linear(1, 1)


CONSTANT = 3


def _check_shipped():
    # Set (by the spec's runtime_env) in Ray workers only: there this module must be the copy Ray shipped
    # with py_modules, not one found on a path the driver happens to share with them.
    if os.environ.get("EXPECT_SHIPPED_COPY") == "1" and "runtime_resources" not in __file__:
        raise RuntimeError(f"imported from {__file__}, not from Ray's shipped py_modules")
'''

DATA = '''
import torch
from torch.utils.data import Dataset


def load(train_size=256, test_size=64, dim=8, classes=3, seed=0):
    """Gaussian clusters, one per class: (inputs, targets) tensors per split."""
    generator = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(classes, dim, generator=generator)

    def split(count):
        labels = torch.randint(0, classes, (count,), generator=generator)
        return centres[labels] + torch.randn(count, dim, generator=generator), labels

    return split(train_size), split(test_size)


class Pairs(Dataset):
    num_classes = 5  # more than the targets show: the attribute wins

    def __init__(self, inputs, labels):
        self.inputs, self.labels = inputs, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.inputs[index].double(), int(self.labels[index])


def load_map(**options):
    (train_x, train_y), (test_x, test_y) = load(**options)
    return Pairs(train_x, train_y), Pairs(test_x, test_y)


def load_three():
    return 1, 2, 3


def load_bad_split():
    return [1, 2, 3], load()[1]


def load_mismatched():
    (x, y), test = load()
    return (x, y[:10]), test
'''

OPTIM = '''
import torch


def build_sgd(params, lr, momentum, dampening=0.0):
    return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=dampening)


class SignDescent(torch.optim.Optimizer):
    """No momentum at all: its param groups hold neither 'momentum' nor 'betas'."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(torch.sign(p.grad), alpha=-group["lr"])


def build_sign(params, lr, momentum):
    return SignDescent(params, lr)


def not_an_optimizer(params, lr, momentum):
    return object()
'''


def write_user_package(root: Path, name: str) -> Path:
    """``root/name/`` with models.py, data.py and optim.py; returns the package folder."""
    package = root / name
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A user\'s workload package (tests)."""\n')
    for module, text in (("models", MODELS), ("data", DATA), ("optim", OPTIM)):
        (package / f"{module}.py").write_text(textwrap.dedent(text).lstrip())
    return package


def write_entry_points(root: Path, distribution: str, groups: dict[str, dict[str, str]]) -> Path:
    """An installed distribution's metadata under ``root`` (what pip leaves in site-packages), declaring
    entry points: ``groups`` = group → name → "module:attribute"."""
    info = root / f"{distribution}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items()) + "\n"
        for group, entries in groups.items()))
    return info


def with_changes(raw: dict, changes: dict) -> dict:
    """``raw`` with each dotted key of ``changes`` set (intermediate mappings created): a spec per test."""
    for key, value in changes.items():
        node = raw
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return raw
