"""``scalestudy plan --batch-warmup CBS.json``: the stages printed and written with every trainer's
file (each loads back as the warmup), and one-line errors that create nothing."""

import contextlib
import io
import json

import pytest

from scalestudy import cli
from scalestudy.law.batch_warmup import BatchWarmup
from scalestudy.law.warmup_exports import EXPORT_FILES
from warmup_curves import cbs_curve, small_warmup


def run(argv):
    """(exit code, stdout, stderr) of ``scalestudy ARGV`` in this process, argparse's own errors included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in argv])
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def cbs_file(tmp_path):
    return cbs_curve(rule="sqrt", optimizer="adamw").save(tmp_path / "cbs.json")


def test_the_warmup_and_every_trainers_file_are_written_and_printed(cbs_file, tmp_path):
    out = tmp_path / "warmup"
    code, printed, err = run(["plan", "--batch-warmup", cbs_file, "--sequence-length", 1024, "--out", out])
    assert code == 0 and err == "", err
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORT_FILES)
    warmup = BatchWarmup.load(out / "batch_warmup.json")
    assert warmup.stages == small_warmup(rule="sqrt", optimizer="adamw").stages
    assert [s.batch_size for s in warmup.stages] == [8, 16, 32] and warmup.source == str(cbs_file)
    assert "3 stage(s), 35 updates, 576 examples" in printed
    # the stage at examples 112 = 114688 tokens, step 14: B 16 at 0.05·√2
    assert "            112        114688          14          16   0.0707107" in printed
    for name in EXPORT_FILES:
        assert f"{out / name}: " in printed
    assert '"0:8 114688:16 327680:32"' in (out / "megatron_args.sh").read_text()
    assert json.loads((out / "olmo_core_batch_size_scheduler.json").read_text())["batch_sizes"] == [8192, 16384, 32768]


def test_flags_shape_the_warmup_and_a_file_without_a_form_is_said(tmp_path):
    cbs = cbs_curve().save(tmp_path / "cbs.json")  # SGD, linear rule: no OLMo-core form; no tokens
    code, printed, err = run(["plan", "--batch-warmup", cbs, "--max-batch-size", 20, "--factor", 2, "--basis",
                              "estimate", "--total-examples", 400, "--out", tmp_path / "w"])
    assert code == 0, err
    warmup = BatchWarmup.load(tmp_path / "w" / "batch_warmup.json")
    assert [s.batch_size for s in warmup.stages] == [8, 16] and warmup.total_examples == 400
    assert warmup.basis == "estimate" and not (tmp_path / "w" / "olmo_core_batch_size_scheduler.json").exists()
    assert "not written: olmo_core_batch_size_scheduler.json (OLMo-core's callback rescales the lr" in printed
    assert '"0:8 112:16"' in (tmp_path / "w" / "megatron_args.sh").read_text()  # samples without a sequence length


@pytest.mark.parametrize("flags, message", [
    (["--factor", "2.5"], "--factor: --batch-warmup grows B by a whole factor ≥ 2, got 2.5"),
    (["--factor", "1"], "--factor: --batch-warmup grows B by a whole factor ≥ 2, got 1"),
    (["--max-batch-size", "4"], "--max-batch-size: must be ≥ the base batch size 8 of"),
    (["--total-examples", "0"], "--total-examples: must be a whole number ≥ 1, got 0"),
    (["--sequence-length", "-3"], "--sequence-length: must be a whole number ≥ 1, got -3"),
    (["--basis", "mean"], "argument --basis: invalid choice: 'mean'"),
    (["--workers", "4"], "--workers: only with --law (a plan from a law), not with --batch-warmup"),
    (["--law", "law.json"], "argument --law: not allowed with argument --batch-warmup"),
])
def test_bad_flags_are_one_line_and_create_nothing(cbs_file, tmp_path, flags, message):
    code, _, err = run(["plan", "--batch-warmup", cbs_file, "--out", tmp_path / "w", *flags])
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cbs.json"]


def test_bad_files_and_folders_are_one_line_and_create_nothing(cbs_file, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**json.loads(cbs_file.read_text()), "rule": "cubic"}))
    no_base = tmp_path / "no_base.json"
    no_base.write_text(json.dumps({**json.loads(cbs_file.read_text()), "base_batch_size": 0}))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    for argv, message in ((["--batch-warmup", broken, "--out", tmp_path / "w"], "rule 'cubic'; allowed: linear, sqrt"),
                          (["--batch-warmup", tmp_path / "none.json", "--out", tmp_path / "w"], "cannot read cbs file"),
                          (["--batch-warmup", no_base, "--out", tmp_path / "w"], "base_batch_size 0, dataset_size 100"),
                          (["--batch-warmup", cbs_file, "--out", tmp_path / "taken"], "holds other files (notes.txt"),
                          (["--batch-warmup", cbs_file, "--out", cbs_file], "exists and is not a folder")):
        code, _, err = run(["plan", *argv])
        assert code == 2 and err.count("\n") == 1 and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json", "cbs.json", "no_base.json", "taken"]
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_the_law_plan_keeps_its_required_flags_and_refuses_the_warmups(tmp_path):
    code, _, err = run(["plan", "--law", tmp_path / "law.json", "--workers", 2])
    assert code == 2 and "required with --law: --max-batch-per-worker, --examples-per-second-per-worker or " \
                          "--throughput, --epochs or --target" in err
    code, _, err = run(["plan", "--law", tmp_path / "law.json", "--workers", 2, "--max-batch-per-worker", 8,
                        "--throughput", 10, "--epochs", 2, "--sequence-length", 8])
    assert code == 2 and "--sequence-length: only with --batch-warmup" in err
    code, _, err = run(["plan", "--workers", 2])
    assert code == 2 and "one of the arguments --law --batch-warmup is required" in err
    assert list(tmp_path.iterdir()) == []
