"""The query-rewriter role: one new search query, as JSON, for the whole question or for one option.

Used by ``query_rewrite`` (new angles on the question, or one query per option) and by
``corrective_rag`` (a better query after the retrieved passages were judged irrelevant). An
unparseable reply falls back to a fixed query (recorded as a fallback in the trace): the option
text for an option query, else the question followed by its options.
"""

from __future__ import annotations

from typing import Unpack

from ragsafe.agents.answer import format_options, prompt_hash
from ragsafe.agents.structured import STR, Role, Sampling, Structured, obj_schema
from ragsafe.llm.client import LLM

SYSTEM_PROMPT = (
    "You write search queries for a radiology reference library. A good query is short "
    "(5 to 15 words) and names the findings, diagnoses, signs or procedures to look up. "
    'Reply with a JSON object only: {"query": "<search query>"}.'
)
"""System instruction of every rewrite call."""

USER_TEMPLATE = "Question: {question}\n\nOptions:\n{options}\n\n{history}{task}"
"""``{history}`` is empty or the queries tried so far (and what they found); ``{task}`` is one of the tasks below."""

HISTORY_TEMPLATE = "Queries already searched:\n{queries}\n\n{found}"
FOUND_TEMPLATE = "Passages found so far are about: {titles}.\n\n"
FEEDBACK_TEMPLATE = "The passages these queries found were judged not relevant: {titles}.\n\n"

TASK_QUESTION = "Write one new search query that finds the evidence needed to choose the correct option."
TASK_OPTION = "Write one search query that finds evidence for or against option {letter}: {option}"

PROMPT_HASH = prompt_hash(
    SYSTEM_PROMPT, USER_TEMPLATE, HISTORY_TEMPLATE, FOUND_TEMPLATE, FEEDBACK_TEMPLATE, TASK_QUESTION, TASK_OPTION
)
ROLE = Role(SYSTEM_PROMPT, USER_TEMPLATE, PROMPT_HASH, max_tokens=64)
SCHEMA = obj_schema({"query": STR})
MAX_QUERY_CHARS = 300


def fallback_query(question: str, options: dict[str, str], letter: str | None = None) -> str:
    """The query used when a rewrite reply cannot be parsed."""
    if letter is not None:
        return options[letter]
    return question.strip() + "\n" + format_options(options)


def _query(obj: dict) -> str:
    value = obj.get("query")
    if value is None:  # a small model may name the field differently; take its only string
        strings = [v for v in obj.values() if isinstance(v, str)]
        value = strings[0] if len(strings) == 1 else None
    if not isinstance(value, str) or not value.strip():
        raise ValueError('no non-empty "query" string')
    return " ".join(value.split())[:MAX_QUERY_CHARS]


def _context(options: dict[str, str], letter: str | None, previous: list[str], found_titles: list[str],
             judged_irrelevant: bool) -> dict[str, str]:
    """The ``{history}`` and ``{task}`` fields of :data:`USER_TEMPLATE`."""
    history = ""
    if previous:
        titles = ", ".join(dict.fromkeys(t for t in found_titles if t))
        found = (FEEDBACK_TEMPLATE if judged_irrelevant else FOUND_TEMPLATE).format(titles=titles) if titles else ""
        history = HISTORY_TEMPLATE.format(queries="\n".join(f"- {q}" for q in previous), found=found)
    task = TASK_OPTION.format(letter=letter, option=options[letter]) if letter is not None else TASK_QUESTION
    return {"history": history, "task": task}


async def rewrite(
    llm: LLM,
    question: str,
    options: dict[str, str],
    *,
    letter: str | None = None,
    previous: list[str] = (),
    found_titles: list[str] = (),
    judged_irrelevant: bool = False,
    **sampling: Unpack[Sampling],
) -> Structured:
    """Ask for one search query.

    Args:
        llm: the chat client.
        question: the question stem.
        options: letter -> option text.
        letter: write a query about this option only (None: about the whole question).
        previous: queries already searched (the model is asked for a new one).
        found_titles: titles of the passages those queries found.
        judged_irrelevant: say that those passages were judged not relevant (corrective RAG).
        **sampling: ``max_tokens`` (default 64), ``temperature``, ``seed`` (:class:`~ragsafe.agents.structured.Sampling`).

    Returns:
        :class:`Structured` whose ``value`` is the query string (the fallback query when unparseable).

    Example:
        >>> s = asyncio.run(rewrite(llm, q.question, q.options, letter="B"))  # doctest: +SKIP
        >>> s.value, s.fallback  # doctest: +SKIP
        ('giant bulla versus pneumothorax CT', False)
    """
    return await ROLE.ask(llm, validate=_query, fallback=fallback_query(question, options, letter), schema=SCHEMA,
                          question=question, options=options,
                          **_context(options, letter, previous, found_titles, judged_irrelevant), **sampling)
