"""Study specs: YAML → a typed, frozen, validated :class:`StudySpec`.

Everything that can be checked before a study starts is checked here (types, ranges,
registry names, every epoch of every schedule against the ghost batch size and the
training-set size), so a bad spec fails in well under a second, starts no Ray and
creates no MLflow store. Errors are :class:`SpecError` with a one-line message that
names the field and what is allowed.

* :mod:`~scalestudy.spec.workload`: what a trial trains and measures (also the typed pieces of
  a trial's config);
* :mod:`~scalestudy.spec.schema`: the study (grid, sections, resources, search, tracking);
* :mod:`~scalestudy.spec.objective`: the study's objective and the rule that ranks trials by it;
* :mod:`~scalestudy.spec.load`: files and ``--set`` overrides → a spec, one-line errors;
* :mod:`~scalestudy.spec.checks`: checks across fields (schedules, batches, workers, data size);
* :mod:`~scalestudy.spec.dry_run`: the user's workload trained one step on CPU before anything starts.
"""

from scalestudy.spec.base import SpecError
from scalestudy.spec.checks import check_consistency
from scalestudy.spec.load import (
    MAX_SPEC_BYTES,
    apply_overrides,
    find_search_space,
    format_validation_error,
    load_spec,
    parse_yaml,
    spec_from_dict,
)
from scalestudy.spec.schema import (
    Analysis,
    EarlyStopping,
    Grid,
    LinearRuleLR,
    Resources,
    Search,
    Section,
    StudySpec,
    Tracking,
)
from scalestudy.spec.objective import LEGACY_OBJECTIVE, Objective
from scalestudy.spec.runtime_env import RuntimeEnv
from scalestudy.spec.workload import (
    MAX_EPOCHS,
    DataLoading,
    Diagnostics,
    GradPenalty,
    ModelEMA,
    Optimizer,
    PreciseBN,
    Schedule,
    Sharpness,
    Target,
    Workload,
)

__all__ = [
    "LEGACY_OBJECTIVE", "MAX_EPOCHS", "MAX_SPEC_BYTES", "Analysis", "DataLoading", "Diagnostics", "EarlyStopping", "GradPenalty", "Grid",
    "LinearRuleLR", "ModelEMA", "Objective", "Optimizer", "PreciseBN", "Resources", "RuntimeEnv", "Schedule", "Search", "Section",
    "Sharpness", "SpecError", "StudySpec", "Target", "Tracking",
    "Workload", "apply_overrides", "check_consistency", "find_search_space", "format_validation_error", "load_spec",
    "parse_yaml", "spec_from_dict",
]
