"""scalestudy: hyperparameter-scaling studies (batch size, learning rate, momentum) on Ray Tune + MLflow.

The top-level package imports nothing heavy: ``import scalestudy`` starts no Ray and
loads no torch.

The user's own workloads can be named in a spec by import path (``package.module:attribute``), or
registered under a name here (the contracts are in docs/workload.md, "Your own workload"):

    import scalestudy
    scalestudy.register_model("tiny_cnn", mypkg.models.build)   # build(input_shape, num_classes, **options)
    scalestudy.register_dataset("blobs", "mypkg.data:load")     # load(**options) -> (train, test)
    scalestudy.register_optimizer("lion", mypkg.optim.build)    # build(params, lr, momentum, **options)

A callable registered here must live at the top level of a module the Ray workers can import (they
import it by its module and name); an installed package can declare its names in the entry-point
groups ``scalestudy.models``, ``scalestudy.datasets``, ``scalestudy.tasks`` and ``scalestudy.optimizers``.
"""

from __future__ import annotations

from typing import Any, Callable

__version__ = "0.1.0"

__all__ = ["__version__", "register_dataset", "register_model", "register_optimizer", "register_task"]


def register_model(name: str, builder: str | Callable[..., Any]) -> None:
    """``builder(input_shape, num_classes, **model_options) -> torch.nn.Module``."""
    from scalestudy.models import MODELS

    MODELS.register(name, builder)


def register_dataset(name: str, loader: str | Callable[..., Any]) -> None:
    """``loader(**dataset_options) -> (train, test)``, each ``(inputs, targets)`` tensors or a map-style
    ``torch.utils.data.Dataset`` of ``(input, target)`` pairs."""
    from scalestudy.data import DATASETS

    DATASETS.register(name, loader)


def register_optimizer(name: str, builder: str | Callable[..., Any]) -> None:
    """``builder(params, lr, momentum, **optimizer_options) -> torch.optim.Optimizer``."""
    from scalestudy.optim import OPTIMIZERS

    OPTIMIZERS.register(name, builder)


def register_task(name: str, task: str | Callable[..., Any]) -> None:
    """A task: the loss and metrics of a trial (``scalestudy.tasks``)."""
    from scalestudy.tasks import TASKS  # the tasks package (classification, language_model)

    TASKS.register(name, task)
