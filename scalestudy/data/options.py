"""Typed, frozen options for each registered dataset.

Torch-free on purpose: ``scalestudy validate`` checks a spec's dataset options (and
needs the number of training examples, N, for the noise scale and batch-size checks)
without importing torch or generating any data.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: Size of the full CIFAR-10 splits.
CIFAR10_TRAIN_EXAMPLES = 50_000
CIFAR10_TEST_EXAMPLES = 10_000
#: One MNIST-1D example: a signal of this many points, one of this many digits.
MNIST1D_LENGTH, MNIST1D_CLASSES = 40, 10


class _Options(BaseModel):
    # strict: a spec that says ``train_size: "4000"`` or ``download: 1`` is a typo to
    # report, not a value to coerce (ints are still accepted where a float is expected).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    def train_examples(self) -> int:
        """Number of training examples the loader will return (without loading)."""
        return self.train_size  # type: ignore[attr-defined]

    def example_shape(self) -> tuple[tuple[int, ...], int]:
        """(input shape of one example, number of classes), without loading: what a model is built for."""
        raise NotImplementedError


class Mnist1dOptions(_Options):
    """MNIST-1D generated offline with the ``mnist1d`` package.

    The defaults (4000 train, 1000 test, seed 42) draw the same 5000 signals as the
    package's own default dataset. ``seed`` seeds the data generation only: every
    trial of a study sees the same data whatever its training seed.
    """

    train_size: int = Field(4000, gt=0, description="training examples")
    test_size: int = Field(1000, gt=0, description="test examples")
    seed: int = Field(42, ge=0, description="data-generation seed")
    corr_noise_scale: float = Field(0.25, ge=0, description="correlated background noise")
    iid_noise_scale: float = Field(0.02, ge=0, description="per-point Gaussian noise")

    def example_shape(self) -> tuple[tuple[int, ...], int]:
        return (MNIST1D_LENGTH,), MNIST1D_CLASSES


class SyntheticOptions(_Options):
    """Gaussian inputs labelled by a fixed random two-layer teacher network."""

    dim: int = Field(20, gt=0, description="input dimension")
    num_classes: int = Field(4, ge=2)
    train_size: int = Field(2048, gt=0, description="training examples")
    test_size: int = Field(512, gt=0, description="test examples")
    label_noise: float = Field(
        0.0, ge=0, le=1, description="fraction of training labels replaced by uniform random labels"
    )
    seed: int = Field(0, ge=0, description="seed for the teacher and the samples")

    def example_shape(self) -> tuple[tuple[int, ...], int]:
        return (self.dim,), self.num_classes


class Cifar10Options(_Options):
    """CIFAR-10 read through ``torchvision.datasets.CIFAR10``.

    ``data_dir`` is the torchvision ``root`` (the folder that holds
    ``cifar-10-batches-py/``). A relative path is made absolute when the options are
    validated, because Ray Tune runs each trial in its own working directory; ``~`` is
    kept and expanded on the machine that loads the data.
    """

    data_dir: str = "~/.cache/scalestudy/cifar10"
    download: bool = False
    train_size: int | None = Field(None, gt=0, description="first n training images; None = all 50000")
    test_size: int | None = Field(None, gt=0, description="first n test images; None = all")
    augment: bool = Field(True, description="random crop (4-pixel zero padding) + horizontal flip")
    verify_checksums: bool = Field(
        True,
        description="check torchvision's md5 of every file; false reads files in CIFAR-10's "
        "format that are not the original release (a subset, test fixtures)",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute_unless_home(cls, value: str) -> str:
        if value.startswith("~") or os.path.isabs(value):
            return value
        return os.path.abspath(value)

    def train_examples(self) -> int:
        return self.train_size if self.train_size is not None else CIFAR10_TRAIN_EXAMPLES

    def example_shape(self) -> tuple[tuple[int, ...], int]:
        return (3, 32, 32), 10
