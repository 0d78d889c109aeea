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


OPTIONAL_CALL_FIELDS = ("reasoning_tokens", "structured_form", "batch")
"""Kept in a trace entry only when the completion has them (records of other calls keep their shape):
reasoning tokens, the JSON-Schema form of a structured call, the ``n`` request a sample came from."""


def call_summary(call: Mapping[str, Any]) -> dict[str, Any]:
    """The trace's view of one completion record (:data:`CALL_FIELDS`, then :data:`OPTIONAL_CALL_FIELDS`)."""
    out = {k: call.get(k) for k in CALL_FIELDS}
    for k in OPTIONAL_CALL_FIELDS:
        if call.get(k) is not None:
            out[k] = call[k]
    return out


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

    @property
    def reasoning(self) -> str | None:
        """What a reasoning model thought before answering (a separate field, or a ``<think>`` block)."""
        return self.call.get("reasoning")


def _pick(comp, letters: list[str], mode: str, abstain: bool = False) -> Answer:
    """The letter of one completion: an allowed abstention, the argmax of the letter logprobs in that mode,
    or the strict parse."""
    dist = letter_distribution(comp.top_logprobs, letters)
    if abstain and is_abstention(comp.text, letters):
        letter, source = None, "abstention"
    elif mode == "letter_logprobs" and dist:
        letter, source = max(sorted(dist), key=lambda L: dist[L]), "logprobs"
    else:
        letter, source = parse_letter(comp.text, letters), "parse"
    return Answer(letter=letter, raw=comp.text, letter_dist=dist, call=comp.to_record(), source=source)


async def answer_samples(
    llm: LLM,
    question: str,
    options: dict[str, str],
    context: str | None = None,
    *,
    seeds: list[int],
    temperature: float,
    mode: str = "generate",
    max_tokens: int = 10,
) -> list[Answer]:
    """One sampled answer per seed (self-consistency), each parsed as :func:`answer` parses.

    Where the endpoint takes the ``n`` request parameter, consecutive seeds go out as one request
    (:meth:`ragsafe.llm.client.LLM.sample`); each sample stays cached under its own seed.
    """
    letters = list(options)
    messages = build_messages(question, options, context)
    if hasattr(llm, "sample"):
        comps = await llm.sample(messages, seeds=seeds, temperature=temperature, max_tokens=max_tokens,
                                 top_logprobs=TOP_LOGPROBS)
    else:  # a client without batched sampling (a test double): one request per sample
        import asyncio

        comps = await asyncio.gather(*(llm.chat(messages, temperature=temperature, max_tokens=max_tokens,
                                                top_logprobs=TOP_LOGPROBS, seed=s) for s in seeds))
    return [_pick(c, letters, mode) for c in comps]


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
    return _pick(comp, letters, mode, abstain)
