"""The relevance-grader role: is this retrieved passage relevant to the question? (JSON yes/no)

Used by ``corrective_rag``. An unparseable verdict takes the caller's fallback verdict and is
recorded as a fallback in the trace.
"""

from __future__ import annotations

from typing import Unpack

from ragsafe.agents.answer import prompt_hash
from ragsafe.agents.structured import Role, Sampling, Structured, obj_schema
from ragsafe.llm.client import LLM

SYSTEM_PROMPT = (
    "You check passages retrieved from a radiology reference. A passage is relevant when it "
    "gives information about the condition, finding, sign or procedure the question asks about, "
    "so that it helps to choose between the options. "
    'Reply with a JSON object only: {"relevant": true} or {"relevant": false}.'
)
"""System instruction of every grading call."""

USER_TEMPLATE = "Question: {question}\n\nOptions:\n{options}\n\nPassage:\n{passage}\n\nIs the passage relevant?"

PROMPT_HASH = prompt_hash(SYSTEM_PROMPT, USER_TEMPLATE)
ROLE = Role(SYSTEM_PROMPT, USER_TEMPLATE, PROMPT_HASH, max_tokens=20)
SCHEMA = obj_schema({"relevant": {"type": "boolean"}})

_TRUE = {"true", "yes", "relevant", "1"}
_FALSE = {"false", "no", "irrelevant", "not relevant", "0"}


def _verdict(obj: dict) -> bool:
    value = next((obj[k] for k in ("relevant", "is_relevant", "relevance", "verdict") if k in obj), None)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f'"relevant" must be true or false, got {value!r}')


async def grade(
    llm: LLM,
    question: str,
    options: dict[str, str],
    passage: str,
    *,
    fallback: bool = True,
    **sampling: Unpack[Sampling],
) -> Structured:
    """Grade one passage.

    Args:
        llm: the chat client.
        question: the question stem.
        options: letter -> option text.
        passage: the chunk text.
        fallback: the verdict used when the reply cannot be parsed.
        **sampling: ``max_tokens`` (default 20), ``temperature``, ``seed`` (:class:`~ragsafe.agents.structured.Sampling`).

    Returns:
        :class:`Structured` whose ``value`` is True (relevant) or False.

    Example:
        >>> asyncio.run(grade(llm, q.question, q.options, chunk.page_content)).value  # doctest: +SKIP
        True
    """
    return await ROLE.ask(llm, validate=_verdict, fallback=fallback, schema=SCHEMA, question=question,
                          options=options, passage=passage.strip(), **sampling)
