"""``scalestudy plan`` and the plan in training code: the batch size within every limit, ε and m as
``recommend`` gives them, the schedule reproduced update by update by the PyTorch scheduler and
batch sampler (across milestones and after a state_dict round trip), Hugging Face fields, and
one-line errors that create nothing."""

import math
import re
import runpy
from pathlib import Path

import pytest
import torch
import yaml

from cli_in_process import run
from scalestudy.analysis import TrialTable, fit_study
from scalestudy.analysis.outputs.law_file import build_law
from scalestudy.law import Guard, LawRefused, Plan, PlanError, PlanRequest, ScalingLaw, make_plan
from scalestudy.law.steps_lr import steps_lr_ratio
from scalestudy.testing.planted import PlantedDiagnostics, add_diagnostics, make_planted_table

REPO = Path(__file__).resolve().parents[2]
N = 4096
TRUTH = {"alpha": 1.0, "beta": 1.0, "k": 1e-3, "breakdown": 256}


@pytest.fixture(scope="module")
def law_file(tmp_path_factory):
    """A law planted with a breakdown at 256, steps to 60 % planted with B_crit = 200, B_simple = 150."""
    frame = make_planted_table(**TRUTH, batch_sizes=(16, 32, 64, 128, 256, 512), momenta=(0.0, 0.9),
                               dataset_size=N, lr_points=7, epochs=40, rng=3)
    planted = PlantedDiagnostics(noise_scale=150.0, critical_batch=200.0, min_updates=60.0, target_accuracy=0.6,
                                 steps_scatter=0.05, steps_width=3.0)
    frame = add_diagnostics(frame, planted, **TRUTH, rng=4)
    path = tmp_path_factory.mktemp("law") / "law.json"
    build_law(fit_study(TrialTable.from_frame(frame))).save(path)
    return path


def plan_for(law_file, tmp_path, *flags):
    code, out, err = run(["plan", "--law", law_file, "--workers", 4, "--max-batch-per-worker", 64,
                          "--examples-per-second-per-worker", 1000, "--out", tmp_path / "plan.yaml", *flags])
    assert code == 0, err
    return Plan.load(tmp_path / "plan.yaml"), out


def recommended(law_file, batch_size, momentum):
    code, out, err = run(["recommend", "--law", law_file, "--batch-size", batch_size, "--momentum", momentum])
    assert code == 0, err
    return float(re.match(r"lr = (\S+)", out).group(1))


def test_the_batch_size_respects_every_limit_and_recommend_agrees(law_file, tmp_path):
    plan, out = plan_for(law_file, tmp_path, "--epochs", 20, "--schedule", "step_decay_lr")
    law = ScalingLaw.load(law_file)
    critical = law.critical_batch_size
    assert plan.batch_size <= critical.steps_to_target.value and plan.batch_size <= critical.gradient_noise.value
    assert plan.batch_size <= law.breakdown_batch_size and plan.batch_size <= 4 * 64
    assert plan.batch_size % plan.workers == 0 and plan.batch_size > 150 - plan.workers  # the tightest limit, 150
    assert plan.limited_by == "critical batch size (gradient noise)" and plan.momentum == 0.9
    assert f"{plan.lr:.6g}" == f"{recommended(law_file, plan.batch_size, 0.9):.6g}"
    assert plan.lr == law.predict(plan.batch_size, 0.9).lr  # exactly: recommend prints this number
    assert plan.lr_ci95[0] < plan.lr < plan.lr_ci95[1]
    assert plan.schedule.warmup_epochs == 1 and plan.schedule.milestones == (6, 12, 16)
    assert "limited by critical batch size (gradient noise)" in out and "written: " in out


def test_the_hybrid_schedule_grows_the_batch_up_to_b_then_decays_the_lr(law_file, tmp_path):
    plan, out = plan_for(law_file, tmp_path, "--epochs", 10, "--factor", 2, "--milestones", "2,4,6,8")
    epochs = plan.epochs()
    sizes = [e.batch_size for e in epochs]
    b0 = plan.schedule.initial_batch_size
    # 4 workers × 37 under the limit 150: three doublings keep B0 = 4 × (37 // 8) = 16 at the law's smallest B.
    assert b0 == 16 and plan.batch_size == 128 == plan.schedule.max_batch_size
    assert sizes == [16] * 2 + [32] * 2 + [64] * 2 + [128] * 4
    assert plan.schedule.initial_lr == ScalingLaw.load(law_file).predict(b0, 0.9).lr
    assert f"{plan.schedule.initial_lr:.6g}" == f"{recommended(law_file, b0, 0.9):.6g}"
    lrs = [e.lr for e in epochs]
    assert lrs[:8] == [plan.schedule.initial_lr] * 8 and lrs[8:] == [pytest.approx(plan.schedule.initial_lr / 2)] * 2
    assert [e.updates for e in epochs] == [N // b for b in sizes]
    assert plan.total_updates == plan.predicted.updates == sum(N // b for b in sizes)
    assert plan.predicted.wall_seconds == pytest.approx(sum(N // b * b for b in sizes) / 4000)


def follow(plan, scheduler, sampler, optimizer, steps):
    """Run ``steps`` updates (an optimizer step on a real parameter each) and compare with the plan."""
    batches = iter(sampler)
    for _ in range(steps):
        step = sampler.step
        expected = plan.at_step(step)
        indices = next(batches)
        group = optimizer.param_groups[0]
        assert (len(indices), group["lr"], group["momentum"]) == \
            (expected.batch_size // sampler.world_size, pytest.approx(expected.lr, rel=1e-12), expected.momentum)
        assert scheduler.last_epoch == step
        optimizer.step()
        scheduler.step()


def test_the_scheduler_and_sampler_reproduce_the_plan_step_by_step(law_file, tmp_path):
    plan, _ = plan_for(law_file, tmp_path, "--epochs", 10, "--factor", 2, "--milestones", "2,4,6,8",
                       "--warmup-epochs", 1)
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([weight], lr=plan.lr, momentum=plan.momentum)
    scheduler, sampler = plan.lr_scheduler(optimizer), plan.batch_sampler(seed=5)
    assert len(sampler) == plan.total_updates
    milestone = plan.epochs()[2].first_step  # resume exactly where the batch first grows
    follow(plan, scheduler, sampler, optimizer, milestone)
    saved, sampler_state = scheduler.state_dict(), sampler.state_dict()
    assert "plan" not in saved and sampler_state == {"step": milestone, "seed": 5}
    follow(plan, scheduler, sampler, optimizer, 5)
    # A new process: a fresh optimizer, scheduler and sampler restored from the saved states.
    optimizer = torch.optim.SGD([weight], lr=1.0, momentum=0.0)
    scheduler = Plan.load(tmp_path / "plan.yaml").lr_scheduler(optimizer)
    scheduler.load_state_dict(saved)
    sampler = plan.batch_sampler(seed=0)
    sampler.load_state_dict(sampler_state)
    follow(plan, scheduler, sampler, optimizer, plan.total_updates - milestone)
    assert sampler.step == plan.total_updates and list(sampler) == []


def test_the_sampler_permutes_each_epoch_and_splits_batches_over_ranks(law_file, tmp_path):
    plan, _ = plan_for(law_file, tmp_path, "--epochs", 3, "--schedule", "constant")
    ranks = [list(plan.batch_sampler(seed=1, rank=r, world_size=4)) for r in range(4)]
    whole = list(plan.batch_sampler(seed=1))
    assert [sum((r[i] for r in ranks), []) for i in range(len(whole))] == whole
    per_epoch = N // plan.batch_size
    first = sum(whole[:per_epoch], [])
    assert len(set(first)) == len(first) == per_epoch * plan.batch_size  # no example twice in an epoch
    assert whole[per_epoch] != whole[0]  # a new permutation each epoch
    assert list(plan.batch_sampler(seed=1, start_step=per_epoch + 2)) == whole[per_epoch + 2:]


def test_hugging_face_fields_for_every_plan(law_file, tmp_path):
    """The fields only; tests/law/test_hf.py trains with them in a real Trainer."""
    plan, _ = plan_for(law_file, tmp_path, "--epochs", 4, "--schedule", "constant", "--warmup-epochs", 1)
    assert plan.to_hf_training_args()["gradient_accumulation_steps"] == 1  # 4 devices × the per-worker batch
    assert plan.to_hf_training_args()["max_steps"] == plan.total_updates  # HF's epochs hold the plan's updates
    args = plan.to_hf_training_args(devices=2)  # half the devices: two micro-batches per update
    # HF's epoch of 4096 // (37 × 2) = 55 micro-batches is not whole updates of 2: its epochs must be the
    # plan's, which PlanCallback ends at the plan's updates.
    assert args == {"learning_rate": plan.lr, "per_device_train_batch_size": plan.per_worker_batch_size,
                    "gradient_accumulation_steps": 2, "lr_scheduler_type": "constant", "dataloader_drop_last": True,
                    "num_train_epochs": 4, "max_steps": -1}
    hybrid, _ = plan_for(law_file, tmp_path, "--epochs", 10, "--factor", 2)
    fields = hybrid.to_hf_training_args()  # B 16 → 128 on 4 devices: micro-batches of 4
    assert (fields["per_device_train_batch_size"], fields["num_train_epochs"]) == (4, 10)
    assert hybrid.hf_accumulation_steps(4, 4) == (1, 1, 1, 2, 2, 2, 4, 4, 8, 8)
    decay, _ = plan_for(law_file, tmp_path, "--epochs", 10, "--schedule", "step_decay_lr")
    assert decay.to_hf_training_args()["max_steps"] == decay.total_updates


def test_a_plan_for_a_target_takes_the_updates_the_steps_fit_predicts(law_file, tmp_path):
    plan, out = plan_for(law_file, tmp_path, "--target", 0.6)
    line = ScalingLaw.load(law_file).critical_batch_size.steps_to_target
    predicted = line.s_min * (1 + line.value / plan.batch_size)
    assert plan.total_updates == math.ceil(predicted) and plan.schedule.kind == "constant"
    low, high = plan.predicted.updates_ci95
    assert low <= plan.total_updates <= high
    assert plan.predicted.wall_seconds_ci95[0] <= plan.predicted.wall_seconds <= plan.predicted.wall_seconds_ci95[1]
    with pytest.raises(PlanError, match="counted to test accuracy 0.6"):
        make_plan(ScalingLaw.load(law_file), PlanRequest(4, 64, throughput=1e3, target=0.7))


def test_a_plan_for_a_target_trains_at_the_lr_its_updates_were_counted_at(law_file, tmp_path):
    """The updates S(B) are the fewest over ε, at each B's steps-optimal ε_S, not at the law's ε*:
    the plan trains at ε_S(B), here between the measured B = 128 and 256 (ε_S/ε* interpolated in ln B)."""
    plan, out = plan_for(law_file, tmp_path, "--target", 0.6)
    law = ScalingLaw.load(law_file)
    line = law.critical_batch_size.steps_to_target
    assert line.momentum == plan.momentum == 0.9 and plan.batch_size == 148
    star = lambda b: law.predict(b, 0.9).lr  # noqa: E731
    i = line.batch_sizes.index(128.0)
    share = math.log(148 / 128) / math.log(256 / 128)
    ratio = (line.lrs[i] / star(128)) ** (1 - share) * (line.lrs[i + 1] / star(256)) ** share
    assert plan.lr == pytest.approx(star(148) * ratio, rel=1e-12)
    assert plan.lr_basis == "steps_to_target" and plan.law_lr == star(148) and plan.lr_ci95 is None
    assert {step.lr for step in plan.steps()} == {plan.lr}  # every update, as counted
    assert "the ε the steps to target were counted at" in out and f"{plan.law_lr:.6g}" in out
    epochs, _ = plan_for(law_file, tmp_path, "--epochs", 5)
    assert epochs.lr_basis == "law" and epochs.law_lr is None  # ε* = recommend, as before


def test_a_target_plan_from_a_law_file_without_steps_lrs_trains_at_the_law_and_says_so(law_file):
    data = ScalingLaw.load(law_file).to_dict()
    steps = data["critical_batch_size"]["steps_to_target"]
    for line in (steps, *steps["lines"]):
        line.pop("lrs")
    law = ScalingLaw.from_dict(data)
    plan = make_plan(law, PlanRequest(4, 64, throughput=1e3, target=0.6))
    assert plan.lr_basis == "law" and plan.lr == law.predict(plan.batch_size, 0.9).lr
    assert any("holds no learning rates for its steps to target" in w for w in plan.warnings)


@pytest.mark.parametrize("batch, expected", [(100, 2.0), (200, 2.0), (400, 1.0), (800, 0.5), (1600, 0.5),
                                             (math.sqrt(200 * 400), math.sqrt(2.0))])
def test_steps_lr_ratio_is_measured_at_the_points_interpolated_in_ln_b_and_held_outside(batch, expected):
    law_lr = lambda b: 1e-4 * b  # noqa: E731
    lrs = (2 * law_lr(200), law_lr(400), 0.5 * law_lr(800))
    assert steps_lr_ratio(batch, (200, 400, 800), lrs, law_lr) == pytest.approx(expected, rel=1e-12)
    assert steps_lr_ratio(batch, (200, 400, 800), (), law_lr) is None  # a law file of an earlier version


def test_the_readme_example_trains_a_model_with_the_plan(law_file, tmp_path, monkeypatch):
    """examples/train_with_plan.py, the code the README shows, runs as it is on a plan."""
    code = (REPO / "examples" / "train_with_plan.py").read_text()
    assert code.strip() in (REPO / "README.md").read_text()  # the README shows exactly this file
    plan_for(law_file, tmp_path, "--epochs", 2, "--schedule", "step_decay_lr")
    monkeypatch.chdir(tmp_path)
    result = runpy.run_path(str(REPO / "examples" / "train_with_plan.py"))
    assert result["step"] == Plan.load(tmp_path / "plan.yaml").total_updates - 1
    assert math.isfinite(result["loss"].item())


@pytest.mark.parametrize("flags, message", [
    (["--workers", "0"], "--workers and --max-batch-per-worker must be ≥ 1"),
    (["--throughput", "-5"], "--throughput: must be a positive number"),
    (["--throughput", "nan"], "--throughput: must be a positive number"),
    (["--epochs", "0"], "--epochs: must be in 1-100000"),
    (["--milestones", "5,x"], "--milestones 5,x: must be epochs separated by commas"),
    (["--milestones", "8,3"], "--milestones: must be increasing epochs in 1-9"),
    (["--factor", "2.5"], "--factor: the hybrid schedule multiplies the batch size by it"),
    (["--momentum", "1.0"], "--momentum: must be in [0, 1)"),
    (["--momentum", "0.5"], None),  # inside the fitted range (0 to 0.9): a plan
])
def test_bad_flags_are_one_line_and_create_nothing(law_file, tmp_path, flags, message):
    base = {"--workers": "4", "--max-batch-per-worker": "64", "--throughput": "1000", "--epochs": "10"}
    for flag, value in zip(flags[::2], flags[1::2]):
        base[flag] = value
    argv = ["plan", "--law", law_file, "--out", tmp_path / "plan.yaml", *sum(base.items(), ())]
    code, _, err = run(argv)
    if message is None:
        assert code == 0 and (tmp_path / "plan.yaml").exists()
        return
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_plan_files_are_read_strictly(law_file, tmp_path):
    plan, _ = plan_for(law_file, tmp_path, "--epochs", 5)
    data = plan.to_dict()
    for change, message in (({"schema": "x"}, "schema must be 'scalestudy.plan/v1'"),
                            ({"surprise": 1}, "unknown key 'surprise'"),
                            ({"schedule": {**data["schedule"], "kind": "cosine"}}, "schedule.kind must be one of"),
                            ({"schedule": {**data["schedule"], "milestones": [9]}}, "schedule.milestones must be"),
                            ({"lr": "fast"}, "lr must be a finite number"),
                            ({"lr_basis": "guess"}, "lr_basis must be one of law, steps_to_target")):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({**data, **change}))
        with pytest.raises(PlanError, match=re.escape(message)):
            Plan.load(path)
    code, _, err = run(["plan", "--law", law_file, "--workers", 4, "--max-batch-per-worker", 64, "--throughput", 1,
                        "--epochs", 3, "--out", law_file])
    assert code == 2 and "exists and is not a plan file" in err  # a law file is never written over


def test_a_law_without_a_critical_batch_size_plans_with_a_warning(tmp_path):
    """A law file of an earlier version (no critical_batch_size, no prediction): refused for its missing
    interval; forced, a plan that says what bounds B and what does not."""
    frame = make_planted_table(**TRUTH, batch_sizes=(16, 32, 64, 128, 256, 512), momenta=(0.9,), dataset_size=N,
                               rng=5)
    data = build_law(fit_study(TrialTable.from_frame(frame))).to_dict()
    for key in ("critical_batch_size", "prediction", "gradient_noise_scale"):
        data.pop(key)
    law = ScalingLaw.from_dict(data)
    with pytest.raises(LawRefused, match="no 'prediction'"):
        make_plan(law, PlanRequest(4, 512, throughput=1e4, epochs=4, schedule="constant"))
    plan = make_plan(law, PlanRequest(4, 512, throughput=1e4, epochs=4, schedule="constant", guard=Guard(force=True)))
    assert any(w.startswith("FORCED (--force)") and "no 'prediction'" in w for w in plan.warnings)
    assert not any(limit.name.startswith("critical") for limit in plan.limits)
    assert plan.batch_size == 4 * (min(limit.value for limit in plan.limits) // 4)
    assert plan.lr_ci95 is None and any("no critical batch size" in w for w in plan.warnings)
