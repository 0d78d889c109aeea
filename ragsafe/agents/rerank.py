"""The pointwise reranker role: how useful is this passage for the question, 0-10? (JSON)

Used by ``rerank_rag`` with ``reranker="llm"``. An unparseable score falls back to the middle of
the scale (:data:`NEUTRAL_SCORE`), recorded as a fallback; ties keep retrieval order, so when every
reply fails the retrieval ranking is unchanged.
"""

from __future__ import annotations

import math
from typing import Unpack

from ragsafe.agents.answer import prompt_hash
from ragsafe.agents.structured import Role, Sampling, Structured, obj_schema
from ragsafe.llm.client import LLM

SYSTEM_PROMPT = (
    "You rate passages retrieved from a radiology reference by how useful they are for answering "
    "a multiple-choice question: 0 means unrelated, 10 means the passage settles the answer. "
    'Reply with a JSON object only: {"score": <integer 0-10>}.'
)
"""System instruction of every scoring call."""

USER_TEMPLATE = "Question: {question}\n\nOptions:\n{options}\n\nPassage:\n{passage}\n\nScore (0-10):"

PROMPT_HASH = prompt_hash(SYSTEM_PROMPT, USER_TEMPLATE)
ROLE = Role(SYSTEM_PROMPT, USER_TEMPLATE, PROMPT_HASH, max_tokens=20)
SCHEMA = obj_schema({"score": {"type": "integer", "minimum": 0, "maximum": 10}})
NEUTRAL_SCORE = 5.0
"""Score given to a passage whose reply could not be parsed."""


def _score(obj: dict) -> float:
    value = obj.get("score", obj.get("relevance"))
    if isinstance(value, bool) or value is None:
        raise ValueError(f'"score" must be a number 0-10, got {value!r}')
    x = float(value)  # numeric strings ("7") are fine; other strings raise ValueError
    if not math.isfinite(x) or not 0 <= x <= 10:
        raise ValueError(f'"score" {x} is outside 0-10')
    return x


async def score(
    llm: LLM,
    question: str,
    options: dict[str, str],
    passage: str,
    **sampling: Unpack[Sampling],
) -> Structured:
    """Score one passage.

    Args:
        llm: the chat client.
        question: the question stem.
        options: letter -> option text.
        passage: the chunk text.
        **sampling: ``max_tokens`` (default 20), ``temperature``, ``seed`` (:class:`~ragsafe.agents.structured.Sampling`).

    Returns:
        :class:`Structured` whose ``value`` is the score (``NEUTRAL_SCORE`` when unparseable).

    Example:
        >>> asyncio.run(score(llm, q.question, q.options, chunk.page_content)).value  # doctest: +SKIP
        8.0
    """
    return await ROLE.ask(llm, validate=_score, fallback=NEUTRAL_SCORE, schema=SCHEMA, question=question,
                          options=options, passage=passage.strip(), **sampling)
