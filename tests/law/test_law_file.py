"""law.json / law.yaml: round trip, prediction, warnings, malformed files → one-line errors."""

import json
import math

import pytest

from law_files import make_law
from scalestudy.law import (
    FORM,
    SCHEMA,
    LawError,
    LawFileError,
    PredictionError,
    ScalingLaw,
)


@pytest.mark.parametrize("name", ["law.json", "law.yaml"])
def test_save_load_round_trip_and_predict(tmp_path, name):
    law = make_law()
    loaded = ScalingLaw.load(law.save(tmp_path / name))
    assert loaded == law
    assert loaded.to_dict()["schema"] == SCHEMA and loaded.form == FORM
    prediction = loaded.predict(batch_size=256, momentum=0.9)
    assert prediction.lr == pytest.approx(1e-3 * 256 * 0.1)
    assert prediction.noise_scale == pytest.approx(prediction.lr / 0.1 * (50_000 / 256 - 1))
    assert prediction.warnings == []
    assert "lr = 0.0256" in prediction.describe()


def test_the_law_is_typed(tmp_path):
    law = ScalingLaw.load(make_law().save(tmp_path / "law.json"))
    assert law.ci95.alpha == (0.98, 1.02) and law.ci95.alpha.low == 0.98
    assert law.domain.batch_size == (16.0, 1024.0) and law.breakdown_test.outcome == "breakdown"
    assert law.gradient_noise_scale.iqr.high == 560.0 and law.compute.cpu_hours == 3.5
    assert law.provenance.experiment == "quickstart" and law.fitted_on.cells == 21


def test_json_has_the_documented_fields(tmp_path):
    data = json.loads(make_law().save(tmp_path / "law.json").read_text())
    for key in ("schema", "form", "k", "alpha", "beta", "ci95", "breakdown_batch_size", "noise_scale_opt",
                "gap_slope", "gradient_noise_scale", "compute", "domain", "dataset_size", "fitted_on", "provenance"):
        assert key in data
    assert set(data["ci95"]) >= {"k", "alpha", "beta", "breakdown_batch_size"}


def test_files_without_a_breakdown_test_still_load(tmp_path):
    """law.json written before the breakdown test's outcome was recorded: the key is optional."""
    data = make_law().to_dict()
    del data["breakdown_test"]
    (tmp_path / "law.json").write_text(json.dumps(data))
    assert ScalingLaw.load(tmp_path / "law.json").breakdown_test is None


def test_files_without_a_smooth_bend_still_load(tmp_path):
    """law.json written before the smooth bend was fitted (issue 19): the key is optional; one with it
    reads back typed, an interval open above as its low end."""
    data = make_law().to_dict()
    del data["smooth_bend"]
    (tmp_path / "law.json").write_text(json.dumps(data))
    assert ScalingLaw.load(tmp_path / "law.json").smooth_bend is None
    bend = make_law().smooth_bend
    assert bend.ci95.noise_batch_size.high == 2500.0 and bend.preferred == "either" and bend.gamma is None
    unbounded = make_law(smooth_bend={"form": "lr = lr_max * (1-m)^beta / (1 + B_noise/B)^alpha", "alpha": 0.98,
                                      "ci95": {"alpha": [0.9, 1.05]}, "noise_batch_size_at_least": 3000.0,
                                      "preferred": "either"})
    assert unbounded.smooth_bend.noise_batch_size is None and unbounded.smooth_bend.noise_batch_size_at_least == 3000


def test_an_inconclusive_breakdown_warns_above_its_candidate():
    law = make_law(breakdown_batch_size=None, ci95={"k": None, "alpha": None, "beta": None},
                   breakdown_test={"outcome": "inconclusive", "reason": "a hinge fits better, but not decisively",
                                   "p_value": 0.03, "candidate_batch_size": 300.0})
    assert law.predict(batch_size=256, momentum=0.9).warnings == []
    (warning,) = law.predict(batch_size=512, momentum=0.9).warnings
    assert "inconclusive" in warning and "300" in warning


def test_warnings_outside_the_domain_and_above_the_breakdown():
    law = make_law()
    above = law.predict(batch_size=4096, momentum=0.0)
    assert any("above the breakdown" in w for w in above.warnings)
    assert any("outside the fitted range" in w for w in above.warnings)
    assert any("momentum 0.95 is outside" in w for w in law.predict(batch_size=64, momentum=0.95).warnings)
    small = law.predict(batch_size=8)
    assert small.momentum == 0.0 and any("batch size 8 is outside" in w for w in small.warnings)


def test_single_momentum_law_predicts_only_at_that_momentum():
    law = make_law(beta=None, domain={"batch_size": [16.0, 1024.0], "momentum": [0.9, 0.9]},
                   reasons={"beta": "single momentum (m=0.9)"})
    assert law.predict(batch_size=128).momentum == 0.9
    assert law.predict(batch_size=128).lr == pytest.approx(0.128)
    with pytest.raises(PredictionError, match="single momentum m=0.9") as error:
        law.predict(batch_size=128, momentum=0.0)
    assert "\n" not in str(error.value)
    assert isinstance(error.value, LawFileError)  # the CLI's one-line handler catches it


def test_null_alpha_cannot_predict():
    law = make_law(k=None, alpha=None, reasons={"alpha": "single batch size (B=128)", "k": "needs alpha"})
    with pytest.raises(PredictionError, match="single batch size"):
        law.predict(batch_size=128, momentum=0.9)


def test_noise_scale_is_nan_when_the_batch_is_the_whole_dataset():
    prediction = make_law(domain={"batch_size": [16.0, 1e6], "momentum": [0.0, 0.9]},
                          breakdown_batch_size=None, breakdown_test=None).predict(batch_size=50_000)
    assert math.isnan(prediction.noise_scale) and any("dataset size" in w for w in prediction.warnings)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a mapping"),
    ('{"schema": "other/v9"}', "schema must be"),
    ("MISSING_ALPHA", "missing key 'alpha'"),
    ("BAD_K", "k must be a finite number"),
    ("NEGATIVE_K", "k must be > 0"),
    ("BAD_CI", r"ci95.alpha must be \[low, high\]"),
    ("UNKNOWN_KEY", "unknown key 'slope'"),
    ("BAD_COMPUTE", "compute must be a mapping or null"),
    ("BAD_OUTCOME", "breakdown_test.outcome must be one of breakdown, none, inconclusive, got 'maybe'"),
    ("OUTCOME_WITHOUT_BATCH_SIZE", "breakdown_test.outcome is 'breakdown' but breakdown_batch_size is None"),
    ("BAD_P_VALUE", "breakdown_test.p_value must be a finite number"),
    ("UNKNOWN_NESTED_KEY", "unknown key 'ci95.delta'"),
    ("GAMMA_INTERVAL_WITHOUT_GAMMA", "ci95.gamma is set but gamma is null"),
    ("BAD_NESTED_TYPE", r"gradient_noise_scale.iqr must be \[low, high\] or null"),
    ("HUGE_NUMBER", "alpha must be a finite number or null"),
    ("MISSING_NESTED_KEY", "missing key 'fitted_on.cells'"),
    ("BAD_PREFERENCE", "smooth_bend.preferred must be one of smooth, hinge, either, neither, untested"),
    ("BEND_FORM_WITH_GAMMA", "smooth_bend.form must be one of"),
    ("NEGATIVE_NOISE_BATCH", "smooth_bend.noise_batch_size must be > 0"),
    ("BEND_WITHOUT_ALPHA", "missing key 'smooth_bend.alpha'"),
    ("BEND_P_VALUE", r"smooth_bend p-values must lie in \(0, 1\]"),
])
def test_malformed_law_files_give_one_line_errors(tmp_path, content, message):
    good = make_law().to_dict()
    edits = {"MISSING_ALPHA": lambda d: d.pop("alpha"), "BAD_K": lambda d: d.update(k="fast"),
             "NEGATIVE_K": lambda d: d.update(k=-1.0), "BAD_CI": lambda d: d["ci95"].update(alpha=[1.0]),
             "UNKNOWN_KEY": lambda d: d.update(slope=1), "BAD_COMPUTE": lambda d: d.update(compute=[1]),
             "BAD_OUTCOME": lambda d: d["breakdown_test"].update(outcome="maybe"),
             "OUTCOME_WITHOUT_BATCH_SIZE": lambda d: d.update(breakdown_batch_size=None),
             "BAD_P_VALUE": lambda d: d["breakdown_test"].update(p_value="small"),
             "UNKNOWN_NESTED_KEY": lambda d: d["ci95"].update(delta=[1.0, 2.0]),
             "GAMMA_INTERVAL_WITHOUT_GAMMA": lambda d: d["ci95"].update(gamma=[1.0, 2.0]),
             "BAD_NESTED_TYPE": lambda d: d["gradient_noise_scale"].update(iqr="wide"),
             "HUGE_NUMBER": lambda d: d.update(alpha=10**400),
             "MISSING_NESTED_KEY": lambda d: d["fitted_on"].pop("cells"),
             "BAD_PREFERENCE": lambda d: d["smooth_bend"].update(preferred="maybe"),
             "BEND_FORM_WITH_GAMMA": lambda d: d["smooth_bend"].update(gamma=-1.0),
             "NEGATIVE_NOISE_BATCH": lambda d: d["smooth_bend"].update(noise_batch_size=-5.0),
             "BEND_WITHOUT_ALPHA": lambda d: d["smooth_bend"].pop("alpha"),
             "BEND_P_VALUE": lambda d: d["smooth_bend"].update(p_smooth=0.0)}
    if content in edits:
        edits[content](good)
        content = json.dumps(good)
    path = tmp_path / "law.json"
    path.write_text(content)
    with pytest.raises(LawFileError, match=message) as error:
        ScalingLaw.load(path)
    assert "\n" not in str(error.value) and isinstance(error.value, (LawError, ValueError))


def test_bad_yaml_and_missing_file(tmp_path):
    (tmp_path / "law.yaml").write_text("k: [unclosed\n")
    with pytest.raises(LawFileError, match="not valid YAML"):
        ScalingLaw.load(tmp_path / "law.yaml")
    with pytest.raises(LawFileError, match="cannot read law file"):
        ScalingLaw.load(tmp_path / "nope.json")
