"""Search algorithms: how ε is chosen in each (section, schedule, m, B, seed) cell.

Their names live with the spec (:mod:`scalestudy.spec.search_names`, re-exported here); each
algorithm's module is imported when a study is built.
"""

from scalestudy.spec.search_names import SEARCHES

__all__ = ["SEARCHES"]
