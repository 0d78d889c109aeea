"""The decomposer role: split a question into sub-questions that can each be looked up (JSON list).

Used by ``decompose``. An unparseable reply falls back to no sub-questions (recorded as a fallback);
the graph then searches with the question itself.
"""

from __future__ import annotations

from typing import Unpack

from ragsafe.agents.answer import prompt_hash
from ragsafe.agents.structured import STR, Role, Sampling, Structured, obj_schema
from ragsafe.llm.client import LLM

SYSTEM_PROMPT = (
    "You break a radiology multiple-choice question into short, self-contained sub-questions, "
    "each answerable by looking up one condition, finding, sign or procedure in a reference text. "
    'Reply with a JSON object only: {"subquestions": ["...", "..."]}.'
)
"""System instruction of every decomposition call."""

USER_TEMPLATE = "Question: {question}\n\nOptions:\n{options}\n\nWrite at most {n} sub-questions."

PROMPT_HASH = prompt_hash(SYSTEM_PROMPT, USER_TEMPLATE)
ROLE = Role(SYSTEM_PROMPT, USER_TEMPLATE, PROMPT_HASH, max_tokens=160)
MAX_CHARS = 300


def _item_text(item) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):  # {"question": "..."} items
        strings = [v for v in item.values() if isinstance(v, str)]
        return strings[0] if len(strings) == 1 else None
    return None


def parse_subquestions(obj: dict, n: int) -> list[str]:
    """Up to ``n`` distinct non-empty sub-questions from the reply object; ValueError when there are none."""
    items = obj.get("subquestions")
    if not isinstance(items, list):  # a differently named field: take the first list
        items = next((v for v in obj.values() if isinstance(v, list)), None)
    if not isinstance(items, list):
        raise ValueError('no "subquestions" list')
    out: dict[str, str] = {}
    for item in items:
        text = _item_text(item)
        text = " ".join(text.split())[:MAX_CHARS] if text else ""
        if text and text.lower() not in out:
            out[text.lower()] = text
    if not out:
        raise ValueError("the sub-question list is empty")
    return list(out.values())[:n]


async def decompose(
    llm: LLM,
    question: str,
    options: dict[str, str],
    *,
    n: int = 3,
    **sampling: Unpack[Sampling],
) -> Structured:
    """Ask for at most ``n`` sub-questions.

    Args:
        llm: the chat client.
        question: the question stem.
        options: letter -> option text.
        n: maximum number of sub-questions kept.
        **sampling: ``max_tokens`` (default 160), ``temperature``, ``seed`` (:class:`~ragsafe.agents.structured.Sampling`).

    Returns:
        :class:`Structured` whose ``value`` is the list of sub-questions ([] when unparseable).

    Example:
        >>> asyncio.run(decompose(llm, q.question, q.options, n=2)).value  # doctest: +SKIP
        ['What does a giant bulla look like on a radiograph?', 'When is CT needed before a chest drain?']
    """
    return await ROLE.ask(
        llm, validate=lambda obj: parse_subquestions(obj, n), fallback=[],
        schema=obj_schema({"subquestions": {"type": "array", "items": STR, "maxItems": max(n, 1)}}),
        question=question, options=options, n=n, **sampling)
