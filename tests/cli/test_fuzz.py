"""Fuzzed input validation: every mutation of a shipped spec, a ``--set`` value, a law file or a
trial table either works or gives exactly one ``error:`` line with exit code 2, and never a
traceback or the CLI's "unexpected" catch-all (that one means a bug, not a message).

The CLI runs in-process (``main([...])``), so an example costs milliseconds, not a Python
start. Hypothesis is derandomized and keeps no database: CI sees the same examples every run.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalestudy.cli import main

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted((REPO / "search_spaces").glob("*.yaml")) + sorted((REPO / "search_spaces" / "small").glob("*.yaml"))
FUZZ = dict(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


def assert_clean(argv: list[str], ok_codes: tuple[int, ...] = (0,)) -> tuple[int, str]:
    code, out, err = run(argv)
    assert "Traceback" not in out + err, (argv, err)
    if code in ok_codes:
        assert out.strip(), (argv, err)
        return code, out
    lines = err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)
    assert "unexpected" not in lines[0], (argv, err)  # the catch-all: a bug to fix, not a message
    return code, lines[0]


# --- mutations of a nested YAML/JSON document ------------------------------------------------

HUGE = [10**30, -10**30, 2**63, 1e308, -1e308]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**6, max_value=10**6), st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, 0, -1, 0.0]),
    st.text(max_size=12), st.sampled_from(["", "mnist1d", "yes", "1e-3", "[1, 2]", "constant"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=6), scalars, max_size=2),
                   st.builds(list), st.builds(dict))


def paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node of the document (mapping keys and list indices)."""
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mutated(draw, document: Any) -> Any:
    """One to three mutations: replace a node, delete it, add an unknown key, empty a list, or put a
    scalar where a mapping was."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(document)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        kind = draw(st.sampled_from(["replace", "replace", "delete", "unknown", "empty", "scalar"]))
        if kind == "replace":
            parent[key] = copy.deepcopy(draw(values))  # drawn values may be shared: never mutate them
        elif kind == "delete":
            del parent[key]
        elif kind == "unknown" and isinstance(parent[key], dict):
            parent[key][draw(st.sampled_from(["typo", "epoch", "batchsize", "x"]))] = draw(scalars)
        elif kind == "empty":
            parent[key] = [] if isinstance(parent[key], list) else {}
        else:
            parent[key] = draw(scalars)
    return document


def dump_yaml(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


# --- specs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", SPECS, ids=[f"{p.parent.name}/{p.name}" for p in SPECS])
def test_mutated_specs_validate_or_give_one_error_line(spec, tmp_path):
    document = yaml.safe_load(spec.read_text())
    target = tmp_path / "spec.yaml"

    @settings(**FUZZ, max_examples=40)
    @given(mutated(document))
    def check(doc):
        target.write_text(dump_yaml(doc))
        assert_clean(["validate", str(target)])

    check()
    assert not (tmp_path / "mlflow.db").exists()


SET_KEYS = ["name", "workload", "workload.epochs", "workload.dataset", "workload.dataset_options",
            "workload.dataset_options.train_size", "workload.model_options", "workload.ghost_batch_size",
            "workload.max_device_batch_size", "grid", "grid.batch_size", "grid.lr", "grid.lr.multipliers",
            "grid.momentum", "grid.seeds", "schedule", "schedule.kind", "schedule.factor", "schedule.milestones",
            "sections", "sections.law", "sections.schedules.schedule", "sections.new.grid", "resources",
            "resources.workers_per_trial", "resources.max_concurrent_trials", "search", "search.algorithm",
            "search.trials_per_cell", "search.lr_range", "search.early_stopping", "diagnostics.sharpness",
            "diagnostics.target_accuracy", "tracking", "tracking.uri", "typo", "grid.lr.x.y", ""]
SET_TEXTS = st.one_of(
    st.text(max_size=16),
    st.sampled_from(["", "[", "{", "]]", "null", "~", ".nan", ".inf", "-.inf", "1e400", "-1", "0", "1e-3", "[]",
                     "{}", "[0]", "[1e30]", "[.nan]", "[-.inf]", "99999999999999999999999", "{a: 1}", "yes",
                     "!!python/object:os.system ls", "&a [*a]", "x: y: z", "'\x00'", "[1, 2, 3]", "mnist1d"]),
    values.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip().replace("\n", " ")),
)


@settings(**FUZZ, max_examples=150)
@given(key=st.sampled_from(SET_KEYS), text=SET_TEXTS, sep=st.sampled_from(["=", "=", ":", ""]))
def test_fuzzed_set_values_validate_or_give_one_error_line(key, text, sep):
    assert_clean(["validate", str(REPO / "search_spaces" / "quickstart.yaml"), "--set", f"{key}{sep}{text}"])


# --- law files through `recommend` -------------------------------------------------------------

def valid_law() -> dict[str, Any]:
    from law_files import make_law

    return make_law().to_dict()


@settings(**FUZZ, max_examples=150)
@given(law=mutated(valid_law()), batch=st.one_of(st.sampled_from([1, 64, 1024, 10**6, 10**400]),
                                                  st.integers(1, 10**9)),
       momentum=st.sampled_from([None, "0", "0.9", "0.999999", "0.5"]), suffix=st.sampled_from([".json", ".yaml"]))
def test_fuzzed_law_files_recommend_or_give_one_error_line(tmp_path_factory, law, batch, momentum, suffix):
    path = tmp_path_factory.mktemp("law") / f"law{suffix}"
    path.write_text(json.dumps(law) if suffix == ".json" else dump_yaml(law))
    argv = ["recommend", "--law", str(path), "--batch-size", str(batch)] + (["--momentum", momentum] if momentum else [])
    code, text = assert_clean(argv)
    if code == 0:
        assert text.startswith("lr = ")


BROKEN_LAWS = [b"", b"\xff\xfe\x00\x01", b"{", b"[]", b"null", b"{\"schema\": 1}", b"[[[[[[[[[[" * 10000, b"NaN",
               b"{\"a\": NaN}"]


@pytest.mark.parametrize("content", BROKEN_LAWS, ids=[str(i) for i in range(len(BROKEN_LAWS))])
def test_broken_law_files_give_one_error_line(tmp_path, content):
    for name in ("law.json", "law.yaml"):
        (tmp_path / name).write_bytes(content)
        assert_clean(["recommend", "--law", str(tmp_path / name), "--batch-size", "64"])


# --- trial tables through `analyze --runs` ------------------------------------------------------

def valid_table():
    from planted import make_planted_table

    return make_planted_table(seeds=(0,), batch_sizes=(32, 64, 128, 256), momenta=(0.0,), lr_points=5,
                              dataset_size=4096)


COLUMN_VALUES = st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, 1e300, 2**62, "x", None, True, 0.5])


@st.composite
def mutated_table(draw):
    import pandas as pd

    frame = valid_table()
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["cell", "column", "drop", "unknown", "empty", "dtype"]))
        column = draw(st.sampled_from(list(frame.columns)))
        if kind == "cell" and len(frame):
            row = draw(st.integers(0, len(frame) - 1))
            frame[column] = frame[column].astype(object)
            frame.loc[row, column] = draw(COLUMN_VALUES)
        elif kind == "column":
            frame[column] = draw(COLUMN_VALUES)
        elif kind == "drop":
            frame = frame.drop(columns=[column])
        elif kind == "unknown":
            frame["extra_" + draw(st.text("abc", min_size=1, max_size=3))] = draw(COLUMN_VALUES)
        elif kind == "empty":
            frame = frame.iloc[:0]
        else:
            frame[column] = frame[column].astype(str)
    # Parquet wants one type per column: mixed object columns become strings, as a user's export would.
    for name in frame.columns:
        if frame[name].dtype == object and frame[name].map(type).nunique() > 1:
            frame[name] = frame[name].map(lambda v: None if v is None else str(v))
    return pd.DataFrame(frame)


@settings(**FUZZ, max_examples=15)  # an analysis fits and draws: about 2 s each
@given(frame=mutated_table())
def test_fuzzed_trial_tables_analyze_or_give_one_error_line(tmp_path_factory, frame):
    root = tmp_path_factory.mktemp("table")
    frame.to_parquet(root / "trials.parquet")
    code, _ = assert_clean(["analyze", "--runs", str(root / "trials.parquet"), "--out", str(root / "out")])
    if code == 2:
        assert not (root / "out").exists()
