"""Graph diagrams: Mermaid text and offline PNGs for every registered graph."""

from __future__ import annotations

import struct

import pytest

from ragsafe.graphs import graphs
from ragsafe.graphs.show import draw_png, layers, mermaid


def test_layers_follow_shortest_distance_and_survive_loops():
    nodes = ["__start__", "a", "b", "c", "orphan", "__end__"]
    edges = [("__start__", "a"), ("a", "b"), ("b", "a"), ("b", "c"), ("a", "c"), ("c", "__end__")]
    got = layers(nodes, edges)
    assert got == {"__start__": 0, "a": 1, "b": 2, "c": 2, "__end__": 3, "orphan": 4}


@pytest.mark.parametrize("name", graphs.names())
def test_every_graph_draws_a_png(tmp_path, name):
    out = draw_png(name, tmp_path / f"{name}.png")
    head = out.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert width > 100 and height > 100


def test_params_that_switch_steps_off_change_the_diagram():
    assert "grade" in mermaid("corrective_rag")
    assert "grade" not in mermaid("corrective_rag", {"grade": "false"})


def test_cli_show_writes_the_png(tmp_path, capsys):
    from ragsafe.cli.main import main

    assert main(["graphs", "show", "verifier_loop", "--set", "max_rounds=2", "--png", str(tmp_path / "v.png")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "v.png").stat().st_size > 1000
