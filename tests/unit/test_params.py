"""One grammar for variants and nested params, whichever entry point reads them."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from ragsafe.config import ConfigError, stable_hash
from ragsafe.experiments.sweep import load_sweep
from ragsafe.experiments.variants import resolve_variants
from ragsafe.graphs import graphs
from ragsafe.params import (
    ParamSyntaxError,
    format_nested,
    format_variant,
    nested_text,
    parse_nested,
    parse_variant,
    variant_name,
)


@pytest.mark.parametrize("text, want", [
    ("closed_book", ("closed_book", {})),
    (" standard_rag [ k=5 , query=question ] ", ("standard_rag", {"k": "5", "query": "question"})),
    ("standard_rag[k=5,,]", ("standard_rag", {"k": "5"})),
    ("self_consistency[inner=standard_rag,inner_params=k=3;query=question]",
     ("self_consistency", {"inner": "standard_rag", "inner_params": "k=3;query=question"})),
])
def test_parse_variant(text, want):
    assert parse_variant(text) == want


@pytest.mark.parametrize("text, problem", [("standard rag", "is not NAME"), ("x[k]", "'k' in 'k' is not key=value"),
                                           ("x[=3]", "is not key=value"), ("1x", "is not NAME")])
def test_bad_variant_text_says_what_and_how(text, problem):
    with pytest.raises(ParamSyntaxError, match=problem) as e:
        parse_variant(text)
    assert "write e.g." in e.value.fix


def test_variant_text_round_trips():
    name, params = parse_variant("hybrid_rag[weights=1;0,k=3]")
    assert format_variant(name, params) == "hybrid_rag[weights=1;0,k=3]"
    assert format_variant("closed_book", {}) == "closed_book"
    assert variant_name("standard_rag[k=5]") == "standard_rag" and variant_name("closed_book") == "closed_book"


def test_nested_params_from_text_or_mapping_are_the_same():
    assert parse_nested("k=3; query=question;") == {"k": "3", "query": "question"} == \
        parse_nested({"k": 3, "query": "question"})
    assert parse_nested({"flag": True, "x": None, "t": 0.5}) == {"flag": "true", "x": "none", "t": "0.5"}
    assert format_nested({"k": 3, "query": "question"}) == "k=3;query=question"
    assert parse_nested(None) == {} and nested_text(None) == ""
    assert nested_text(" k=3 ") == " k=3 "  # text is stored as written (run folders keep their hash)
    with pytest.raises(ParamSyntaxError, match="is not key=value"):
        parse_nested("k")
    with pytest.raises(ParamSyntaxError, match="holds one of"):
        format_nested({"q": "a;b"})
    with pytest.raises(ParamSyntaxError, match="string, number or boolean"):
        parse_nested({"k": [1, 2]})


def test_self_consistency_takes_inner_params_as_mapping_or_old_text_with_one_config_hash():
    sc = graphs.get("self_consistency")
    old = sc.make_params({"inner": "standard_rag", "inner_params": "k=3;query=question+options"})
    new = sc.make_params({"inner": "standard_rag", "inner_params": {"k": 3, "query": "question+options"}})
    assert old == new and old.inner_overrides == {"k": "3", "query": "question+options"}
    assert stable_hash(dataclasses.asdict(old)) == stable_hash(dataclasses.asdict(new))
    inner = graphs.get("standard_rag").make_params(new.inner_overrides)
    assert (inner.k, inner.query) == (3, "question+options")
    with pytest.raises(ConfigError, match="inner_params"):
        sc.make_params({"inner": "standard_rag", "inner_params": {"k": [3]}})


def test_a_str_param_refuses_a_mapping_instead_of_stringifying_it():
    with pytest.raises(ConfigError, match="standard_rag.query"):
        graphs.get("standard_rag").make_params({"query": {"a": 1}})


def test_cli_and_sweep_read_the_same_variant_text_the_same_way(tmp_path):
    text = "standard_rag[query=question,k=5]"
    cli = resolve_variants([text], [])[0]
    sweep_file = tmp_path / "s.yaml"
    sweep_file.write_text(textwrap.dedent(f"""
        benchmark: demo
        endpoints: [{{model: m, base_url: "http://127.0.0.1:9/v1"}}]
        graphs: ["{text}"]
        self_consistency: {{over: ["{text}"], n: 2}}
    """))
    from_sweep = resolve_variants(load_sweep(sweep_file).graph_specs, [])
    assert cli.label == from_sweep[0].label == "standard_rag[k=5,query=question]"
    assert from_sweep[0].params == cli.params
    sc = from_sweep[1]
    assert sc.label == "self_consistency[inner=standard_rag,inner_params=query=question;k=5,n=2]"
    assert graphs.get("standard_rag").make_params(sc.params.inner_overrides) == cli.params


def test_grid_replaces_an_inline_value_of_the_same_key():
    vs = resolve_variants(["standard_rag[k=1,query=question]"], [], ["standard_rag.k=2,3"])
    assert [v.label for v in vs] == ["standard_rag[k=2,query=question]", "standard_rag[k=3,query=question]"]
    with pytest.raises(ConfigError, match="--graph 'standard_rag\\[k\\]'"):
        resolve_variants(["standard_rag[k]"], [])
