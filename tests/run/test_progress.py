"""Study progress: the state, its two renderings, and the callback's bounded rate (no Ray started)."""

import io
import types

from rich.console import Console

from scalestudy.run.progress import ProgressCallback, StudyProgress, duration, live_view, plain_line
from scalestudy.run.summary import branched_summary, summary_table
from scalestudy.spec import Objective, spec_from_dict
from scalestudy.trial.config import expand_cells

# Trials of 3 epochs; trial i runs at ε = (i + 1)/100 (its run name says so).
CELL = expand_cells(spec_from_dict({
    "name": "tiny", "workload": {"dataset": "synthetic", "model": "mlp", "epochs": 3},
    "grid": {"batch_size": [32], "lr": [0.1]}}))[0]


def state_after(finished: dict[str, str], running=("r1", "r2"), elapsed=150.0, total=20) -> StudyProgress:
    state = StudyProgress("tiny", total, started_at=1000.0, objective=CELL.objective)
    for trial_id, status in finished.items():
        state.start(trial_id)
        state.finish(trial_id, status)
    for trial_id in running:
        state.start(trial_id)
    return state


def test_counts_best_and_eta():
    state = state_after({"a": "ok", "b": "ok", "c": "diverged", "d": "stopped", "e": "error"})
    assert state.done == 5 and state.running == {"r1", "r2"}
    assert [state.count(s) for s in ("ok", "diverged", "stopped", "error")] == [2, 1, 1, 1]
    for name, acc in (("B=32", 0.5), ("B=64", float("nan")), ("B=128", 0.7), ("B=256", 0.6)):
        state.start(name)
        state.finish(name, "ok", name, {"test_acc": acc})  # a diverged trial's NaN accuracy is no best
    assert state.best == (0.7, "B=128")
    # 9 trials in 150 s: 11 left take 183 s at that rate.
    assert state.eta(1150.0) == 150 / 9 * 11
    assert StudyProgress("x", 3, started_at=0.0).eta(10.0) is None


def test_duration_format():
    assert [duration(s) for s in (0, 59.4, 75, 3599, 3725, None, float("inf"))] == \
        ["0s", "59s", "1m15s", "59m59s", "1h02m", "?", "?"]


def test_plain_line_says_everything_on_one_line():
    state = state_after({"a": "ok", "b": "diverged"}, elapsed=0)
    assert "best final test_acc - |" in plain_line(state, 1060.0)
    state.start("c")
    state.finish("c", "ok", "B=32 lr=0.1 m=0.9 seed=0 constant", {"test_acc": 0.81234})
    line = plain_line(state, 1060.0)
    assert "\n" not in line
    assert line.startswith("[  1m00s] tiny: trials 3/20 done (2 ok, 1 diverged, 0 stopped early, 0 errored), "
                           "2 running")
    assert "best final test_acc 0.8123 (B=32 lr=0.1 m=0.9 seed=0 constant)" in line
    assert line.endswith("about 5m40s left")
    finished = state_after({str(i): "ok" for i in range(20)}, running=())
    assert plain_line(finished, 1100.0).endswith("finished")


def test_live_view_renders_counts_best_and_times():
    state = state_after({"a": "ok", "b": "error"})
    state.start("c")
    state.finish("c", "ok", "B=64", {"test_acc": 0.9})
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(live_view(state, 1030.0))
    text = console.file.getvalue()
    for part in ("tiny", "3/20 trials", "2 running", "2 ok", "1 errored", "final test_acc 0.9000  B=64",
                 "30s elapsed", "about 2m50s left"):
        assert part in text, (part, text)


def trial(trial_id: str, epochs_done: int, diverged: bool = False, acc: float = 0.5):
    """What the callback reads of a Tune trial: its id, config and last result."""
    config = {"trial": CELL.trial((int(trial_id) + 1) / 100).to_dict()}
    return types.SimpleNamespace(trial_id=trial_id, config=config,
                                 last_result={"epoch": epochs_done, "diverged": int(diverged), "test_acc": acc})


def drive(callback: ProgressCallback, n: int) -> None:
    callback.setup()
    for i in range(n):
        t = trial(str(i), 3 if i % 4 else 1, diverged=i % 7 == 0, acc=i / 100)
        callback.on_trial_start(0, [], t)
        callback.on_trial_result(0, [], t, t.last_result)
        callback.on_trial_complete(0, [], t)
    callback.on_experiment_end([])


def test_plain_lines_come_at_a_bounded_rate():
    out = io.StringIO()
    callback = ProgressCallback("tiny", 50, stream=out, every_s=3600, live=False, objective=CELL.objective)
    drive(callback, 50)
    callback.close()  # the study closes it again after the fit (an interrupted fit has no experiment end)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first event, then the end: not one line per trial, the last not twice
    assert "trials 0/50 done" in lines[0]
    # 8 multiples of 7 diverged; 11 other multiples of 4 stopped after 1 of 3 epochs
    assert "trials 50/50 done (31 ok, 8 diverged, 11 stopped early, 0 errored)" in lines[1]
    # Trial 49 reported the highest accuracy but diverged: a diverged trial is never the best.
    assert "best final test_acc 0.4800 (B=32 lr=0.49 m=0 seed=0 constant)" in lines[1]


def test_the_best_is_a_trials_final_epoch_as_in_the_summary_table():
    """A trial whose accuracy peaked mid-training and fell is ranked by its final epoch, as the
    summary table (and the analysis) rank it: the progress and the table name the same trial."""
    out = io.StringIO()
    callback = ProgressCallback("tiny", 2, stream=out, every_s=3600, live=False, objective=CELL.objective)
    callback.setup()
    peaked, steady = trial("0", 3, acc=0.60), trial("1", 3, acc=0.55)
    for t in (peaked, steady):
        callback.on_trial_start(0, [], t)
    callback.on_trial_result(0, [], peaked, {"epoch": 2, "test_acc": 0.90})  # its best epoch
    callback.on_trial_result(0, [], peaked, peaked.last_result)
    callback.on_trial_result(0, [], steady, steady.last_result)
    assert callback.state.best is None  # no trial has ended
    callback.on_trial_complete(0, [], peaked)
    callback.on_trial_complete(0, [], steady)
    assert callback.state.best == (0.60, "B=32 lr=0.01 m=0 seed=0 constant")
    rows = [row(32, (int(t.trial_id) + 1) / 100, test_acc=t.last_result["test_acc"]) for t in (peaked, steady)]
    assert summary_table(rows, CELL.objective).splitlines()[1].split()[-3:] == ["0.01", "0.6000", "-"]


def test_live_display_ends_with_its_last_frame_and_pickles_without_it():
    import pickle

    out = io.StringIO()
    callback = ProgressCallback("tiny", 5, stream=out, live=True, objective=CELL.objective)
    drive(callback, 5)
    assert callback._display is None
    assert "5/5 trials" in out.getvalue()
    restored = pickle.loads(pickle.dumps(callback))  # Tune pickles callbacks with the experiment
    assert restored.state.done == 5 and restored.stream is None and restored._display is None


def test_not_a_terminal_means_plain_lines():
    assert not ProgressCallback("tiny", 1, stream=io.StringIO(), objective=CELL.objective)._is_live()


LOSS = Objective(metric="test_loss", direction="min")


def test_a_minimised_objective_shows_its_lowest_value_as_the_best():
    state = StudyProgress("lm", 4, started_at=0.0, objective=LOSS)
    for name, final in (("B=8", {"test_loss": 3.2}), ("B=16", {"test_loss": 2.5}),
                        ("B=32", {"test_loss": 0.1, "diverged": 1}),  # a diverged trial is never the best
                        ("B=64", {"test_loss": float("inf")}), ("B=128", {"test_loss": 2.9})):
        state.start(name)
        state.finish(name, "ok", name, final)
    assert state.best == (2.5, "B=16")
    assert "best final test_loss 2.5000 (B=16)" in plain_line(state, 1.0)


def row(batch_size: int, lr: float, diverged: bool = False, **metrics) -> dict:
    return {"section": "main", "schedule": "constant", "momentum": 0.9, "batch_size": batch_size, "lr": lr,
            "diverged": diverged, "gen_gap": None, **metrics}


def test_the_summary_table_ranks_each_cell_by_the_objective():
    rows = [row(16, 0.01, test_loss=2.8), row(16, 0.02, test_loss=2.4), row(16, 0.04, test_loss=1.0, diverged=True),
            row(32, 0.02, test_loss=float("nan"), diverged=True)]
    header, small, large = summary_table(rows, LOSS).splitlines()
    assert header.split()[-3:] == ["final", "test_loss", "gap"]
    assert small.split()[-4:] == ["1", "0.02", "2.4000", "-"]  # 1 diverged; the lowest loss, no accuracy gap
    assert large.split()[-4:] == ["1", "-", "-", "-"]
    accuracy = [row(16, 0.01, test_acc=0.8, gen_gap=0.05), row(16, 0.02, test_acc=0.9, gen_gap=0.1)]
    assert summary_table(accuracy, CELL.objective).splitlines()[1].split()[-3:] == ["0.02", "0.9000", "0.1000"]


def test_branches_and_comparison_runs_are_summed_up_apart_with_the_failed_named():
    rows = [{"role": "branch", "batch_size": b, "status": status, "trial_key": f"k{b}{status}",
             "run_name": f"B={b} {status}", "error": "RuntimeError: boom" if status == "error" else None}
            for b in (16, 32, 64) for status in ("ok", "diverged", "error")]
    rows.append({"role": "compare", "batch_size": 16, "status": "ok", "trial_key": "c", "run_name": "warmup"})
    text = branched_summary(rows).splitlines()
    assert text[:2] == ["branches: 9 (3 ok, 3 diverged, 3 errored), B 16–64",
                        "comparison runs: 1 (1 ok, 0 diverged, 0 errored), B 16"]
    assert text[-4:] == ["failed branches and comparison runs (3):", "  B=16 error: RuntimeError: boom",
                         "  B=32 error: RuntimeError: boom", "  B=64 error: RuntimeError: boom"]


def test_the_planned_count_grows_with_the_trials_a_budget_in_trial_epochs_started():
    """The adaptive search plans its count as if every trial ran all its epochs; trials that diverge early
    leave room for more, and the line then counts those it started, never more done than planned."""
    state = state_after({"a": "diverged", "b": "ok"}, running=("c", "d"), total=3)
    assert state.total == 4
    state.finish("c", "ok")
    state.finish("d", "ok")
    assert "trials 4/4 done" in plain_line(state, 1100.0) and plain_line(state, 1100.0).endswith("finished")
