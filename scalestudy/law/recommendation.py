"""What ``scalestudy recommend`` prints: the learning rate with its 95 % interval, and where it came from
(the law, its fitted exponents with their intervals, the cells and batch sizes behind it, how far the
interval reaches and whether B lies inside what was fitted). Standard library only."""

from __future__ import annotations

from scalestudy.law.guards import extrapolation_factor, interval_factor
from scalestudy.law.scaling import Prediction, ScalingLaw


def recommendation(law: ScalingLaw, prediction: Prediction) -> list[str]:
    """The lines ``recommend`` prints: ε* first (``lr = ...``, as before), then its reason."""
    lines = [prediction.describe()]
    exponents = ", ".join(f"{name} = {value:.3g}{_interval(getattr(law.ci95, name))}"
                          for name, value in (("k", law.k), ("alpha", law.alpha), ("beta", law.beta),
                                              ("gamma", law.gamma)) if value is not None)
    lines.append(f"  from the law {law.form}: {exponents}")
    span, momenta = law.domain.batch_size, law.domain.momentum
    fitted = f"fitted on {law.fitted_on.cells} cells"
    if span is not None:
        fitted += f" at B = {span.low:g}-{span.high:g}"
    if momenta is not None:
        fitted += f", m = {momenta.low:g}-{momenta.high:g}"
    if law.provenance.experiment:
        fitted += f" (experiment {law.provenance.experiment})"
    factor = interval_factor(prediction)
    width = ("no 95 % interval" if factor is None else
             f"the 95 % interval reaches ×{factor:.3g} above and below the lr")
    far = extrapolation_factor(law, prediction.batch_size)
    inside = (f"B={prediction.batch_size:g} is inside the fitted batch sizes" if far == 1 else
              f"B={prediction.batch_size:g} is ×{far:.3g} outside the fitted batch sizes: extrapolation")
    lines.append(f"  {fitted}; {width}; {inside}")
    if law.beta is None and momenta is not None:
        lines.append(f"  beta unknown: the law holds at m = {momenta.low:g} only, where k includes (1-m)^beta")
    return lines


def _interval(pair) -> str:
    return f" [{pair[0]:.3g}, {pair[1]:.3g}]" if pair else ""


__all__ = ["recommendation"]
