"""Strict letter parsing (SAFE_SCALE.md "Answer extraction")."""

import pytest

from ragsafe.agents.parse import parse_letter, strip_thinking

ABCD = "ABCD"


@pytest.mark.parametrize("text, expected", [
    ("B", "B"), ("B.", "B"), ("(B)", "B"), ("**B**", "B"), (" C\n", "C"), ("[D]", "D"),
    ("B. Subdural haematoma", "B"), ("B) epidural", "B"), ("B - epidural", "B"),
    ("Answer: B", "B"), ("The answer is (C).", "C"), ("Option D", "D"), ("answer: b", "B"),
    ("The correct answer is B. Because it is", "B"),
])
def test_explicit_choices_parse(text, expected):
    assert parse_letter(text, ABCD) == expected


@pytest.mark.parametrize("text", [
    "Subdural haematoma",                 # free-text diagnosis is never mapped to a letter
    "The answer is a subdural haematoma",  # lower-case article after a cue word
    "A or B",                             # two choices
    "C. Stone\n\nThe answer is D.",       # contradictory choices
    "A. x B. y",                          # an enumeration of options
    "E",                                  # not an option of this question
    "", None, "I think",
])
def test_no_explicit_choice_is_null(text):
    assert parse_letter(text, ABCD) is None


def test_thinking_segments_are_removed_before_parsing():
    assert parse_letter("<think>Maybe A, maybe B</think>C", ABCD) == "C"
    assert parse_letter("<think>it is surely A", ABCD) is None  # unterminated thinking: nothing left
    assert parse_letter("reasoning about A...</think>\nD", ABCD) == "D"  # opening tag stripped by server
    assert strip_thinking("x<think>y</think>z") == "xz"


def test_fifth_option_only_valid_when_present():
    assert parse_letter("E", "ABCDE") == "E"
    assert parse_letter("E", "ABCD") is None
