"""The offline language-model workload: the byte corpus (the standard library by default, its
hash), the language-model task's loss and perplexity against closed forms, a user's task, the
objective and the steps-to-target metric checked against what a task reports."""

from __future__ import annotations

import hashlib
import math
import sysconfig
from pathlib import Path

import pytest
import torch

from scalestudy.data import dataset_options, load_dataset, train_size
from scalestudy.data.corpus import corpus_files
from scalestudy.spec import SpecError, spec_from_dict
from scalestudy.tasks import TASKS, build_task, task_info
from scalestudy.train.distributed import Distributed
from scalestudy.train.loop import EpochLoop
from scalestudy.train.target import Evaluation, TargetTracker
from scalestudy.trial.config import expand_trials
from scalestudy.trial.record import trial_params

SMALL = {"max_bytes": 6000, "seq_len": 16}


def test_the_default_corpus_is_the_standard_librarys_sources_hashed():
    files = corpus_files(None, None)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    assert files == sorted(stdlib.glob("*.py")) and all(f.parent == stdlib for f in files)  # no site-packages
    options = dataset_options("text_bytes", SMALL)
    corpus = b"".join(f.read_bytes() for f in files)[:6000]
    assert options.corpus_hash == hashlib.sha256(corpus).hexdigest()
    data = load_dataset("text_bytes", options)
    # 10 % held out at the tail: 5400 + 600 bytes, (n − 1) // 16 sequences each.
    assert (data.train_size, data.test_size) == (5399 // 16, 599 // 16) == (train_size("text_bytes", options), 37)
    x, y = data.train[2]
    assert x.tolist() == list(corpus[32:48]) and y.tolist() == list(corpus[33:49])  # targets: shifted by one
    assert data.test[0][0].tolist() == list(corpus[5400:5416])
    inputs, targets = data.train.tensors()
    assert torch.equal(inputs[2], x) and torch.equal(targets[2], y) and inputs.shape == (337, 16)
    assert (data.num_classes, data.input_shape) == (256, (16,))


def test_a_corpus_from_a_folder_is_deterministic_and_its_changes_are_caught(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "two.txt").write_text("second file " * 50)
    (tmp_path / "a.txt").write_text("first file " * 50)
    (tmp_path / "skip.bin").write_bytes(b"\x00" * 100)
    raw = {"paths": [str(tmp_path)], "pattern": "**/*.txt", "seq_len": 8, "test_fraction": 0.2}
    options = dataset_options("text_bytes", raw)
    assert [f.name for f in corpus_files(options.paths, options.pattern)] == ["a.txt", "two.txt"]
    assert dataset_options("text_bytes", raw).corpus_hash == options.corpus_hash
    (tmp_path / "a.txt").write_text("first file " * 49 + "edited!!!!!")  # same size, other bytes
    with pytest.raises(ValueError, match="differ from the ones the study was validated with"):
        load_dataset("text_bytes", options)
    with pytest.raises(Exception, match="neither a file nor a folder"):
        dataset_options("text_bytes", {"paths": [str(tmp_path / "missing")]})


def test_language_model_loss_and_perplexity_against_closed_forms():
    task = build_task("language_model")
    vocab = 256
    targets = torch.randint(0, vocab, (3, 5), generator=torch.Generator().manual_seed(0))
    uniform = torch.zeros(3, 5, vocab)  # every token equally likely: loss ln V, perplexity V
    assert task.loss(uniform, targets).item() == pytest.approx(math.log(vocab))
    metrics = task.eval_metrics((task.eval_sums(uniform, targets) * 2).tolist())  # two such batches
    assert metrics["loss"] == pytest.approx(math.log(vocab)) and metrics["perplexity"] == pytest.approx(vocab)
    certain = torch.full((3, 5, vocab), -1e4).scatter(2, targets.unsqueeze(2), 0.0)  # the right token, surely
    assert task.eval_metrics(task.eval_sums(certain, targets).tolist())["perplexity"] == pytest.approx(1.0)
    # Perplexity is exp of the mean token loss over the whole split, not a mean of batch perplexities.
    sums = task.eval_sums(uniform[:1], targets[:1]) + task.eval_sums(certain, targets)
    loss = (5 * math.log(vocab)) / 20
    assert task.eval_metrics(sums.tolist()) == pytest.approx({"loss": loss, "perplexity": math.exp(loss)})
    assert task_info("language_model").objective == ("test_loss", "min")


def lm_spec(**extra) -> dict:
    return {"name": "lm", "workload": {"dataset": "text_bytes", "dataset_options": SMALL, "model": "transformer",
                                       "model_options": {"d_model": 16, "n_layers": 1, "n_heads": 2},
                                       "task": "language_model", "epochs": 2, **extra.pop("workload", {})},
            "grid": {"batch_size": [16], "lr": [0.1], "momentum": [0.9]}, **extra}


def test_a_language_model_trial_reports_loss_perplexity_and_tokens():
    # Evaluated every 2 updates: the loss reaches 4.0 inside the first epoch (from epoch ends it would be censored).
    target = {"target": {"metric": "test_loss", "value": 4.0}, "target_eval_every": 2}
    config = expand_trials(spec_from_dict(lm_spec(diagnostics=target)))[0]
    assert (config.objective.metric, config.objective.direction) == ("test_loss", "min")
    params = trial_params(config.to_dict())
    assert params["corpus_hash"] == config.workload.dataset_options.corpus_hash and params["task"] == "language_model"
    assert (params["objective_metric"], params["target_metric"], params["target_value"]) == ("test_loss", "test_loss",
                                                                                             "4.0")
    torch.set_num_threads(1)
    loop = EpochLoop(config, Distributed(device=torch.device("cpu")))
    assert loop.divergence_loss == pytest.approx(10 * math.log(256))  # 10·ln C with C the vocabulary
    reports = [r.metrics() for r in loop.run()]
    last = reports[-1]
    assert not {"train_acc", "test_acc", "gen_gap"} & set(last)
    assert last["test_perplexity"] == pytest.approx(math.exp(last["test_loss"]))
    assert last["train_perplexity"] == pytest.approx(math.exp(last["train_loss"]))
    assert last["tokens_per_batch"] == 16 * 16 and last["updates"] == 2 * (337 // 16)
    assert last["test_loss"] < math.log(256)  # it learns something
    assert last["updates_to_target"] > 0  # the loss fell to 4.0 nats: reached at or below, it is minimised


def test_the_objective_and_the_target_must_be_metrics_of_the_task():
    with pytest.raises(SpecError, match=r"^analysis.objective: metric 'test_acc' is not reported by task "
                                        r"'language_model' \(it reports train_loss, test_loss, train_perplexity"):
        spec_from_dict(lm_spec(analysis={"objective": {"metric": "test_acc", "direction": "max"}}))
    with pytest.raises(SpecError, match=r"^diagnostics.target_accuracy: metric 'test_acc' is not reported"):
        spec_from_dict(lm_spec(diagnostics={"target_accuracy": 0.5}))
    with pytest.raises(SpecError, match=r"^analysis.objective.direction: Input should be 'max' or 'min'"):
        spec_from_dict(lm_spec(analysis={"objective": {"metric": "test_loss", "direction": "down"}}))
    with pytest.raises(SpecError, match=r"^workload.ghost_batch_size: must be null for a model with norm: layer"):
        spec_from_dict(lm_spec(workload={"ghost_batch_size": 4}))
    spec = spec_from_dict(lm_spec(analysis={"objective": {"metric": "test_perplexity", "direction": "min"}}))
    assert spec.objective.metric == "test_perplexity"


def test_steps_to_target_on_a_minimised_metric():
    tracker = TargetTracker(2.0, None, None, metric="test_loss", maximise=False)
    for evaluation in (Evaluation(0, 0, 5.5), Evaluation(10, 320, 3.0), Evaluation(20, 640, 1.0)):
        tracker.observe(evaluation)
    # 3.0 → 1.0 crosses 2.0 half-way, in ln(updates) between 10 and 20 (the only neighbours above update 0)
    assert tracker.metrics() == pytest.approx({"updates_to_target": 10 * 2**0.5,
                                               "examples_to_target": 32 * 10 * 2**0.5})


class TopTwo:
    """A user's task: cross-entropy, and how often the label is among the two best logits."""

    names = ("top2",)
    directions = {"top2": "max"}
    objective = ("test_top2", "max")

    def loss(self, outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets)

    def metrics(self, outputs, targets):
        hits = (outputs.topk(2, dim=1).indices == targets[:, None]).any(dim=1)
        return {"top2": (hits.sum(), targets.shape[0])}


def test_a_users_task_trains_and_reports_its_own_metrics():
    if "test_top2_task" not in TASKS:
        TASKS.register("test_top2_task", TopTwo)
    spec = spec_from_dict({"name": "u", "workload": {
        "dataset": "synthetic", "dataset_options": {"train_size": 256, "test_size": 64, "num_classes": 4},
        "model": "mlp", "model_options": {"hidden": [16]}, "epochs": 2, "task": "test_top2_task"},
        "grid": {"batch_size": [32], "lr": [0.1], "momentum": [0.9]}})
    assert (spec.objective.metric, spec.objective.direction) == ("test_top2", "max")
    torch.set_num_threads(1)
    reports = [r.metrics() for r in EpochLoop(expand_trials(spec)[0], Distributed(device=torch.device("cpu"))).run()]
    last = reports[-1]
    assert 0.5 <= last["test_top2"] <= 1 and 0.5 <= last["train_top2"] <= 1  # chance is 0.5 with 4 classes
    assert "test_acc" not in last and math.isfinite(last["test_loss"])


def test_a_users_task_that_breaks_the_contract_is_a_one_line_error():
    class NoLoss:
        names = ()

    class BadObjective(TopTwo):
        objective = ("test_top3", "max")

    for name, task, message in (("test_no_loss", NoLoss, "needs a loss"),
                                ("test_bad_objective", BadObjective, "objective must be")):
        if name not in TASKS:
            TASKS.register(name, task)
        with pytest.raises(SpecError, match=f"^workload.task {name}: task '{name}': {message}"):
            spec_from_dict({"name": "u", "workload": {"dataset": "synthetic", "epochs": 1, "task": name},
                            "grid": {"batch_size": [32], "lr": [0.1]}})


def test_a_users_task_by_import_path_reaches_the_trial_as_that_path():
    # workload.task takes package.module:attribute like the model, dataset and optimizer; a name registered
    # with a class travels to the (fresh) trial process as the class's import path.
    raw = {"name": "u", "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 256, "test_size": 64},
                                     "model": "mlp", "model_options": {"hidden": [16]}, "epochs": 1,
                                     "task": f"{__name__}:TopTwo"},
           "grid": {"batch_size": [32], "lr": [0.1], "momentum": [0.9]}}
    spec = spec_from_dict(raw)
    assert (spec.objective.metric, spec.objective.direction) == ("test_top2", "max")
    assert expand_trials(spec)[0].workload.task == f"{__name__}:TopTwo"
    if "test_top2_registered" not in TASKS:
        TASKS.register("test_top2_registered", TopTwo)
    raw["workload"]["task"] = "test_top2_registered"
    assert expand_trials(spec_from_dict(raw))[0].workload.task == f"{__name__}:TopTwo"
    raw["workload"]["task"] = f"{__name__}:Missing"
    with pytest.raises(SpecError, match=f"^workload.task {__name__}:Missing: module '{__name__}' has no attribute"):
        spec_from_dict(raw)
