"""ε* of one cell: where the optimum of its objective-vs-ε curve lies, and how well it is known.

* :mod:`.frontier`: every cell's ε* and its 95 % interval (:func:`~.frontier.fit_frontier`), as
  :mod:`.optimum` holds them (:class:`~.optimum.CellOptimum`, :class:`~.optimum.Frontier`);
* :mod:`.peak`: the peak of one curve and its three-point vertex;
* :mod:`.mode_set`: the 95 % set of a unimodal curve's mode;
* :mod:`.vertex_spread`: where the vertex can lie under the seeds' noise;
* :mod:`.seed_noise`: the seeds' noise in a cell, moderated by the study's other cells;
* :mod:`.censored`: trials stopped early with a bound on their final objective, as censored observations;
* :mod:`.law_weight`: how much a cell's ε* weighs in the law (the variance of its ln ε*).
"""
