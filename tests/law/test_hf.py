"""A plan in Hugging Face's Trainer, tested with the real library: a tiny GPT-2 built from a config
(no download) trained by ``transformers.Trainer`` on random tokens, recording at every optimizer step
the ε and m in the optimizer and the examples the step's forward passes saw; they equal the plan's,
warmup included, for a constant plan through TrainingArguments alone and for a hybrid plan (B
doubling twice) through PlanCallback with gradient accumulation."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from law_files import make_law  # noqa: E402
from scalestudy.law import PlanError, PlanRequest, make_plan  # noqa: E402
from scalestudy.law.hf import PlanCallback, plan_optimizers  # noqa: E402

N, TOKENS, VOCAB = 250, 8, 16  # 250 examples: the plan's epochs drop a ragged tail


def plan_of(**request):
    """A plan from a small law file (the law's N = 250, its smallest B 16), one worker."""
    law = make_law(dataset_size=N)
    return make_plan(law, PlanRequest(workers=1, examples_per_second_per_worker=1000.0, warmup_epochs=1, **request))


HYBRID = dict(max_batch_per_worker=64, epochs=5, factor=2, milestones=(2, 4))  # B 16, 16, 32, 32, 64
CONSTANT = dict(max_batch_per_worker=32, epochs=6, schedule="constant")  # B 32 throughout


@pytest.fixture(autouse=True)
def one_thread():
    """A tiny model on a shared CPU: one thread is 25 times faster than contending for two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Recorder(transformers.TrainerCallback):
    """ε and m in the optimizer as it steps, and the examples the update's forward passes saw."""

    def __init__(self, model):
        self.lrs, self.momenta, self.examples, self._seen = [], [], [], 0
        model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs):
        if module.training:
            self._seen += kwargs["input_ids"].shape[0]

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        group = optimizer.param_groups[0]
        self.lrs.append(group["lr"])
        self.momenta.append(group["momentum"])
        self.examples.append(self._seen)
        self._seen = 0


def train(plan, tmp_path, callbacks=(), **fields):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=TOKENS, n_embd=8, n_layer=1, n_head=2, n_inner=8)
    model = transformers.GPT2LMHeadModel(config)
    tokens = torch.randint(0, VOCAB, (N, TOKENS), generator=torch.Generator().manual_seed(1))
    data = [{"input_ids": row, "labels": row} for row in tokens]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, save_strategy="no",
                                          logging_strategy="no", disable_tqdm=True, seed=0, **fields)
    recorder = Recorder(model)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, optimizers=plan_optimizers(model, plan),
                                   callbacks=[*callbacks, recorder])
    trainer.train()
    return recorder, args


def assert_follows(plan, recorder):
    expected = list(plan.steps())
    assert recorder.examples == [s.batch_size for s in expected]  # every update, the plan's B
    assert recorder.lrs == [s.lr for s in expected]  # exactly, warmup included
    assert recorder.momenta == [s.momentum for s in expected]


def test_model_is_tiny():
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=TOKENS, n_embd=8, n_layer=1, n_head=2, n_inner=8)
    assert sum(p.numel() for p in transformers.GPT2LMHeadModel(config).parameters()) < 1000


def test_a_constant_plan_through_training_arguments_alone(tmp_path):
    plan = plan_of(**CONSTANT)
    fields = plan.to_hf_training_args()
    assert fields["max_steps"] == plan.total_updates == 42 and fields["gradient_accumulation_steps"] == 1
    recorder, _ = train(plan, tmp_path, **fields)
    assert_follows(plan, recorder)
    # The warmup's first update trains at ε/(U+1), not at 0 as HF's constant_with_warmup would.
    assert recorder.lrs[0] == plan.schedule.initial_lr * 1 / (plan.warmup_updates + 1) > 0


def test_a_hybrid_plan_through_the_callback_with_gradient_accumulation(tmp_path):
    plan = plan_of(**HYBRID)
    assert [e.batch_size for e in plan.epochs()] == [16, 16, 32, 32, 64] and plan.total_updates == 47
    fields = plan.to_hf_training_args(per_device_train_batch_size=8)  # accumulation 2, 2, 4, 4, 8
    assert fields["num_train_epochs"] == 5 and fields["max_steps"] == -1
    recorder, args = train(plan, tmp_path, callbacks=[PlanCallback(plan)], **fields)
    assert_follows(plan, recorder)
    assert args.gradient_accumulation_steps == 2  # given back as it was


def test_a_constant_plan_whose_accumulation_leaves_a_remainder_needs_the_callback(tmp_path):
    plan = plan_of(**CONSTANT)
    fields = plan.to_hf_training_args(per_device_train_batch_size=16)  # HF's epoch: 15 micro-batches, 7 updates of 2
    assert fields["num_train_epochs"] == 6 and fields["max_steps"] == -1
    recorder, _ = train(plan, tmp_path, callbacks=[PlanCallback(plan)], **fields)
    assert_follows(plan, recorder)


def test_the_fields_name_the_per_device_sizes_that_fit():
    plan = plan_of(**HYBRID)
    with pytest.raises(PlanError, match=r"^the hybrid plan \(B 16 → 32 → 64\): per_device_train_batch_size 12 × 1 "
                                        r"device\(s\) does not divide every batch size; per-device sizes that do: "
                                        r"1, 2, 4, 8, 16$"):
        plan.to_hf_training_args(per_device_train_batch_size=12)
    with pytest.raises(PlanError, match="none on 3 devices"):
        plan.to_hf_training_args(devices=3)
    # Each device's share of B₀ = 16: 8 on 2 devices (accumulation 1, 1, 2, 2, 4).
    assert plan.to_hf_training_args(devices=2)["per_device_train_batch_size"] == 8


@pytest.mark.parametrize("change, message", [
    ({"optimizers": None}, "lr scheduler is LambdaLR, not the plan's: pass optimizers=plan_optimizers"),
    ({"max_steps": 47}, r"the Trainer runs 3 epoch\(s\), the plan 5"),
    ({"gradient_accumulation_steps": 4}, "HF's epoch of 31 micro-batches holds 8 updates of 4"),
    ({"per_device_train_batch_size": 3}, "per-device sizes that do: 1, 2, 4, 8, 16$"),
])
def test_the_callback_refuses_a_trainer_that_cannot_follow_the_plan(tmp_path, change, message):
    plan = plan_of(**HYBRID)
    fields = {**plan.to_hf_training_args(per_device_train_batch_size=8), **change}
    optimizers = plan_optimizers if fields.pop("optimizers", True) else None
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=TOKENS, n_embd=8, n_layer=1, n_head=2, n_inner=8)
    model = transformers.GPT2LMHeadModel(config)
    data = [{"input_ids": row, "labels": row} for row in torch.zeros(N, TOKENS, dtype=torch.long)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True, save_strategy="no",
                                          disable_tqdm=True, **fields)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[PlanCallback(plan)],
                                   **({"optimizers": optimizers(model, plan)} if optimizers else {}))
    with pytest.raises(PlanError, match=message):
        trainer.train()
