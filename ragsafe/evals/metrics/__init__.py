"""Every metric, registered once with its metadata (see :mod:`.registry`), one file per family.

Importing this package registers every family, so the registry holds the same names whatever was
imported first (a family module imports only :mod:`.registry`, never this package's other files
through it). A table's columns follow the registration order within its group, i.e. the order of
the functions in the family's file::

    >>> import ragsafe.evals.metrics as metrics
    >>> metrics.get("sc_accuracy").label
    'SC accuracy'
"""

from ragsafe.evals.metrics import calibration, greedy, retrieval, safety, self_consistency, token
from ragsafe.evals.metrics.registry import (
    DEFAULT_OPTIONS,
    Metric,
    Options,
    get,
    letter_of,
    metric,
    metric_names,
    metrics,
    na_reason,
    per_question,
    select,
    wrong_and,
)

__all__ = ["DEFAULT_OPTIONS", "Metric", "Options", "calibration", "get", "greedy", "letter_of", "metric",
           "metric_names", "metrics", "na_reason", "per_question", "retrieval", "safety", "select", "self_consistency",
           "token", "wrong_and"]
