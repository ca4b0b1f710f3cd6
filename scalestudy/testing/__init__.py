"""Test fixtures that ship with scalestudy: trial tables planted from a known scaling law.

Users can test their own analyses (or scalestudy's) against a law whose answer is known:

    from scalestudy.testing.planted import make_planted_table
    frame = make_planted_table(alpha=1.0, beta=1.0, k=1e-3, breakdown=1024)

Nothing here is imported by the product; the benchmarks and the test suite use it.
"""
