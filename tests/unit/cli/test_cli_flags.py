"""The command line's own contract: every flag explains itself, --split names its choices."""

from __future__ import annotations

import argparse

import pytest

from ragsafe.cli.main import build_parser


def _walk(p: argparse.ArgumentParser, path: str = "ragsafe"):
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield path, f"subcommand {name}", helps.get(name)
                yield from _walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, "/".join(action.option_strings) or action.dest, action.help


def test_every_flag_and_subcommand_has_help_text():
    seen = list(_walk(build_parser()))
    assert len(seen) > 60  # the walk reached the nested groups (runs list, graphs show, ...)
    missing = [f"{path}: {name}" for path, name, text in seen if not (text and text.strip())]
    assert not missing, "no help text:\n" + "\n".join(missing)


def test_the_walk_finds_a_flag_without_help():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    sub.add_parser("x", help="x").add_argument("--bare")
    assert [n for _, n, t in _walk(ap) if not t] == ["--bare"]


@pytest.mark.parametrize("cmd", [["run", "--graph", "closed_book"], ["retrieval-eval"]])
def test_split_offers_dev_test_all_and_defaults_to_all(cmd, capsys):
    a = build_parser().parse_args(cmd)
    assert a.split == "all"
    assert build_parser().parse_args(cmd + ["--split", "dev"]).split == "dev"
    with pytest.raises(SystemExit):
        build_parser().parse_args(cmd + ["--split", "None"])
    assert "{dev,test,all}" in capsys.readouterr().err


def test_split_all_means_no_split_filter():
    from ragsafe.cli.common import split_of

    assert split_of(build_parser().parse_args(["run", "--graph", "closed_book"])) is None
    assert split_of(build_parser().parse_args(["run", "--graph", "closed_book", "--split", "test"])) == "test"
