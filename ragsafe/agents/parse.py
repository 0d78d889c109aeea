"""Strict answer-letter parsing (SAFE_SCALE.md "Answer extraction").

An explicit letter choice among the question's options, else None (abstention/unparseable).
Free-text diagnoses are never mapped to a letter. Thinking segments are removed first.
"""

from __future__ import annotations

import re

_THINK = re.compile(r"<(think|thinking|reasoning)>.*?</\1>", flags=re.S | re.I)
_OPEN_THINK = re.compile(r"<(think|thinking|reasoning)>.*\Z", flags=re.S | re.I)
_DECOR = "*_`'\" \t\n"


def strip_thinking(text: str) -> str:
    """Remove ``<think>…</think>`` blocks; an unterminated block swallows the rest of the text."""
    text = _THINK.sub("", text)
    text = _OPEN_THINK.sub("", text)
    # A server that strips the opening tag leaves "...reasoning</think>answer".
    if re.search(r"</(think|thinking|reasoning)>", text, flags=re.I):
        text = re.split(r"</(?:think|thinking|reasoning)>", text, flags=re.I)[-1]
    return text


def parse_letter(text: str | None, letters: list[str] | str) -> str | None:
    """Return the explicitly chosen option letter, or None.

    Accepted forms (case of the letter must be upper unless a cue word precedes it):
    ``B``, ``B.``, ``(B)``, ``**B**``, ``B. Subdural haematoma``, ``B) ...``,
    ``Answer: B``, ``The answer is (B)``, ``Option B``, ``correct option is B``.
    Two different explicit choices (``A or B``) give None.

    Example:
        >>> parse_letter("The answer is (C).", "ABCDE")
        'C'
        >>> parse_letter("Subdural haematoma", "ABCDE") is None
        True
    """
    if not text:
        return None
    valid = set(letters)
    t = strip_thinking(text).strip()
    if not t:
        return None
    core = t.strip(_DECOR)
    # 1. the whole reply is a letter, maybe wrapped: "B", "(B)", "B.", "[B]"
    m = re.fullmatch(r"[\(\[]?([A-Z])[\)\]]?[.:)]?", core)
    if m:
        return m.group(1) if m.group(1) in valid else None
    # 2. cue phrases: "answer: B", "answer is (B)", "option B", "choice: B"
    cue = re.compile(
        r"\b(?:answer|option|choice|letter)\s*(?:is|would be|:|-)?\s*[:\-]?\s*[\(\[\*]*([A-Za-z])[\)\]\*]*(?![A-Za-z])",
        flags=re.I,
    )
    found = set()
    for m in cue.finditer(t):
        letter, after = m.group(1), t[m.end() : m.end() + 1]
        # a lower-case letter after a cue counts only when nothing word-like follows ("answer: b."),
        # so "the answer is a subdural haematoma" stays unparsed
        if letter.islower() and after and not re.match(r"[.)\]:,;!\s]", after):
            continue
        if letter.islower() and re.match(r"\s+[a-z]", t[m.end() :]):
            continue
        found.add(letter.upper())
    found = {f for f in found if f in valid}
    # 3. the reply starts with a letter followed by a delimiter: "B. Subdural", "(B) ...", "B) ...", "B: ..."
    m = re.match(r"[\*_`\s]*[\(\[]?([A-Z])(?:[\)\]][\s.:]*|[.:](?:\s|$)|\s*-\s)", t)
    if m and m.group(1) in valid:
        found.add(m.group(1))
        rest = t[m.end() :]
        # an enumeration of options ("A. x B. y") is not a choice
        if {x for x in re.findall(r"(?<![A-Za-z])([A-Z])[.)](?:\s|$)", rest) if x in valid and x != m.group(1)}:
            return None
    # two different explicit choices ("C. Stone ... the answer is D") are no choice at all
    return found.pop() if len(found) == 1 else None


ABSTENTION_PHRASE = "insufficient evidence"
"""What a graph allowed to abstain is told to answer when it cannot choose."""

_ABSTAIN = re.compile(r"^[\W_]*(?:answer\s*[:\-]?\s*)?insufficient[\s_-]+evidence[\W_]*$", flags=re.I)


def is_abstention(text: str | None, letters: list[str] | str) -> bool:
    """True when the reply is an explicit abstention ("insufficient evidence") and chooses no letter.

    Only the phrase itself counts (decoration, an "Answer:" cue and trailing punctuation allowed), so
    an abstention stays distinct from an unparseable reply, which is a null.

    Example:
        >>> is_abstention("Insufficient evidence.", "ABCD"), is_abstention("B", "ABCD")
        (True, False)
    """
    if not text:
        return False
    t = strip_thinking(text).strip()
    return bool(_ABSTAIN.match(t)) and parse_letter(t, letters) is None
