"""The answerer role: the paper's MCQ prompt, one completion, a strictly parsed letter."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Mapping

from ragsafe.agents.parse import ABSTENTION_PHRASE, is_abstention, parse_letter
from ragsafe.llm.client import LLM, letter_distribution

SYSTEM_PROMPT = (
    "You are an expert radiologist answering multiple-choice questions. "
    "Answer with only the letter of the correct option."
)
"""The paper's instruction: answer with only the letter."""

ABSTAIN_SYSTEM_PROMPT = (
    SYSTEM_PROMPT + f" If the evidence given is insufficient to choose, answer exactly: {ABSTENTION_PHRASE}."
)
"""The paper's instruction plus an explicit way out (graphs with ``abstain=true``)."""

USER_TEMPLATE = "{context}Question: {question}\n\nOptions:\n{options}\n\nAnswer:"
"""``{context}`` is empty (closed book) or the context followed by a blank line."""

CHUNK_SEPARATOR = "\n\n---\n\n"
TOP_LOGPROBS = 10


def prompt_hash(*parts: str) -> str:
    return hashlib.sha256("\x1e".join(parts).encode()).hexdigest()[:16]


ANSWER_PROMPT_HASH = prompt_hash(SYSTEM_PROMPT, USER_TEMPLATE)
ABSTAIN_PROMPT_HASH = prompt_hash(ABSTAIN_SYSTEM_PROMPT, USER_TEMPLATE)

CALL_FIELDS = ("model", "prompt_tokens", "completion_tokens", "latency_s", "attempts", "cached", "finish_reason",
               "text")
"""What a trace entry keeps of each completion record (the request itself stays in the sample's answer)."""


def format_options(options: Mapping[str, str]) -> str:
    """The options block of every prompt: one ``A. text`` line per option, in the given order.

    Example:
        >>> print(format_options({"A": "Pneumothorax", "B": "Giant bulla"}))
        A. Pneumothorax
        B. Giant bulla
    """
    return "\n".join(f"{k}. {v}" for k, v in options.items())


def call_summary(call: Mapping[str, Any]) -> dict[str, Any]:
    """The trace's view of one completion record (:data:`CALL_FIELDS`)."""
    return {k: call.get(k) for k in CALL_FIELDS}


def build_messages(question: str, options: dict[str, str], context: str | None = None,
                   abstain: bool = False) -> list[dict[str, str]]:
    """The paper's prompt: system instruction; user ``{context}\\n\\nQuestion: …\\n\\nOptions:\\nA. …\\n\\nAnswer:``.
    ``abstain`` adds the "insufficient evidence" way out to the instruction."""
    opts = format_options(options)
    ctx = f"{context.strip()}\n\n" if context and context.strip() else ""
    return [
        {"role": "system", "content": ABSTAIN_SYSTEM_PROMPT if abstain else SYSTEM_PROMPT},
        {"role": "user", "content": USER_TEMPLATE.format(context=ctx, question=question.strip(), options=opts)},
    ]


@dataclasses.dataclass
class Answer:
    letter: str | None
    raw: str
    letter_dist: dict[str, float] | None
    call: dict[str, Any]
    """The completion record: request, raw text, tokens, latency, attempts."""
    source: str = "parse"
    """How the letter was chosen: "parse" (strict text parse), "logprobs" (argmax over letters) or
    "abstention" (allowed to abstain, the reply was "insufficient evidence": letter None)."""


async def answer(
    llm: LLM,
    question: str,
    options: dict[str, str],
    context: str | None = None,
    *,
    mode: str = "generate",
    max_tokens: int = 10,
    temperature: float = 0.0,
    seed: int | None = None,
    abstain: bool = False,
) -> Answer:
    """Ask for the letter; parse it strictly; keep the letter distribution when the server gives one.

    In ``letter_logprobs`` mode the letter is the most probable valid letter of the first answer
    token; when the server returns no logprobs it falls back to the strict text parse (and
    ``llm.logprobs_supported`` turns False, which the run records). With ``abstain`` the model may
    answer "insufficient evidence": the letter is then None with source "abstention", which the
    net-benefit metric scores apart from an unparseable null (the paper's metrics: wrong either way).
    """
    letters = list(options)
    messages = build_messages(question, options, context, abstain=abstain)
    comp = await llm.chat(
        messages, temperature=temperature, max_tokens=max_tokens, top_logprobs=TOP_LOGPROBS, seed=seed
    )
    dist = letter_distribution(comp.top_logprobs, letters)
    if abstain and is_abstention(comp.text, letters):
        letter, source = None, "abstention"
    elif mode == "letter_logprobs" and dist:
        letter, source = max(sorted(dist), key=lambda L: dist[L]), "logprobs"
    else:
        letter, source = parse_letter(comp.text, letters), "parse"
    return Answer(letter=letter, raw=comp.text, letter_dist=dist, call=comp.to_record(), source=source)
