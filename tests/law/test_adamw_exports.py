"""A plan's AdamW set in real training: a plain torch loop (AdamW built from the plan, β2 and λ following
B through a hybrid plan at every update, a model EMA whose ρ follows B) and a real Hugging Face Trainer
(tiny GPT-2, no download) whose AdamW steps with the plan's β1, β2 and λ."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from law_files import make_law
from scalestudy.law import LawError, PlanRequest, make_plan
from scalestudy.law.adamw_fields import AdamWTimescales, HalfLife
from scalestudy.law.adamw_torch import PlanAdamWScheduler, plan_ema, plan_optimizer
from scalestudy.law.records import to_json

N = 250
TIMESCALES = AdamWTimescales(beta1=0.9, tau_epoch=2.0, beta2_half_life=HalfLife(4000.0),
                             ema_half_life=HalfLife(400.0))
HYBRID = dict(max_batch_per_worker=64, epochs=5, factor=2, milestones=(2, 4))  # B 16, 16, 32, 32, 64


def plan_of(timescales=TIMESCALES, **request):
    law = make_law(dataset_size=N, optimizer="adamw", adamw=to_json(timescales) if timescales else None)
    return make_plan(law, PlanRequest(workers=1, examples_per_second_per_worker=1000.0, warmup_epochs=1,
                                      momentum=0.9, **{**HYBRID, **request}))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_torch_loop_follows_the_adamw_set_and_its_ema_update_by_update():
    plan = plan_of()
    assert [e.batch_size for e in plan.epochs()] == [16, 16, 32, 32, 64]
    torch.manual_seed(0)
    inputs = torch.randn(N, 6)
    data = TensorDataset(inputs, (inputs[:, 0] > 0).long())
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = plan_optimizer(model, plan)
    scheduler = plan.lr_scheduler(optimizer)
    ema = plan_ema(model, plan)
    assert isinstance(optimizer, torch.optim.AdamW) and isinstance(scheduler, PlanAdamWScheduler)
    expected_ema = [p.detach().clone() for p in model.parameters()]
    for step, (x, y) in enumerate(DataLoader(data, batch_sampler=plan.batch_sampler(seed=0))):
        at, group = plan.adamw_at(step), optimizer.param_groups[0]
        assert len(x) == plan.at_step(step).batch_size and group["lr"] == plan.at_step(step).lr
        assert group["betas"] == (0.9, pytest.approx(0.5 ** (len(x) / 4000)))
        assert group["weight_decay"] == pytest.approx(len(x) / (plan.epochs()[plan.at_step(step).epoch].lr * N * 2.0))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        rho = 0.5 ** (len(x) / 400)  # ρ of this update's B
        if step == 0:
            expected_ema = [p.detach().clone() for p in model.parameters()]
        else:
            expected_ema = [rho * e + (1 - rho) * p.detach() for e, p in zip(expected_ema, model.parameters())]
        ema.update_parameters(model)
    assert step == plan.total_updates - 1
    for averaged, expected in zip(ema.module.parameters(), expected_ema):
        torch.testing.assert_close(averaged, expected)


def test_a_plan_without_adamw_builds_sgd_and_no_ema():
    plan = plan_of(timescales=None)
    model = torch.nn.Linear(2, 2)
    assert isinstance(plan_optimizer(model, plan), torch.optim.SGD)
    with pytest.raises(LawError, match="the plan has no model EMA"):
        plan_ema(model, plan)


def test_a_hugging_face_trainer_steps_with_the_plans_adamw(tmp_path):
    transformers = pytest.importorskip("transformers")
    from scalestudy.law.hf import PlanCallback, plan_optimizers

    plan = plan_of()
    fields = plan.to_hf_training_args(per_device_train_batch_size=8)
    at = plan.adamw_at(0)
    assert (fields["adam_beta1"], fields["adam_beta2"], fields["weight_decay"]) == (0.9, at.beta2, at.weight_decay)
    seen = []

    class Recorder(transformers.TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
            group = optimizer.param_groups[0]
            inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
            seen.append((type(inner).__name__, group["betas"], group["weight_decay"]))

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2, n_inner=8)
    model = transformers.GPT2LMHeadModel(config)
    tokens = torch.randint(0, 16, (N, 8), generator=torch.Generator().manual_seed(1))
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, save_strategy="no",
                                          logging_strategy="no", disable_tqdm=True, seed=0, **fields)
    data = [{"input_ids": row, "labels": row} for row in tokens]
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   optimizers=plan_optimizers(model, plan), callbacks=[PlanCallback(plan), Recorder()])
    trainer.train()
    expected = [plan.adamw_at(step) for step in range(plan.total_updates)]
    assert len(seen) == plan.total_updates and {name for name, _, _ in seen} == {"AdamW"}
    assert [betas for _, betas, _ in seen] == [(0.9, pytest.approx(e.beta2)) for e in expected]
    assert [decay for _, _, decay in seen] == [pytest.approx(e.weight_decay) for e in expected]
