"""What cbs_vs_examples.png draws (issue 23), from a hand-built cbs.json record."""

from scalestudy.analysis.figures.cbs_curve import cbs_figure_info, draw_cbs_curve
from scalestudy.law.batch_warmup import warmup_from_cbs
from scalestudy.law.cbs import CBS_SCHEMA, CBSCurve, CBSPoint
from scalestudy.law.records import Interval


def curve() -> CBSCurve:
    points = (CBSPoint(0, 1000, 62, 2.0, 20.0, None, "below", (16, 32, 64), noise_scale=50.0),
              CBSPoint(1, 4000, 250, 1.5, 40.0, Interval(32, 64), None, (16, 32, 64), noise_scale=120.0),
              CBSPoint(2, 16000, 1000, 1.0, 64.0, Interval(64, 64), "above", (16, 32, 64)))
    return CBSCurve(CBS_SCHEMA, 16, 0.1, 0.9, "sgd", "linear", 0.01, 1000, 1000, 32000, points, workload="w")


def test_the_figure_draws_estimates_with_their_band_censored_points_the_noise_scale_and_the_warmup(tmp_path):
    warmup = warmup_from_cbs(curve())  # lower bounds: B₀ at the 'below' point, 32 from 4000, 64 at 'above'
    info = cbs_figure_info(curve(), warmup)
    assert info.examples == (4000,) and info.cbs == (40.0,) and (info.low, info.high) == ((32,), (64,))
    assert info.censored == ((1000, 16.0, "below"), (16000, 64.0, "above"))
    assert info.noise_examples == (1000, 4000) and info.noise_scale == (50.0, 120.0)
    assert info.warmup_batch == tuple(s.batch_size for s in warmup.stages) + (warmup.stages[-1].batch_size,)
    assert info.warmup_batch[:3] == (16, 32, 64) and info.warmup_examples[-1] == 32000
    assert info.warmup_basis == "lower 95 % bound"
    assert draw_cbs_curve(info, tmp_path / "cbs.png").stat().st_size > 10_000
