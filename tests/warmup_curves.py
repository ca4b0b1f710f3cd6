"""Small CBS curves and the batch warmups they give, for the warmup's exports' tests."""

from scalestudy.law.batch_warmup import warmup_from_cbs
from scalestudy.law.cbs import CBS_SCHEMA, CBSCurve, CBSPoint
from scalestudy.law.records import Interval


def cbs_curve(base_batch_size=8, base_lr=0.05, rule="linear", optimizer="sgd", dataset_size=100, total=600,
              points=((100, 20.0, 17.0, 30.0), (300, 40.0, 33.0, 60.0))):
    """CBS(t) at checkpoints (examples, cbs, ci low, ci high): with the defaults, B 8 → 16 → 32."""
    rows = tuple(CBSPoint(i, examples, examples // base_batch_size, 1.0, cbs, Interval(low, high), None,
                          (8, 16, 32, 64)) for i, (examples, cbs, low, high) in enumerate(points))
    return CBSCurve(CBS_SCHEMA, base_batch_size, base_lr, 0.9 if optimizer == "sgd" else 0.9, optimizer, rule, 0.01,
                    64, dataset_size, total, rows)


def small_warmup(**curve):
    """B 8 → 16 at examples 112 (step 14) → 32 at examples 320 (step 27): 35 updates, 576 examples, N = 100."""
    return warmup_from_cbs(cbs_curve(**curve), source="cbs.json")
