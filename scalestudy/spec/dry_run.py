"""The dry run: the workload's code trained for one step on CPU before any trial starts.

What fails in a trial fails there after Ray started and the study's store was made, named by a
trial among many; here it is one ``error:`` line naming the spec field and the user's object. For a
section whose workload has any of the user's code (model, dataset, task or optimizer by import
path or registered name) or reads the user's files (``image_folder``):

* the data: a few training examples (the user's dataset was loaded and checked once already,
  :mod:`scalestudy.data.inspect`; an image folder has a sample of its images decoded; another
  built-in dataset gets a made-up batch of its shape, nothing is read or downloaded);
* the model, built fresh (without touching the caller's random state): trainable parameters, a
  forward pass in train mode, outputs of (batch, num_classes) logits for classification;
* the loss of the section's task (finite before any training, a scalar that depends on the
  parameters), and a backward pass;
* the optimizer, built over the real model's parameters, and one step.

Imports torch: :mod:`scalestudy.spec.checks` imports this module only for a workload that needs it,
so validating a spec of built-ins alone stays torch-free.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from scalestudy import data, models, optim, tasks
from scalestudy.data.inspect import BATCH, inspect_dataset
from scalestudy.optim.builders import build_optimizer
from scalestudy.registry import ContractError, ImportPathError, failure_text
from scalestudy.spec.base import SpecError
from scalestudy.spec.schema import Section
from scalestudy.usercode import user_call


def dry_run(section: Section, where: str) -> None:
    """One training step of the section's workload on CPU (the module's docstring); :class:`SpecError`
    naming the field at fault."""
    prefix = f"{where}workload" if where else "workload"
    with torch.random.fork_rng(devices=[]):  # validation must not shift a trial's seed
        torch.manual_seed(0)
        inputs, targets, info = _batch(section, prefix)
        model = _model(section, prefix, info)
        outputs = _forward(model, inputs, section, prefix)
        _loss_and_backward(model, outputs, targets, section, prefix, info.num_classes)
        _optimizer_step(model, section, f"{where}optimizer")


def _batch(section: Section, prefix: str) -> tuple[Tensor, Tensor, data.DatasetInfo]:
    workload = section.workload
    options = data.dataset_options(workload.dataset, workload.dataset_options)
    info = data.dataset_info(workload.dataset, options)  # the user's: loaded, checked and cached already
    sample = info.sample
    if sample is None and options.reads_users_files:  # type: ignore[attr-defined]
        try:
            sample = inspect_dataset(data.load_dataset(workload.dataset, options))
        except ContractError as error:
            raise SpecError(f"{prefix}.dataset: {error}") from None
    if sample is not None:
        inputs, targets = sample.inputs, sample.targets
    elif options.integer_inputs:  # type: ignore[attr-defined]
        inputs = torch.randint(0, info.num_classes, (BATCH, *info.input_shape))
        targets = torch.randint(0, info.num_classes, (BATCH, *info.input_shape))
    else:
        inputs = torch.randn(BATCH, *info.input_shape)
        targets = torch.randint(0, info.num_classes, (BATCH,))
    if inputs.shape[0] == 1:  # batch norm in train mode needs two examples
        inputs, targets = inputs.repeat(2, *([1] * (inputs.ndim - 1))), targets.repeat(2, *([1] * (targets.ndim - 1)))
    return inputs, targets, info


def _model(section: Section, prefix: str, info: data.DatasetInfo) -> torch.nn.Module:
    workload = section.workload
    try:
        model = models.build_model(workload.model, input_shape=info.input_shape, num_classes=info.num_classes,
                                   options=workload.model_options)
    except (ImportPathError, ContractError) as error:
        field = "model_options" if isinstance(error, ContractError) and error.field == "options" else "model"
        raise SpecError(f"{prefix}.{field}: {error}") from None
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise SpecError(f"{prefix}.model: {workload.model} returned a module ({type(model).__name__}) with no "
                        "trainable parameters; the optimizer would have nothing to train")
    return model.train()


def _forward(model: torch.nn.Module, inputs: Tensor, section: Section, prefix: str) -> Tensor:
    workload = section.workload
    seen = f"a batch of {inputs.shape[0]} inputs of shape {tuple(inputs.shape[1:])} and dtype {inputs.dtype}"
    try:
        with user_call():
            outputs = model(inputs)
    except Exception as error:  # noqa: BLE001 - the user's forward: one line naming it
        hint = ""
        if not inputs.is_floating_point() and "dtype" in str(error).lower():
            hint = (f"; {prefix}.dataset {workload.dataset} gives integer inputs: make them floating in the dataset, "
                    "or embed them in the model")
        raise SpecError(f"{prefix}.model: {workload.model}: the forward pass on {seen} raised "
                        f"{failure_text(error, (type(model),))}{hint}") from None
    if not isinstance(outputs, Tensor):
        raise SpecError(f"{prefix}.model: {workload.model} returned outputs of type {type(outputs).__name__} on "
                        f"{seen}; the model must return one tensor (of (batch, num_classes) logits for classification)")
    return outputs


def _loss_and_backward(model: torch.nn.Module, outputs: Tensor, targets: Tensor, section: Section, prefix: str,
                       num_classes: int) -> None:
    workload = section.workload
    users_task = not tasks.TASKS.is_builtin(workload.task)
    expected = {"classification": (targets.shape[0], num_classes),
                "language_model": (*targets.shape, num_classes)}.get(workload.task)
    if expected is not None and tuple(outputs.shape) != expected:
        what = "(batch, num_classes) logits" if workload.task == "classification" else \
            "(batch, sequence, vocabulary) logits"
        raise SpecError(f"{prefix}.model: {workload.model} returned outputs of shape {tuple(outputs.shape)} for "
                        f"{num_classes} classes; the model must return {what}")
    if expected is not None and not outputs.is_floating_point():
        raise SpecError(f"{prefix}.model: {workload.model} returned outputs of dtype {outputs.dtype}; logits must be "
                        "floating")
    culprit = f"{prefix}.task: {workload.task}" if users_task else f"{prefix}.model: {workload.model}"
    task = tasks.build_task(workload.task)
    try:
        with user_call():
            loss = task.loss(outputs, targets)
            task.eval_sums(outputs.detach(), targets)  # the task's metrics too (a user task's own)
    except Exception as error:  # noqa: BLE001 - the user's task or outputs it cannot take
        code = (type(getattr(task, "task", task)),)
        raise SpecError(f"{culprit}: the {workload.task} loss of outputs of shape {tuple(outputs.shape)} raised "
                        f"{failure_text(error, code)}") from None
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shown = f"of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else f"of type {type(loss).__name__}"
        raise SpecError(f"{prefix}.task: {workload.task}.loss returned a value {shown}; it must return the batch's "
                        "mean loss, a tensor of one element")
    if not loss.requires_grad:
        raise SpecError(f"{culprit}: the loss does not depend on the model's parameters (are the outputs detached, or "
                        "computed without gradients?)")
    if not math.isfinite(loss.item()):
        raise SpecError(f"{prefix}.model: {workload.model}: the loss before any training is {loss.item()} on a batch "
                        "of finite inputs; the untrained model must give finite outputs")
    try:
        with user_call():
            loss.backward()
    except Exception as error:  # noqa: BLE001 - a custom autograd function of the user's
        raise SpecError(f"{prefix}.model: {workload.model}: the backward pass raised "
                        f"{failure_text(error, (type(model),))}") from None
    if all(p.grad is None for p in model.parameters()):
        raise SpecError(f"{culprit}: no parameter of the model got a gradient from the loss; it must depend on them")


def _optimizer_step(model: torch.nn.Module, section: Section, field: str) -> None:
    optimizer, grid = section.optimizer, section.grid
    lr = grid.learning_rates(grid.batch_size[0], grid.momentum[0])[0]
    options: Any = optim.optimizer_options(optimizer.name, optimizer.options)
    try:
        built = build_optimizer(optimizer.name, model.parameters(), lr, grid.momentum[0], options,
                                nesterov=grid.nesterov, weight_decay=grid.sgd_weight_decay)
    except (ImportPathError, ContractError) as error:
        which = "options" if isinstance(error, ContractError) and error.field == "options" else "name"
        raise SpecError(f"{field}.{which}: {error}") from None
    try:
        with user_call():
            built.step()
    except Exception as error:  # noqa: BLE001 - the user's optimizer
        raise SpecError(f"{field}.name: {optimizer.name}: step() over the model's parameters raised "
                        f"{failure_text(error, (type(built),))}") from None
