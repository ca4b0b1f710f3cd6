"""A useless law is refused (scalestudy.law.guards): ``recommend`` and ``plan`` give one ``error:`` line
and exit 2 for a law with no interval (fitted on too few cells: said so, with the cells it lost), an
interval reaching more than ×4 from ε*, or a batch size more than ×4 beyond the fitted ones; the flags
move the limits and ``--force`` goes on with a loud warning. ``recommend`` says where its lr comes
from; ``plan`` says why each limit and its B, prints the lr its schedule trains at and natural time
units. Laws from tiny real fits of planted studies."""

import re

import pytest
import yaml

from cli_in_process import run
from scalestudy.analysis import TrialTable, fit_study
from scalestudy.analysis.outputs.law_file import build_law
from scalestudy.law import Guard, LawRefused, Plan, PlanRequest, ScalingLaw, make_plan
from scalestudy.law.guards import interval_factor, law_objective
from scalestudy.law.plan_text import in_unit, time_unit
from scalestudy.testing.planted import make_planted_table

TRUTH = {"alpha": 1.0, "beta": 1.0, "k": 1e-3}


def fitted(path, **design):
    law = build_law(fit_study(TrialTable.from_frame(make_planted_table(**TRUTH, **design))))
    law.save(path)
    return path


@pytest.fixture(scope="module")
def laws(tmp_path_factory):
    """good: 10 cells, B = 16-256, 2 momenta; wide: 3 cells at one momentum, 1 residual degree of
    freedom (t = 12.7); two: 4 batch sizes on a grid centred on the linear rule, with a breakdown at
    64 that puts the optimum of B = 256 and 1024 at or below the grid's lowest lr: 2 cells left."""
    folder = tmp_path_factory.mktemp("laws")
    return {"good": fitted(folder / "good.json", batch_sizes=(16, 32, 64, 128, 256), momenta=(0.0, 0.9),
                           lr_points=7, rng=1),
            "wide": fitted(folder / "wide.json", batch_sizes=(64, 128, 256), momenta=(0.9,), lr_points=5, rng=5),
            "two": fitted(folder / "two.json", breakdown=64, batch_sizes=(32, 64, 256, 1024), momenta=(0.9,),
                          lr_points=5, centre_on_rule=True, diverge_factor=1e6, rng=6)}


def refused(argv):
    """The one error line of a refused command."""
    code, out, err = run(argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), (code, out, err)
    assert "unexpected" not in err and "refit it with this version" not in err
    return err


def recommend(law, batch_size, *flags):
    return ["recommend", "--law", law, "--batch-size", batch_size, "--momentum", 0.9, *flags]


def plan_argv(law, out, *flags):
    return ["plan", "--law", law, "--workers", 4, "--max-batch-per-worker", 32, "--throughput", 1000,
            "--epochs", 10, "--out", out, *flags]


def test_recommend_prints_the_lr_its_interval_and_where_it_came_from(laws):
    code, out, err = run(recommend(laws["good"], 128))
    law = ScalingLaw.load(laws["good"])
    prediction = law.predict(128, 0.9)
    low, high = prediction.lr_ci95
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].startswith(f"lr = {prediction.lr:.6g} [{low:.6g}, {high:.6g}]   (B=128, m=0.9")
    assert lines[1].startswith("  from the law lr = k * B^alpha * (1-m)^beta: k = ")
    assert f"alpha = {law.alpha:.3g} [{law.ci95.alpha[0]:.3g}, {law.ci95.alpha[1]:.3g}]" in lines[1]
    assert "fitted on 10 cells at B = 16-256, m = 0-0.9" in lines[2]
    assert f"reaches ×{interval_factor(prediction):.3g} above and below" in lines[2]
    assert "B=128 is inside the fitted batch sizes" in lines[2]


def test_a_law_whose_interval_is_too_wide_is_refused_unless_the_limit_moves_or_it_is_forced(laws, tmp_path):
    wide = ScalingLaw.load(laws["wide"])
    factor = interval_factor(wide.predict(128, 0.9))
    assert factor > 10  # 3 cells, one residual degree of freedom
    line = refused(recommend(laws["wide"], 128))
    assert "the law's 95 % interval of ε* at B=128, m=0.9, N=50000 is [" in line
    assert f"up to ×{factor:.3g} from its" in line and "(limit ×4, --max-interval-ratio)" in line
    assert "add seeds, and lrs around each cell's optimum" in line and line.rstrip().endswith(
        "(--force to use it anyway)")
    code, out, err = run(recommend(laws["wide"], 128, "--max-interval-ratio", factor * 1.01))
    assert code == 0 and out.startswith("lr = ") and "FORCED" not in err
    code, out, err = run(recommend(laws["wide"], 128, "--force"))
    assert code == 0 and out.startswith("lr = ")
    assert err.startswith("warning: FORCED (--force), this learning rate may be far off: the law's 95 % interval")
    # plan: nothing written when refused; with --force, the warning travels in the plan file
    assert "--max-interval-ratio" in refused(plan_argv(laws["wide"], tmp_path / "plan.yaml"))
    assert list(tmp_path.iterdir()) == []
    code, out, err = run(plan_argv(laws["wide"], tmp_path / "plan.yaml", "--force"))
    assert code == 0, err
    plan = Plan.load(tmp_path / "plan.yaml")
    assert any(w.startswith("FORCED (--force)") for w in plan.warnings) and "warning: FORCED" in out


def test_a_batch_size_far_beyond_the_fitted_ones_is_refused_and_plan_stays_within_reach(laws, tmp_path):
    line = refused(recommend(laws["good"], 2048))
    assert "B=2048 is ×8 beyond the largest batch size the law was fitted on (256; limit ×4, " \
           "--max-extrapolation): run a few cells at B=2048 and check-law the law there" in line
    assert "×8 beyond the smallest batch size the law was fitted on (16" in refused(recommend(laws["good"], 2))
    code, out, _ = run(recommend(laws["good"], 2048, "--max-extrapolation", 8))
    assert code == 0 and "B=2048 is ×8 outside the fitted batch sizes: extrapolation" in out
    assert run(recommend(laws["good"], 1024))[0] == 0  # ×4: at the limit
    assert "--max-extrapolation: must be a number ≥ 1" in refused(recommend(laws["good"], 64, "--max-extrapolation",
                                                                            0.5))
    # plan chooses B: the law's fitted range is one more limit, with its reason
    code, out, err = run(["plan", "--law", laws["good"], "--workers", 8, "--max-batch-per-worker", 1024,
                          "--throughput", 1e5, "--epochs", 4, "--schedule", "constant", "--out", tmp_path / "p.yaml"])
    plan = Plan.load(tmp_path / "p.yaml")
    assert code == 0 and plan.limited_by == "the law's fitted range" and plan.batch_size == 1024
    assert "B = the the law's fitted range" not in out
    assert "×4 the largest batch size the law was fitted on (256; --max-extrapolation)" in out


def test_a_law_of_two_cells_is_refused_for_its_cells_by_recommend_plan_and_check_law(laws, tmp_path):
    law = ScalingLaw.load(laws["two"])
    assert law.fitted_on.cells == 2 and law.prediction is None
    expected = "the law was fitted on 2 cells: a law needs ≥ 3 for a 95 % interval of ε*"
    line = refused(recommend(laws["two"], 64))
    assert expected in line and "add lrs around the optimum in the cells that lost their optimum (B=256 m=0.9" \
        in line and "(edge_low)" in line and "or seeds" in line
    assert expected in refused(plan_argv(laws["two"], tmp_path / "plan.yaml"))
    frame = make_planted_table(**TRUTH, batch_sizes=(64,), momenta=(0.9,), rng=7)
    TrialTable.from_frame(frame).to_parquet(tmp_path / "check.parquet")
    line = refused(["check-law", "--law", laws["two"], "--runs", tmp_path / "check.parquet", "--out", tmp_path / "c",
                    "--force"])
    assert expected in line and "--force cannot replace it" in line and not (tmp_path / "c").exists()


def test_a_law_file_of_an_earlier_version_has_no_interval_and_says_to_analyze_again(laws, tmp_path):
    data = ScalingLaw.load(laws["good"]).to_dict()
    del data["prediction"]
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(data))
    line = refused(recommend(tmp_path / "old.yaml", 64))
    assert "no 'prediction'" in line and "analyze the study again with this version" in line
    code, out, err = run(recommend(tmp_path / "old.yaml", 64, "--force"))
    assert code == 0 and re.match(r"lr = \S+   \(B=64", out) and "no 95 % interval" in out and "FORCED" in err
    with pytest.raises(LawRefused, match="no 'prediction'"):
        make_plan(ScalingLaw.from_dict(data), PlanRequest(4, 32, throughput=1e3, epochs=4))
    forced = make_plan(ScalingLaw.from_dict(data), PlanRequest(4, 32, throughput=1e3, epochs=4,
                                                               guard=Guard(force=True)))
    assert forced.lr_ci95 is None and any("no 'prediction'" in w for w in forced.warnings)


def test_plan_explains_each_limit_and_how_b_follows_and_prints_the_lr_it_trains_at(laws, tmp_path):
    """8 workers × 64 = 512 is the tightest limit; the hybrid schedule grows B ×5 at its one milestone,
    from 8 × 12 = 96 to 480: B 512 → 480, said in the plan itself."""
    code, out, err = run(["plan", "--law", laws["good"], "--workers", 8, "--max-batch-per-worker", 64,
                          "--throughput", 2e6, "--epochs", 20, "--milestones", "10", "--out", tmp_path / "plan.yaml"])
    assert code == 0, err
    plan = Plan.load(tmp_path / "plan.yaml")
    law = ScalingLaw.load(laws["good"])
    assert (plan.batch_size, plan.schedule.initial_batch_size, plan.limited_by) == (480, 96, "hardware")
    assert plan.batch_size_reason == (
        "B 512 → 480: the hardware limit 512 (8 workers × 64 examples per worker (--workers, "
        "--max-batch-per-worker)); the hybrid schedule grows B ×5 once from B₀ = 96 (8 workers × 12), whole "
        "examples per worker, so B = 96 × 5^1 = 480")
    assert plan.batch_size_reason in out
    assert all(limit.reason for limit in plan.limits)
    assert {limit.name for limit in plan.limits} >= {"hardware", "dataset", "the law's fitted range"}
    lr_line = next(line for line in out.splitlines() if line.startswith("learning rate"))
    start = law.predict(96, 0.9)
    assert lr_line.startswith(f"learning rate    {start.lr:.6g} [{start.lr_ci95[0]:.6g}, {start.lr_ci95[1]:.6g}] "
                              "at B=96, momentum 0.9: the schedule's first and peak ε")
    assert "held while B grows to 480" in lr_line and "= scalestudy recommend --batch-size 96" in lr_line
    assert f"{law.predict(480, 0.9).lr:.6g}" not in out  # ε*(480): an ε the schedule never uses
    assert plan.initial_lr_ci95 == start.lr_ci95 and max(e.lr for e in plan.epochs()) == plan.schedule.initial_lr
    wall = next(line for line in out.splitlines() if line.startswith("wall time"))
    seconds = plan.predicted.wall_seconds
    assert 0.1 < seconds < 120 and wall.startswith(f"wall time        {seconds:.3g} s at 2,000,000 examples/s")


@pytest.mark.parametrize("seconds, shown", [(0.8, "0.8 s"), (90, "90 s"), (5400, "90 min"), (3 * 3600, "3 h"),
                                            (200_000, "2.31 days")])
def test_wall_time_is_shown_in_natural_units(seconds, shown):
    unit = time_unit(seconds)
    assert f"{in_unit(seconds, unit)} {unit[0]}" == shown


def test_a_law_names_the_objective_it_was_fitted_on_and_older_files_are_read_by_their_note(laws):
    law = ScalingLaw.load(laws["good"])
    assert law.objective is not None and law_objective(law) == ("test_acc", "max")
    data = law.to_dict()
    del data["objective"]
    assert law_objective(ScalingLaw.from_dict(data)) == ("test_acc", "max")  # before objectives: test accuracy
    data["notes"] = ["objective: test_loss, minimised (ε* of each cell is the best test loss)"]
    assert law_objective(ScalingLaw.from_dict(data)) == ("test_loss", "min")
