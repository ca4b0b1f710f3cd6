"""fit_study is pure (no file, socket or process; no figure or tracking library), the output steps
write the files, and law.json keeps its keys: files of earlier versions still load."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scalestudy.analysis import FitOptions, StudyFits, TrialTable, fit_study
from scalestudy.analysis.outputs.law_file import build_law, write_files
from scalestudy.law import ScalingLaw
from scalestudy.testing.planted import add_diagnostics, make_planted_table, stop_early


def planted_frame():
    """Every diagnostic on, a breakdown at B = 256, schedules, and trials stopped by the search."""
    frame = make_planted_table(1.0, 1.0, 1e-3, 256, batch_sizes=(32, 64, 128, 256, 512, 1024), momenta=(0.0, 0.9),
                               lr_points=7, schedules=True, rng=1)
    return stop_early(add_diagnostics(frame, breakdown=256), keep=0.5)


@pytest.fixture(scope="module")
def fits():
    return fit_study(TrialTable.from_frame(planted_frame()))


def test_fit_study_writes_nothing_and_loads_no_output_library(tmp_path):
    """In a fresh interpreter, with an audit hook that records every file opened for writing, every
    file-system change, socket and process, from a working directory that must stay empty."""
    code = textwrap.dedent(f"""
        import os, sys
        sys.dont_write_bytecode = True  # a .pyc written by a lazy import is not the analysis writing
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_fit_study import planted_frame
        import scalestudy.analysis as analysis
        frame = planted_frame()
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
        seen = []
        def audit(event, args):
            if event == "open" and (isinstance(args[1], str) and set(args[1]) & set("wax+")
                                    or (args[2] or 0) & writes):
                seen.append((event, str(args[0])))
            elif event.split(".")[0] in ("socket", "subprocess") or event in (
                    "os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.replace", "os.symlink", "os.link",
                    "os.truncate", "os.chmod", "os.utime", "shutil.rmtree", "os.system", "os.exec", "os.fork"):
                seen.append((event, str(args[0]) if args else ""))
        sys.addaudithook(audit)
        fits = analysis.fit_study(frame)
        assert isinstance(fits, analysis.StudyFits), type(fits)
        assert abs(fits.law_fit.alpha - 1.0) < 0.05, fits.law_fit.alpha
        assert seen == [], seen
        assert os.listdir(".") == [], os.listdir(".")
        print(sorted(m for m in ("torch", "ray", "mlflow", "matplotlib") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_fit_study_is_a_function_of_the_table(fits):
    again = fit_study(planted_frame())  # a DataFrame is validated into a TrialTable first
    assert isinstance(again, StudyFits) and again == fits
    # The seed only drives the breakdown test's simulations: the same law, a p-value within Monte Carlo error.
    other = fit_study(planted_frame(), FitOptions(seed=1))
    assert other.law_fit.alpha == fits.law_fit.alpha and other.law_fit.breakdown.outcome == "breakdown"


def test_files_come_from_the_export_step_only(fits, tmp_path):
    law = build_law(fits)
    assert list(tmp_path.iterdir()) == []
    written = write_files(TrialTable.from_frame(planted_frame()), law, tmp_path)
    assert sorted(p.name for p in written) == ["law.json", "law.yaml", "trials.parquet"]
    assert ScalingLaw.load(tmp_path / "law.json") == ScalingLaw.load(tmp_path / "law.yaml") == law


LAW_KEYS = {  # law.json, schema scalestudy.law/v1: every mapping's keys, in the file's order
    "": ["schema", "form", "k", "alpha", "beta", "ci95", "breakdown_batch_size", "domain", "dataset_size",
         "fitted_on", "provenance", "gamma", "r2", "prediction", "breakdown_test", "smooth_bend", "noise_scale_opt",
         "gap_slope",
         "gradient_noise_scale", "critical_batch_size", "compute", "reasons", "notes", "cells", "units", "optimizer",
         "objective", "adamw", "surge", "group"],
    "ci95": ["k", "alpha", "beta", "breakdown_batch_size"],
    "domain": ["batch_size", "momentum"],
    "objective": ["metric", "direction"],
    "prediction": ["parameters", "covariance", "dof", "t95", "cell_scatter", "shared_shape_variance"],
    "fitted_on": ["cells", "trials", "excluded_cells", "above_breakdown", "bounded_by_divergence", "weighting"],
    "provenance": ["experiment", "input_file", "tracking_uri", "parent_run_id", "spec_hash", "scalestudy_version",
                   "created"],
    "breakdown_test": ["outcome", "reason", "p_value", "candidate_batch_size", "last_batch_size_in_law"],
    "smooth_bend": ["form", "lr_max", "alpha", "beta", "noise_batch_size", "ci95", "noise_batch_size_at_least",
                    "preferred", "p_hinge", "p_smooth", "reason", "cells"],
    "smooth_bend.ci95": ["alpha", "noise_batch_size"],
    "noise_scale_opt": ["value", "ci95", "log_sd", "slope_vs_log_batch_size", "slope_ci95"],
    "gap_slope": ["per", "value", "ci95", "vs_noise_scale"],
    "gap_slope.vs_noise_scale": ["per", "value", "ci95"],
    "gradient_noise_scale": ["value", "iqr", "trials", "taken", "breakdown_batch_size", "breakdown_ci95",
                             "ratio_to_breakdown", "within_breakdown_ci95", "cells"],
    "gradient_noise_scale.cells[]": ["batch_size", "momentum", "value"],
    "critical_batch_size": ["steps_to_target", "gradient_noise", "lr_breakdown", "agreement", "summary"],
    "critical_batch_size.steps_to_target": ["value", "ci95", "s_min", "e_min", "momentum", "dataset_size",
                                            "batch_sizes", "updates", "rss_limit", "lrs", "target", "lines"],
    "critical_batch_size.steps_to_target.lines[]": ["value", "ci95", "s_min", "e_min", "momentum", "dataset_size",
                                                    "batch_sizes", "updates", "rss_limit", "lrs"],
    "critical_batch_size.gradient_noise": ["value", "ci95"],
    "critical_batch_size.lr_breakdown": ["value", "ci95"],
    "compute": ["trials", "finished", "diverged", "stopped", "trial_epochs", "updates", "train_hours", "cpu_hours",
                "gpu_hours", "notes"],
    "cells[]": ["batch_size", "momentum", "lr_opt", "ci95", "seed_range", "lr_bound", "status", "used", "trials",
                "seeds"],
    "units": ["lr", "batch_size", "noise_scale", "dataset_size", "gradient_noise_scale", "compute"],
}


def test_law_json_keys_are_pinned(fits, tmp_path):
    data = json.loads(build_law(fits).save(tmp_path / "law.json").read_text())
    found = {}

    def walk(value, path):
        if isinstance(value, dict) and path != "reasons":
            found[path] = list(value)
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            walk(value[0], f"{path}[]")

    walk(data, "")
    assert found == LAW_KEYS
    # A law fitted at one N says so: gamma is null, and why (the only reason in this file).
    assert data["gamma"] is None and data["reasons"] == {
        "gamma": f"single dataset size (N={data['dataset_size']}): the law holds at the N it was fitted at; "
                 "vary grid.dataset_size to fit gamma"}
    assert data["breakdown_test"]["outcome"] == "breakdown"


def test_a_law_file_of_the_first_v1_release_loads_and_predicts(tmp_path):
    """law.json as the first release wrote it: no breakdown_test, compute or gradient_noise_scale;
    cells without seed_range or lr_bound; fitted_on without bounded_by_divergence or weighting."""
    first = {"schema": "scalestudy.law/v1", "form": "lr = k * B^alpha * (1-m)^beta", "k": 0.001, "alpha": 1.0,
             "beta": 1.0, "ci95": {"k": [0.0009, 0.0011], "alpha": [0.98, 1.02], "beta": [0.97, 1.03],
                                   "breakdown_batch_size": None},
             "breakdown_batch_size": None, "domain": {"batch_size": [16.0, 1024.0], "momentum": [0.0, 0.9]},
             "dataset_size": 50000, "fitted_on": {"cells": 21, "trials": 462, "excluded_cells": [],
                                                  "above_breakdown": []},
             "provenance": {"experiment": "quickstart", "input_file": None, "tracking_uri": "sqlite:///mlflow.db",
                            "parent_run_id": "abc", "spec_hash": "123", "scalestudy_version": "0.1.0",
                            "created": "2026-01-01T00:00:00+00:00"},
             "r2": 0.999, "noise_scale_opt": {"value": 49.6, "ci95": [49.0, 50.0], "log_sd": 0.01,
                                              "slope_vs_log_batch_size": 0.0, "slope_ci95": [-0.01, 0.01]},
             "gap_slope": {"per": "doubling of batch size", "value": 0.01, "ci95": [0.009, 0.011]},
             "reasons": {"breakdown_batch_size": "too few batch sizes"}, "notes": [],
             "cells": [{"batch_size": 16, "momentum": 0.0, "lr_opt": 0.016, "ci95": [0.015, 0.017], "status": "ok",
                        "used": True, "trials": 22, "seeds": 2}],
             "units": {"lr": "per optimizer update", "batch_size": "examples per update",
                       "noise_scale": "g = lr/(1-m)*(N/B-1), units of lr", "dataset_size": "training examples"}}
    (tmp_path / "law.json").write_text(json.dumps(first))
    law = ScalingLaw.load(tmp_path / "law.json")
    assert law.breakdown_test is None and law.compute is None and law.gradient_noise_scale is None
    assert law.cells[0].seed_range is None and law.fitted_on.weighting is None and law.gap_slope.vs_noise_scale is None
    assert law.ci95.alpha == (0.98, 1.02) and law.noise_scale_opt.value == 49.6
    assert law.predict(batch_size=256, momentum=0.9).lr == pytest.approx(1e-3 * 256 * 0.1)
    again = law.to_dict()  # written back: the same values, the keys added since then as null or empty
    assert {key: again[key] for key in first} == {**first, "fitted_on": {**first["fitted_on"],
                                                                          "bounded_by_divergence": [],
                                                                          "weighting": None},
                                                  "cells": [{**first["cells"][0], "seed_range": None,
                                                             "lr_bound": None}]}
    assert ScalingLaw.from_dict(again) == law
