"""OpenAI-compatible chat client: retries, timeouts, usage, logprobs, cache hook.

Works against any OpenAI-compatible server (vLLM, llama.cpp, Ollama). Retries (tenacity,
exponential backoff with jitter, honouring ``Retry-After``) happen on connection errors, timeouts,
429 and 5xx, never on other 4xx. Every call returns a :class:`Completion` that records what was
sent and what came back, so a sample record can be re-scored or audited later. The API key is
held only by the client object; it never enters a record, cache key or log line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import time
from typing import Any, Protocol

import httpx
import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter


class EndpointUnreachable(RuntimeError):
    """The endpoint did not answer at all; the message names the URL and how to start a server."""


class LogprobsUnsupported(RuntimeError):
    pass


@dataclasses.dataclass
class Completion:
    text: str
    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    attempts: int = 1
    finish_reason: str | None = None
    top_logprobs: dict[str, float] | None = None
    """Alternatives for the first non-blank output token: token text -> logprob."""
    cached: bool = False
    request: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ResponseCache(Protocol):
    def get(self, key: str) -> dict | None: ...
    def put(self, key: str, value: dict) -> None: ...


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    # Malformed bodies from a flaky proxy (bad JSON, empty choices) are transient too.
    return isinstance(exc, (json.JSONDecodeError, EmptyResponse))


class EmptyResponse(RuntimeError):
    pass


def _retry_after(exc: BaseException | None) -> float | None:
    if isinstance(exc, openai.APIStatusError) and exc.response is not None:
        value = exc.response.headers.get("retry-after")
        try:
            return min(float(value), 60.0) if value is not None else None
        except ValueError:
            return None
    return None


class _Wait:
    """Exponential backoff with jitter; a server's Retry-After wins when it asks for longer."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.backoff = wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def __call__(self, state: RetryCallState) -> float:
        base = self.backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        ra = _retry_after(exc)
        return max(base, ra) if ra is not None else base


class LLM:
    """Async chat client for one model on one OpenAI-compatible endpoint.

    Args:
        base_url: e.g. ``http://127.0.0.1:8080/v1``.
        model: model id the server knows.
        api_key: the key value (read from the environment by the caller; never stored).
        timeout: per-request timeout, seconds.
        max_retries: retries after the first attempt on transient faults.
        seed: default sampling seed sent with each request.
        cache: optional response cache (content-addressed on model, messages, params, seed).
        backoff_initial: first backoff wait, seconds.

    Example:
        >>> llm = LLM("http://127.0.0.1:8080/v1", "smollm2-135m")  # doctest: +SKIP
        >>> c = asyncio.run(llm.chat([{"role": "user", "content": "Hi"}]))  # doctest: +SKIP
    """

    def __init__(self, base_url: str, model: str, *, api_key: str = "not-needed", timeout: float = 120.0,
                 max_retries: int = 4, seed: int | None = 0, cache: ResponseCache | None = None,
                 backoff_initial: float = 0.5, backoff_max: float = 20.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.seed = seed
        self.cache = cache
        self.logprobs_supported: bool | None = None
        self._wait = _Wait(backoff_initial, backoff_max)
        self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self.calls = 0
        self.cache_hits = 0

    def describe(self) -> dict[str, Any]:
        """Public facts of this endpoint for a run record (no key)."""
        return {"base_url": self.base_url, "model": self.model, "timeout": self.timeout,
                "max_retries": self.max_retries, "seed": self.seed,
                "logprobs_supported": self.logprobs_supported}

    async def check(self, timeout: float = 5.0) -> list[str]:
        """Fail within seconds, naming the URL, if the endpoint does not answer; return its model ids."""
        url = f"{self.base_url}/models"
        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                r = await http.get(url, headers={"Authorization": f"Bearer {self._client.api_key}"})
        except (httpx.HTTPError, OSError) as e:
            raise EndpointUnreachable(
                f"no OpenAI-compatible server answers at {url} ({type(e).__name__}: {e}). Start one with "
                f"`ragsafe serve --model smollm2-135m`, `vllm serve MODEL`, or `ollama serve`, "
                f"or run with the default endpoint 'local' to let ragsafe start it") from None
        if r.status_code >= 400:
            raise EndpointUnreachable(f"{url} answered HTTP {r.status_code}: {r.text[:200]}")
        try:
            return [m["id"] for m in r.json().get("data", [])]
        except (ValueError, KeyError, TypeError):
            raise EndpointUnreachable(f"{url} did not return an OpenAI model list: {r.text[:200]}") from None

    async def chat(self, messages: list[dict[str, str]], *, temperature: float = 0.0, max_tokens: int = 10,
                   top_logprobs: int | None = None, seed: int | None = None, response_format: dict | None = None,
                   stop: list[str] | None = None, use_cache: bool = True) -> Completion:
        """One chat completion, retried on transient faults.

        ``top_logprobs`` asks for the alternatives of each output token; when the server refuses
        logprobs the call is repeated without them and ``logprobs_supported`` becomes False.
        """
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        seed = self.seed if seed is None else seed
        if seed is not None:
            params["seed"] = seed
        if stop:
            params["stop"] = stop
        if response_format:
            params["response_format"] = response_format
        want_lp = bool(top_logprobs) and self.logprobs_supported is not False
        if want_lp:
            params["logprobs"] = True
            params["top_logprobs"] = top_logprobs
        request = {"model": self.model, "messages": messages, **params}
        key = cache_key(request)
        if self.cache is not None and use_cache:
            hit = self.cache.get(key)
            if hit is not None:
                self.cache_hits += 1
                return Completion(**{**hit, "cached": True, "latency_s": 0.0})
        try:
            comp = await self._call(request)
        except openai.BadRequestError as e:
            if want_lp and "logprob" in str(e).lower():
                self.logprobs_supported = False
                return await self.chat(messages, temperature=temperature, max_tokens=max_tokens, seed=seed,
                                       response_format=response_format, stop=stop, use_cache=use_cache)
            if response_format and "response_format" in str(e).lower():
                return await self.chat(messages, temperature=temperature, max_tokens=max_tokens,
                                       top_logprobs=top_logprobs, seed=seed, stop=stop, use_cache=use_cache)
            raise
        if want_lp:
            self.logprobs_supported = comp.top_logprobs is not None or self.logprobs_supported
        if self.cache is not None:
            self.cache.put(key, {k: v for k, v in comp.to_record().items() if k not in ("cached",)})
        return comp

    async def _call(self, request: dict[str, Any]) -> Completion:
        attempts = 0
        async for attempt in AsyncRetrying(stop=stop_after_attempt(self.max_retries + 1), wait=self._wait,
                                           retry=retry_if_exception(_retryable), reraise=True):
            with attempt:
                attempts += 1
                t0 = time.perf_counter()
                resp = await self._client.chat.completions.create(**request)
                latency = time.perf_counter() - t0
                if not getattr(resp, "choices", None):
                    raise EmptyResponse(f"{self.base_url} returned no choices")
        self.calls += 1
        choice = resp.choices[0]
        usage = getattr(resp, "usage", None)
        return Completion(
            text=(choice.message.content or "") if choice.message else "",
            model=getattr(resp, "model", None) or self.model,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            latency_s=latency,
            attempts=attempts,
            finish_reason=choice.finish_reason,
            top_logprobs=_first_token_alternatives(choice),
            request=request,
        )

    async def aclose(self) -> None:
        await self._client.close()


def _first_token_alternatives(choice: Any) -> dict[str, float] | None:
    lp = getattr(choice, "logprobs", None)
    content = getattr(lp, "content", None) if lp is not None else None
    if not content:
        return None
    for tok in content:
        if (tok.token or "").strip():
            alts = {a.token: a.logprob for a in (tok.top_logprobs or [])}
            alts.setdefault(tok.token, tok.logprob)
            return alts
    return None


def letter_distribution(alternatives: dict[str, float] | None, letters: list[str]) -> dict[str, float] | None:
    """Probability of each valid letter among a token's alternatives, renormalised over the letters.

    Tokens like " B", "B", "B." count for B. Returns None when no valid letter is among them.
    """
    if not alternatives:
        return None
    mass = {L: 0.0 for L in letters}
    for tok, logprob in alternatives.items():
        t = tok.strip().strip(".):").strip()
        if t in mass and logprob is not None and logprob > -1e9:
            mass[t] += math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {L: p / total for L, p in mass.items()}


def cache_key(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_sync(coro):
    """Run a coroutine from sync code (CLI, tests)."""
    return asyncio.run(coro)
