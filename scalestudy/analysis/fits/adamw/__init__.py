"""AdamW's timescales against B, fitted from the trial table (issue 24).

* :mod:`.decay_optimum`: λ* (the optimal weight decay) of each cell with its 95 % interval, through
  the ε* machinery over ln λ, and τ*_epoch = B/(ε·λ*·N) from it (Wang & Aitchison 2025);
* :mod:`.exponent`: y* ∝ B^x across cells, weighted like the law, with the test of a rule's x;
* :mod:`.timescales`: both together, λ* ∝ B^x (Power Lines: x = 1) and τ*_epoch ∝ B^x (x = 0), and
  the β2 and model-EMA half-lives the grid held fixed.
"""
