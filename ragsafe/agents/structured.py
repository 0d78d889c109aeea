"""Structured outputs from small models: ask for JSON, parse leniently, fall back visibly.

Every JSON-mode role (decompose, grade, plan, rerank, rewrite, synthesize, verify) is a
:class:`Role`: its system prompt, user template and prompt hash, and one :meth:`Role.ask` that
renders the user message and makes the call. A role module only adds its reply validator, its
schema and its fallback value.

``parse_json_reply`` accepts a bare object, one inside a ```json fence, or the first balanced
``{...}`` in free text. When nothing parses, the caller's fallback value is used and the trace
entry says so (``fallback: true`` with the reason), which the summary counts — never a crash.
"""

from __future__ import annotations

import dataclasses
import json
import re
import string
from typing import Any, Callable, Mapping, TypedDict

from ragsafe.agents.answer import call_summary, format_options
from ragsafe.agents.answer import prompt_hash as _hash
from ragsafe.llm.client import LLM

JSON_MODE = {"type": "json_object"}


def obj_schema(required: dict[str, dict], optional: dict[str, dict] | None = None) -> dict:
    """A closed JSON-Schema object with these properties."""
    props = {**required, **(optional or {})}
    return {"type": "object", "properties": props, "required": list(required), "additionalProperties": False}


STR = {"type": "string", "maxLength": 200}


def _balanced_objects(text: str):
    depth, start = 0, None
    in_str = esc = False
    for i, ch in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0 and start is not None:
                yield text[start : i + 1]


def parse_json_reply(text: str | None) -> dict | None:
    """The first JSON object in ``text``, or None."""
    if not text:
        return None
    t = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", t, flags=re.S)
    candidates = ([fence.group(1)] if fence else []) + [t] + list(_balanced_objects(t))
    for c in candidates:
        try:
            obj = json.loads(c)
        except (ValueError, TypeError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


@dataclasses.dataclass
class Structured:
    value: Any
    raw: str
    fallback: bool
    reason: str | None
    call: dict
    prompt_hash: str

    def trace(self, role: str) -> dict[str, Any]:
        """The trace entry of this call; a value with ``as_dict()`` (plan, verdict, synthesis) is
        recorded as that plain dict, so trace entries stay JSON."""
        output = self.value.as_dict() if hasattr(self.value, "as_dict") else self.value
        info = {"role": role, "prompt_hash": self.prompt_hash, "output": output,
                "llm_calls": [call_summary(self.call)]}
        if self.fallback:
            info["fallback"] = True
            info["fallback_reason"] = self.reason
        return info


async def ask_structured(
    llm: LLM,
    system: str,
    user: str,
    *,
    validate: Callable[[dict], Any],
    fallback: Any,
    max_tokens: int = 200,
    temperature: float = 0.0,
    seed: int | None = None,
    prompt_hash: str | None = None,
    schema: dict | None = None,
) -> Structured:
    """One JSON-mode call. ``validate(obj)`` returns the clean value or raises ValueError.

    ``schema`` (a JSON Schema) is sent in the ``response_format`` form the endpoint enforces —
    ``json_schema`` (vLLM, OpenAI) or llama.cpp's ``json_object`` + ``schema``, which its server turns
    into a grammar, so even a 135M model returns the shape asked for; the form used is recorded in
    the trace (``structured_form``). A server that takes neither is asked without ``response_format``
    (see :meth:`ragsafe.llm.client.LLM.chat`) and the lenient parser and the recorded fallback take over.

    ``prompt_hash`` names the prompt template in the trace (pass the role's module hash so it stays
    the same across questions); by default it is derived from the system prompt.
    """
    comp = await llm.chat(
        [{"role": "system", "content": system}, {"role": "user", "content": user}],
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        response_format={**JSON_MODE, "schema": schema} if schema else JSON_MODE,
    )
    h = prompt_hash or _hash(system)
    obj = parse_json_reply(comp.text)
    if obj is None:
        return Structured(fallback, comp.text, True, "reply was not JSON", comp.to_record(), h)
    try:
        return Structured(validate(obj), comp.text, False, None, comp.to_record(), h)
    except (ValueError, KeyError, TypeError) as e:
        return Structured(fallback, comp.text, True, f"JSON did not fit: {e}", comp.to_record(), h)


class Sampling(TypedDict, total=False):
    """Decoding settings every role call takes (``**sampling``); unset keys take the role's defaults."""

    max_tokens: int
    """Completion budget of the JSON reply (default: the role's :attr:`Role.max_tokens`)."""
    temperature: float
    """Sampling temperature (default 0: greedy)."""
    seed: int | None
    """Sampling seed passed to the server (default None)."""


@dataclasses.dataclass(frozen=True)
class Role:
    """One JSON-mode LLM role: the prompts it sends and the hash that names them in traces.

    Example:
        >>> GRADER = Role(SYSTEM_PROMPT, "Question: {question}\\n\\nOptions:\\n{options}", PROMPT_HASH)  # doctest: +SKIP
        >>> s = await GRADER.ask(llm, validate=_verdict, fallback=True, max_tokens=20,
        ...                      question=q.question, options=q.options)                         # doctest: +SKIP
    """

    system: str
    """System prompt of every call."""
    user: str
    """User template. ``{question}`` is filled with the stripped stem and ``{options}`` with the
    :func:`~ragsafe.agents.answer.format_options` block; any other field comes from ``ask``."""
    prompt_hash: str | None = None
    """Hash named in the trace; None: the hash of the system prompt (see :func:`ask_structured`)."""
    max_tokens: int = 200
    """Default completion budget of the JSON reply."""

    def render(self, *, question: str | None = None, options: Mapping[str, str] | None = None, **fields: Any) -> str:
        """The user message for these fields; a field the template does not name is an error (a typo
        in a keyword argument would otherwise vanish silently)."""
        if question is not None:
            fields["question"] = question.strip()
        if options is not None:
            fields["options"] = format_options(options)
        unused = set(fields) - {f for _, f, _, _ in string.Formatter().parse(self.user) if f}
        if unused:
            raise TypeError(f"unexpected field(s) {sorted(unused)} for this role's user template")
        return self.user.format(**fields)

    async def ask(self, llm: LLM, *, validate: Callable[[dict], Any], fallback: Any, max_tokens: int | None = None,
                  temperature: float = 0.0, seed: int | None = None, schema: dict | None = None,
                  **fields: Any) -> Structured:
        """Render the user message from ``fields`` (:meth:`render`) and make the call (:func:`ask_structured`)."""
        return await ask_structured(llm, self.system, self.render(**fields), validate=validate, fallback=fallback,
                                    max_tokens=self.max_tokens if max_tokens is None else max_tokens,
                                    temperature=temperature, seed=seed,
                                    prompt_hash=self.prompt_hash, schema=schema)
