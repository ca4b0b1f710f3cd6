"""Typed, frozen options for each registered dataset.

Torch-free on purpose: ``scalestudy validate`` checks a spec's dataset options (and
needs the number of training examples, N, for the noise scale and batch-size checks)
without importing torch or generating any data.
"""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Size of the full CIFAR-10 splits.
CIFAR10_TRAIN_EXAMPLES = 50_000
CIFAR10_TEST_EXAMPLES = 10_000
#: One MNIST-1D example: a signal of this many points, one of this many digits.
MNIST1D_LENGTH, MNIST1D_CLASSES = 40, 10


class _Options(BaseModel):
    # strict: a spec that says ``train_size: "4000"`` or ``download: 1`` is a typo to
    # report, not a value to coerce (ints are still accepted where a float is expected).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    # For the dry run of the user's model on a built-in dataset (scalestudy.spec.dry_run): inputs are
    # token ids (targets then one per position), and examples are decoded from the user's files (read
    # a sample of them for real instead of making up a batch).
    integer_inputs: ClassVar[bool] = False
    reads_users_files: ClassVar[bool] = False

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

class TextBytesOptions(_Options):
    """A byte-level language-model corpus from text files (``scalestudy.data.corpus``).

    ``corpus_hash`` is the sha256 of the corpus' bytes: computed when the options are validated
    (in the driver, before any trial starts) and checked again by the loader on every node, so a
    trial never trains on other bytes than the ones its run logs (param ``corpus_hash``)."""

    integer_inputs: ClassVar[bool] = True

    paths: list[str] | None = Field(None, description="files or folders; None: the standard library's *.py")
    pattern: str | None = Field(None, description="files of a folder to read (Path.glob); None: **/*")
    max_bytes: int = Field(2_000_000, gt=1, description="corpus cut at this many bytes")
    seq_len: int = Field(64, gt=0, le=65_536, description="tokens per sequence (one example)")
    test_fraction: float = Field(0.1, gt=0, lt=1, description="the corpus' tail held out for testing")
    corpus_hash: str | None = Field(None, description="sha256 of the corpus; set when validated")

    @field_validator("paths")
    @classmethod
    def _absolute(cls, values: list[str] | None) -> list[str] | None:
        if values is not None and not values:
            raise ValueError("must name at least one file or folder (or be null: the standard library)")
        return None if values is None else [v if v.startswith("~") else os.path.abspath(v) for v in values]

    @model_validator(mode="after")
    def _hashed(self) -> "TextBytesOptions":
        from scalestudy.data.corpus import corpus_files, corpus_hash, read_corpus

        files = corpus_files(self.paths, self.pattern)
        if self.layout().train_sequences < 1 or self.layout().test_sequences < 1:
            raise ValueError(f"seq_len: the corpus ({self.layout().total} bytes) is too small for one training "
                             f"and one test sequence of {self.seq_len} tokens")
        if self.corpus_hash is None:  # frozen: set once, here
            object.__setattr__(self, "corpus_hash", corpus_hash(read_corpus(files, self.max_bytes)))
        return self

    def layout(self):
        from scalestudy.data.corpus import Layout, corpus_files, corpus_size

        return Layout(corpus_size(corpus_files(self.paths, self.pattern), self.max_bytes), self.seq_len,
                      self.test_fraction)

    def train_examples(self) -> int:
        return self.layout().train_sequences

    def example_shape(self) -> tuple[tuple[int, ...], int]:
        from scalestudy.data.corpus import VOCABULARY

        return (self.seq_len,), VOCABULARY  # a sequence of byte tokens; the "classes" are the bytes


class ImageFolderOptions(_Options):
    """Images in class folders (torchvision's ``ImageFolder``), streamed from disk.

    ``root`` holds either ``train/`` and ``test/`` (each with one folder per class) or the class
    folders themselves, split by a seeded shuffle into training and ``test_fraction`` test images.
    Every image is resized to ``image_size``² RGB, scaled to [0, 1] and normalised by ``mean`` and
    ``std`` (per channel; null: not normalised)."""

    reads_users_files: ClassVar[bool] = True

    root: str
    image_size: int = Field(32, gt=0, le=4096)
    mean: list[float] | None = None
    std: list[float] | None = None
    test_fraction: float = Field(0.2, gt=0, lt=1, description="without train/ and test/: images held out")
    seed: int = Field(0, ge=0, description="the shuffle of a split by test_fraction")
    augment: bool = Field(False, description="random crop (image_size/8 zero padding) + flip, batched on device")

    @field_validator("root")
    @classmethod
    def _absolute_unless_home(cls, value: str) -> str:
        return value if value.startswith("~") else os.path.abspath(value)

    @model_validator(mode="after")
    def _channels(self) -> "ImageFolderOptions":
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is not None and (len(values) != 3 or (name == "std" and min(values) <= 0)):
                raise ValueError(f"{name}: three per-channel values{' > 0' if name == 'std' else ''}, got {values}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std: give both or neither")
        return self

    def train_examples(self) -> int:
        from scalestudy.data.folders import split_sizes

        return split_sizes(self)[0]

    def example_shape(self) -> tuple[tuple[int, ...], int]:
        from scalestudy.data.folders import class_count

        return (3, self.image_size, self.image_size), class_count(self)


class NqmOptions(_Options):
    """The noisy quadratic model's "dataset" (``scalestudy.data.nqm``): standard Gaussian vectors x, one per
    example, that the ``nqm`` model turns into gradient noise of covariance σ²H/B; the test split is x = 0,
    where the per-example loss is L(θ) itself."""

    dim: int = Field(100, gt=0, le=100_000, description="dimensions of θ (directions of the quadratic)")
    train_size: int = Field(32768, gt=0, description="noise draws per epoch (examples)")
    test_size: int = Field(256, gt=0, description="rows of x = 0: the test loss is L(θ), exact")
    seed: int = Field(0, ge=0, description="seed of the draws")

    @model_validator(mode="after")
    def _whitenable(self) -> "NqmOptions":
        if self.train_size <= self.dim:
            raise ValueError(f"train_size {self.train_size}: must exceed dim {self.dim} (the draws are whitened)")
        return self

    def example_shape(self) -> tuple[tuple[int, ...], int]:
        return (self.dim,), 1
