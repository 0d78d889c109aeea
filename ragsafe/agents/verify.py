"""The verifier role: does the evidence support one option of a question?

One JSON-mode call per check. The verdict is ``supported``, ``contradicted`` or ``insufficient``;
the verifier may also name the option the evidence favours instead, the evidence passages that
support or contradict the option, and a search query for what is missing. A reply that does not
parse, or parses without a usable verdict, becomes the recorded fallback ``insufficient`` (the
option stays unverified) with ``fallback: true`` in the trace.

Used by ``verifier_loop`` (check the chosen answer) and by ``option_research`` (judge each
researched option against its evidence).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Unpack

from langchain_core.documents import Document

from ragsafe.agents.structured import STR, Role, Sampling, Structured, obj_schema
from ragsafe.llm.client import LLM

VERDICTS = ("supported", "contradicted", "insufficient")

VERIFY_SYSTEM = (
    "You are a careful radiologist checking evidence. Decide whether the numbered evidence supports "
    "the given option as the answer to the question. Reply with one JSON object only:\n"
    '{"verdict": "supported" or "contradicted" or "insufficient", '
    '"reason": "one short sentence", '
    '"alternative": "letter of the option the evidence favours instead, or empty", '
    '"supporting": [numbers of evidence passages that support the option], '
    '"contradicting": [numbers of evidence passages that argue against it], '
    '"query": "a short search query for the evidence still missing, or empty"}'
)
"""System prompt of the verifier (the reply shape is part of the prompt)."""

VERIFY_USER = (
    "Check the option against the evidence.\n\n"
    "Evidence:\n{evidence}\n\n"
    "Question: {question}\n\n"
    "Options:\n{options}\n\n"
    "Option to check: {letter}. {option}\n\n"
    "JSON:"
)
"""User message. The first line is fixed, so the recorded prompt hash identifies the template."""

ROLE = Role(VERIFY_SYSTEM, VERIFY_USER, max_tokens=120)
"""The trace names the verifier prompt by its system prompt's hash."""
SCHEMA = obj_schema(
    {"verdict": {"enum": list(VERDICTS)}, "reason": STR},
    {"alternative": {"type": "string", "maxLength": 1}, "supporting": {"type": "array", "items": {"type": "integer"}},
     "contradicting": {"type": "array", "items": {"type": "integer"}}, "query": STR},
)

FALLBACK_VERDICT = "insufficient"
_SYNONYMS = {
    "support": "supported",
    "supports": "supported",
    "yes": "supported",
    "true": "supported",
    "refuted": "contradicted",
    "refutes": "contradicted",
    "contradicts": "contradicted",
    "no": "contradicted",
    "false": "contradicted",
    "unknown": "insufficient",
    "unclear": "insufficient",
    "not enough": "insufficient",
    "uncertain": "insufficient",
}


def format_evidence(docs: list[Document], max_chars: int | None = None) -> str:
    """Number the passages ``[1] …`` (each cut to ``max_chars``); "(none)" when there are none."""
    if not docs:
        return "(none)"
    out = []
    for i, d in enumerate(docs, 1):
        text = " ".join(d.page_content.split())
        if max_chars and len(text) > max_chars:
            text = text[:max_chars].rstrip() + " …"
        out.append(f"[{i}] {text}")
    return "\n".join(out)


@dataclasses.dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str = ""
    alternative: str | None = None
    supporting: tuple[int, ...] = ()
    """1-based numbers of the evidence passages that support the option."""
    contradicting: tuple[int, ...] = ()
    query: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "alternative": self.alternative,
            "supporting": list(self.supporting),
            "contradicting": list(self.contradicting),
            "query": self.query,
        }


def _norm_verdict(value: Any) -> str:
    v = " ".join(str(value or "").lower().replace("_", " ").split()).strip(" .!\"'")
    if v in VERDICTS:
        return v
    if v in _SYNONYMS:
        return _SYNONYMS[v]
    for full in VERDICTS:
        if v.startswith(full[:7]):
            return full
    raise ValueError(f"verdict {value!r} is not one of {VERDICTS}")


def _numbers(value: Any, n: int) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    out = []
    for x in value:
        try:
            i = int(str(x).strip().strip("[]"))
        except ValueError:
            continue
        if 1 <= i <= n and i not in out:
            out.append(i)
    return tuple(out)


def validator(letters: list[str], letter: str, n_evidence: int):
    """Turn a parsed JSON object into a :class:`Verdict`; raise ValueError when it has no usable verdict."""

    def validate(obj: dict) -> Verdict:
        verdict = _norm_verdict(obj["verdict"])
        alt = str(obj.get("alternative") or "").strip().strip(".()").upper()
        alt = alt if alt in letters and alt != letter else None
        return Verdict(
            verdict=verdict,
            reason=" ".join(str(obj.get("reason") or "").split())[:300],
            alternative=alt,
            supporting=_numbers(obj.get("supporting"), n_evidence),
            contradicting=_numbers(obj.get("contradicting"), n_evidence),
            query=" ".join(str(obj.get("query") or "").split())[:200],
        )

    return validate


async def verify(
    llm: LLM,
    question: str,
    options: dict[str, str],
    letter: str,
    evidence: list[Document],
    *,
    evidence_chars: int | None = 800,
    **sampling: Unpack[Sampling],
) -> Structured:
    """Ask whether ``evidence`` supports option ``letter``; ``.value`` is always a :class:`Verdict`.

    Args:
        llm: the chat client.
        question: the question stem.
        options: letter -> option text.
        letter: the option to check (e.g. the chosen answer).
        evidence: passages, numbered in the prompt in this order.
        evidence_chars: each passage is cut to this many characters (None: whole passages).
        **sampling: ``max_tokens`` (default 120), ``temperature``, ``seed`` (:class:`~ragsafe.agents.structured.Sampling`).

    Example:
        >>> s = await verify(llm, q.question, q.options, "B", docs)   # doctest: +SKIP
        >>> s.value.verdict, s.fallback                                # doctest: +SKIP
        ('supported', False)
    """
    return await ROLE.ask(
        llm, validate=validator(list(options), letter, len(evidence)),
        fallback=Verdict(FALLBACK_VERDICT, reason="unparsed verifier reply"), schema=SCHEMA,
        evidence=format_evidence(evidence, evidence_chars), question=question, options=options, letter=letter,
        option=options.get(letter, ""), **sampling)


def trace(s: Structured, role: str = "verify", **extra) -> dict[str, Any]:
    """``Structured.trace`` under ``role`` with ``extra`` keys added."""
    return {**s.trace(role), **extra}
