"""The registry type: lookups fill it, errors list the valid names, snapshot/restore undo registrations."""

from __future__ import annotations

import pytest

from ragsafe import registry
from ragsafe.registry import Registry, UnknownName


def test_lookup_lists_valid_names_and_a_name_registers_once():
    r = Registry[object]("widget")
    r.add("b", 1)
    r.add("a", 2)
    r.add("a", 2)  # the same object again is a no-op
    assert r.names() == ["a", "b"] and r.in_order() == ["b", "a"]
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        r.add("a", 3)
    with pytest.raises(UnknownName, match="unknown widget 'c'; valid names: a, b"):
        r.get("c")


def test_restore_removes_what_was_registered_after_the_snapshot():
    from ragsafe.evals.metrics import metric, metric_names
    from ragsafe.graphs import graphs

    snap = registry.snapshot()
    names = metric_names()

    @metric("_snapshot_probe", higher_is_better=True)
    def probe(s, q):
        return 1.0

    graphs.add("_snapshot_graph", graphs.get("closed_book"))
    assert "_snapshot_probe" in metric_names() and "_snapshot_graph" in graphs
    registry.restore(snap)
    assert metric_names() == names and "_snapshot_graph" not in graphs
