"""A real tiny study (local Ray, MLflow SQLite in tmp_path) through ``scalestudy run`` and ``analyze``
twice: one cell run per cell holding the mean over seeds of what its trials logged, the trial table
exactly the trial rows; and the MLflow UI, served on a loopback port, shows the cell runs with their
``_mean`` metrics (its REST search always; a headless Chromium through Playwright when one is installed)."""

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from scalestudy.analysis import load_trials_from_mlflow
from scalestudy.analysis.outputs.cell_runs import UI_FILTER
from servers import MlflowServer

pytestmark = pytest.mark.slow

SPEC = {
    "name": "cells",
    "workload": {"dataset": "synthetic", "dataset_options": {"train_size": 256, "test_size": 64},
                 "model": "mlp", "model_options": {"hidden": [16]}, "epochs": 2, "ghost_batch_size": 16},
    "grid": {"batch_size": [32, 64], "lr": [0.05, 0.1, 5000.0], "momentum": [0.9], "seeds": [0, 1]},
    "resources": {"max_concurrent_trials": 2},
}
CELLS, TRIALS = 6, 12  # 2 B × 3 ε, two seeds each; ε = 5000 diverges


def scalestudy(*args, cwd: Path):
    return subprocess.run([sys.executable, "-m", "scalestudy.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=1200)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cells")
    (folder / "cells.yaml").write_text(yaml.safe_dump(SPEC))
    run = scalestudy("run", "cells.yaml", "--quiet", cwd=folder)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    analyses = [scalestudy("analyze", "--experiment", "cells", "--out", "out", cwd=folder) for _ in range(2)]
    for proc in analyses:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("cells").experiment_id
    yield {"folder": folder, "uri": uri, "client": client, "experiment_id": experiment_id, "run": run.stdout,
           "analyses": [proc.stdout for proc in analyses]}
    shutil.rmtree(folder / "ray_results", ignore_errors=True)


def test_run_and_each_analyze_leave_one_run_per_cell(study):
    assert f"{CELLS} cell runs over seeds ({CELLS} written, 0 unchanged)" in study["run"]
    for out in study["analyses"]:  # nothing changed since the run: both analyses keep every cell run
        assert f"MLflow: {CELLS} cell runs over seeds (0 written, {CELLS} unchanged)" in out
    client = study["client"]
    cells = client.search_runs([study["experiment_id"]], UI_FILTER)
    [parent] = client.search_runs([study["experiment_id"]], "tags.`scalestudy.role` = 'study'")
    assert len(cells) == CELLS and len({run.data.tags["scalestudy.cell_key"] for run in cells}) == CELLS
    assert {run.data.tags["mlflow.parentRunId"] for run in cells} == {parent.info.run_id}
    trials = client.search_runs([study["experiment_id"]], "tags.`scalestudy.role` = 'trial'")
    assert len(trials) == TRIALS
    for cell in cells:
        params = cell.data.params
        assert cell.info.run_name == f"B={params['batch_size']} lr={float(params['lr']):.4g} m=0.9 constant"
        seeds = [t for t in trials if all(t.data.params[k] == params[k] for k in ("batch_size", "lr", "momentum"))]
        assert len(seeds) == 2
        if params["lr"] == "5000.0":
            assert cell.data.metrics["n_diverged"] == 2 and params["n_seeds"] == "0"
            continue
        assert params["seeds"] == "0,1" and cell.data.metrics["n_diverged"] == 0
        # The mean over seeds of what the trials logged, epoch by epoch.
        for metric in ("test_acc", "train_loss", "test_loss"):
            logged = {m.step: m.value for m in client.get_metric_history(cell.info.run_id, f"{metric}_mean")}
            expected = {step: np.mean([next(m.value for m in client.get_metric_history(t.info.run_id, metric)
                                            if m.step == step) for t in seeds]) for step in (1, 2)}
            assert logged == pytest.approx(expected), metric
            assert f"{metric}_lo" in cell.data.metrics and f"final/{metric}_hi" in cell.data.metrics


def test_the_trial_table_has_exactly_the_trial_rows(study):
    trial_ids = {run.info.run_id for run in study["client"].search_runs(
        [study["experiment_id"]], "tags.`scalestudy.role` = 'trial'")}
    for method in ("sql", "client"):
        table = load_trials_from_mlflow("cells", study["uri"], method=method)
        assert len(table) == TRIALS and set(table.frame["run_id"]) == trial_ids, method


@pytest.fixture(scope="module")
def server(study):
    """``mlflow server`` on 127.0.0.1 over the study's SQLite store (what ``mlflow ui`` serves)."""
    mlflow_server = MlflowServer(backend_uri=study["uri"], workdir=study["folder"] / "server")
    mlflow_server.workdir.mkdir(exist_ok=True)
    yield mlflow_server.start()
    mlflow_server.stop()


def test_the_ui_server_finds_the_cell_runs_by_their_tag(study, server):
    body = json.dumps({"experiment_ids": [study["experiment_id"]], "filter": UI_FILTER, "max_results": 100})
    request = urllib.request.Request(f"{server.url}/api/2.0/mlflow/runs/search", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        runs = json.load(response)["runs"]
    assert len(runs) == CELLS
    for run in runs:
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        assert metrics["n_seeds"] == float(params["n_seeds"]) and "n_failed" in metrics
        if params["lr"] != "5000.0":  # the diverged cells have counts only
            assert {"test_acc_mean", "test_acc_lo", "test_acc_hi", "final/test_acc_mean"} <= set(metrics)


def chromium() -> str | None:
    """A Chromium for Playwright: $SCALESTUDY_CHROMIUM, Playwright's own, or one on PATH."""
    if os.environ.get("SCALESTUDY_CHROMIUM"):
        return os.environ["SCALESTUDY_CHROMIUM"]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        if Path(playwright.chromium.executable_path).exists():
            return playwright.chromium.executable_path
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
                None)


def test_the_ui_shows_the_cell_runs_and_their_means(study, server):
    pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium: python -m playwright install chromium (or set SCALESTUDY_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SCALESTUDY_SCREENSHOTS", study["folder"]))  # to look at them afterwards
    shots.mkdir(parents=True, exist_ok=True)
    link = (f"{server.url}/#/experiments/{study['experiment_id']}/runs?workflowType=machine_learning"
            f"&searchFilter={urllib.parse.quote(UI_FILTER)}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(240_000)  # the UI's first load on a loaded 2-core machine
            page.goto(link)
            # The filter matches the cell runs only; the table shows them nested under the study's run.
            page.wait_for_selector(f"text={CELLS + 1} matching runs")
            page.locator("div[role=gridcell][col-id*='Run Name'] button").first.click()
            name = "B=32 lr=0.05 m=0.9 constant"
            page.wait_for_selector(f"text={name}")
            assert page.locator("text=seed=").count() == 0  # no trial run among them
            page.screenshot(path=str(shots / "cell_runs_table.png"))
            page.locator(f"a:has-text('{name}')").first.click()
            page.wait_for_selector("text=test_acc_mean")
            text = page.inner_text("body")
            assert "test_acc_hi" in text and "n_seeds" in text
            page.screenshot(path=str(shots / "cell_run.png"))
        finally:
            browser.close()
