"""The judge role: re-read a stored raw answer and report the letter it explicitly chose, or null.

The paper re-parsed every raw output with an LLM judge under two rules: return the option letter
the answer explicitly chose, else null; never infer a letter from a diagnosis or option text. The
judge here sees the reply and the valid letters only, never the option texts, so it has nothing to
map a diagnosis name onto. Its reply is JSON ``{"letter": "B"}`` or ``{"letter": "none"}``
constrained by a JSON Schema where the server enforces one (see
:func:`ragsafe.llm.client.structured_format`) and parsed leniently elsewhere; a reply that fits
neither is a counted fallback whose letter is null.
"""

from __future__ import annotations

from typing import Any

from ragsafe.agents.answer import prompt_hash
from ragsafe.agents.parse import strip_thinking
from ragsafe.agents.structured import Structured, ask_structured, obj_schema
from ragsafe.llm.client import LLM

NONE = "none"
"""The judge's word for "no explicit letter" (a string, so every server's grammar can express it)."""

SYSTEM = (
    "You check answers to multiple-choice questions. You are given a model's reply and the valid option "
    "letters. Report the option letter the reply explicitly chose. Rules:\n"
    "1. Return a letter only when the reply states it as its choice (for example 'B', 'B.', '(B)', "
    "'Answer: B', 'The answer is B', 'B. Subdural haematoma').\n"
    "2. If the reply names a diagnosis, finding or option text without its letter, return none. Never work "
    "out a letter from a name.\n"
    "3. If the reply gives two or more different letters as its choice, hedges, refuses, or is empty or cut "
    "off before a letter, return none.\n"
    "Reply with JSON only: {\"letter\": \"<one of the valid letters, or none>\"}."
)
USER = "Valid letters: {letters}\n\nReply to check:\n<<<\n{reply}\n>>>"
JUDGE_PROMPT_HASH = prompt_hash(SYSTEM, USER)
MAX_REPLY_CHARS = 4000
"""Longer replies are cut (head and tail kept): the explicit choice sits at the start or the end."""


def schema_for(letters: list[str]) -> dict:
    return obj_schema({"letter": {"type": "string", "enum": [*letters, NONE]}})


def _clip(reply: str) -> str:
    if len(reply) <= MAX_REPLY_CHARS:
        return reply
    half = MAX_REPLY_CHARS // 2
    return f"{reply[:half]}\n[...]\n{reply[-half:]}"


async def judge(llm: LLM, reply: str | None, letters: list[str], *, seed: int = 0) -> Structured:
    """The letter ``reply`` explicitly chose according to the judge model (``value``: a letter or None).

    An empty reply is null without a call. Thinking segments are stripped first, as for the strict parser.

    Example:
        >>> s = asyncio.run(judge(llm, "The answer is (C).", ["A", "B", "C", "D"]))  # doctest: +SKIP
        >>> s.value  # doctest: +SKIP
        'C'
    """
    text = strip_thinking(reply or "").strip()
    if not text:
        return Structured(None, "", False, None, {}, JUDGE_PROMPT_HASH)

    def validate(obj: dict[str, Any]) -> str | None:
        v = obj.get("letter")
        if v is None or (isinstance(v, str) and v.strip().lower() in (NONE, "null", "")):
            return None
        v = str(v).strip().strip("().").upper()
        if v not in letters:
            raise ValueError(f"letter {obj.get('letter')!r} is not one of {letters}")
        return v

    return await ask_structured(llm, SYSTEM, USER.format(letters=", ".join(letters), reply=_clip(text)),
                                validate=validate, fallback=None, max_tokens=20, temperature=0.0, seed=seed,
                                prompt_hash=JUDGE_PROMPT_HASH, schema=schema_for(letters))
