"""OpenAI-compatible chat client: retries, timeouts, usage, logprobs, cache hook.

Works against any OpenAI-compatible server (vLLM, llama.cpp, Ollama). Retries (tenacity,
exponential backoff with jitter, honouring ``Retry-After``) happen on connection errors, timeouts,
429, 5xx and garbled bodies (bad JSON, no choices), never on other 4xx. A request that still fails
after its retries raises :class:`RequestFailed` naming the URL, the fault and the attempts.

One endpoint may be served by several replica base URLs: a :class:`Gate` bounds the requests in
flight per URL and sends each attempt to the least-busy one (a retry avoids the URL that just
failed). A slot is held only while a request is on the wire, never during a backoff wait.

Requests go out through aiohttp when it is installed (the OpenAI SDK's client costs several
milliseconds of CPU per request, which caps throughput at high concurrency) or through the SDK
(``RAGSAFE_HTTP=openai``); either way errors are the SDK's exception types.

Every call returns a :class:`Completion` that records what was sent and what came back, so a
sample record can be re-scored or audited later. The API key is held only by the client object;
it never enters a record, cache key or log line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import random
import time
from typing import Any, Protocol

import httpx
import openai
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from ragsafe.llm.errors import (
    EmptyResponse,
    EndpointUnreachable,
    RequestFailed,
    _retry_after,
    _retryable,
    _status_error,
    rejects,
)
from ragsafe.llm.gate import Gate


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
    reasoning: str | None = None
    """The reasoning a server returned apart from the answer (vLLM's ``reasoning_content`` /
    ``reasoning``), or the text of a ``<think>`` block inside the answer."""
    reasoning_tokens: int | None = None
    """Completion tokens spent on reasoning (the rest of ``completion_tokens`` is the answer)."""
    reasoning_tokens_source: str | None = None
    """"server" (usage.completion_tokens_details), or "estimated" (completion tokens split by characters)."""
    structured_form: str | None = None
    """How a JSON Schema was sent: "json_schema", "json_object_schema", or "none" (no form accepted)."""
    batch: dict[str, Any] | None = None
    """For a sample of an ``n`` request: {"n", "index", "seed"} of that request."""
    tool_calls: list[dict[str, Any]] | None = None
    """Native tool calls of the reply: [{"id", "name", "arguments"}] (arguments as the JSON text sent)."""

    def to_record(self) -> dict[str, Any]:
        # a shallow copy: dataclasses.asdict deep-copies the messages, which costs more per call
        # than the rest of a request at high concurrency
        out = {f.name: getattr(self, f.name) for f in _COMPLETION_FIELDS}
        out["request"] = dict(self.request)
        return out


_COMPLETION_FIELDS = dataclasses.fields(Completion)


def _from_cache(rec: dict[str, Any]) -> Completion:
    # fields a later version dropped are ignored, so an old cache never breaks a run
    known = {k: v for k, v in rec.items() if k in _FIELD_NAMES}
    return Completion(**{**known, "cached": True, "latency_s": 0.0})


_FIELD_NAMES = {f.name for f in _COMPLETION_FIELDS}


class ResponseCache(Protocol):
    def get(self, key: str) -> dict | None: ...
    def put(self, key: str, value: dict) -> None: ...


class _Wait:
    """Exponential backoff with jitter; a server's Retry-After wins when it asks for longer."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum

    def delay(self, failed: int, exc: BaseException | None) -> float:
        """Wait after the ``failed``-th failed attempt (1-based)."""
        n = max(failed, 1)
        base = min(self.initial * 2 ** (n - 1) + random.uniform(0, self.initial), self.maximum)
        ra = _retry_after(exc)
        return max(base, ra) if ra is not None else base

    def after_first(self, state: RetryCallState) -> float:
        """tenacity's wait for the retries: its attempt k is the request's attempt k + 1."""
        return self.delay(state.attempt_number + 1, state.outcome.exception() if state.outcome else None)


@dataclasses.dataclass
class _Tries:
    n: int = 0
    last_url: str | None = None


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
        backoff_max: longest backoff wait, seconds (a server's Retry-After may ask for longer, up to 60 s).
        replicas: further base URLs serving the same model; requests are spread over all of them.
        gate: request slots shared with other clients of this endpoint (default: one of its own,
            bounded by ``max_in_flight`` per URL).
        max_in_flight: requests on the wire at once per URL when this client makes its own gate.
        cache_read: False answers every request from the server and overwrites the cache (refresh).
        use_n: send self-consistency samples as one request with ``n`` where the endpoint takes it.
        http: "aiohttp" (default when installed: far less CPU per request, which decides throughput at
            high concurrency) or "openai" (the SDK's own client). Both raise the SDK's exception types.

    Example:
        >>> llm = LLM("http://127.0.0.1:8080/v1", "smollm2-135m")  # doctest: +SKIP
        >>> c = asyncio.run(llm.chat([{"role": "user", "content": "Hi"}]))  # doctest: +SKIP
    """

    def __init__(self, base_url: str, model: str, *, api_key: str = "not-needed", timeout: float = 120.0,
                 max_retries: int = 4, seed: int | None = 0, cache: ResponseCache | None = None,
                 backoff_initial: float = 0.5, backoff_max: float = 20.0, replicas: list[str] | None = None,
                 gate: Gate | None = None, max_in_flight: int | None = None, cache_read: bool = True,
                 http: str | None = None, use_n: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.seed = seed
        self.cache = cache
        self.cache_read = cache_read
        self.logprobs_supported: bool | None = None
        self.use_n = use_n
        self.model_info: dict[str, dict[str, Any]] = {}
        """Per model id, what ``/v1/models`` said beyond the id (vLLM: ``max_model_len``)."""
        self._wait = _Wait(backoff_initial, backoff_max)
        urls = [self.base_url] + [u.rstrip("/") for u in replicas or [] if u.rstrip("/") != self.base_url]
        self.gate = gate or Gate(urls, max_in_flight)
        for u in self.gate.urls:
            if u not in urls:
                urls.append(u)
        self._api_key = api_key
        self.http = http or default_http()
        if self.http not in ("aiohttp", "openai"):
            raise ValueError(f"http={self.http!r}: choose 'aiohttp' or 'openai'")
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        # HTTP sessions live on the gate, so the clients of one endpoint (one per seed) share
        # their connections instead of each opening its own to every URL
        self._sessions = self.gate.sessions
        self._pending: dict[str, asyncio.Future] = {}
        self.calls = 0
        """Completions answered by the server (one per request, whatever its attempts)."""
        self.cache_hits = 0
        self.failed_attempts = 0
        """Attempts that met a transient fault (each was retried or ended in RequestFailed)."""

    def describe(self) -> dict[str, Any]:
        """Public facts of this endpoint for a run record (no key)."""
        return {"base_url": self.base_url, "model": self.model, "timeout": self.timeout,
                "max_retries": self.max_retries, "seed": self.seed,
                "logprobs_supported": self.logprobs_supported,
                "replicas": [u for u in self.gate.urls if u != self.base_url],
                "max_in_flight_per_url": self.gate.per_url, "capabilities": dict(self.gate.caps)}

    async def check(self, timeout: float = 5.0) -> list[str]:
        """Fail within seconds, naming the URL, if the endpoint does not answer; return its model ids.

        Every replica URL is checked; the model ids are those of the primary.
        """
        ids: list[str] | None = None
        for base in self.gate.urls:
            got = await self._check_one(base, timeout)
            ids = got if ids is None else ids
        return ids or []

    async def _check_one(self, base: str, timeout: float) -> list[str]:
        url = f"{base}/models"
        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                r = await http.get(url, headers={"Authorization": f"Bearer {self._api_key}"})
        except (httpx.HTTPError, OSError) as e:
            raise EndpointUnreachable(
                f"no OpenAI-compatible server answers at {url} ({type(e).__name__}: {e}). Start one with "
                f"`ragsafe serve --model smollm2-135m`, `vllm serve MODEL`, or `ollama serve`, "
                f"or run with the default endpoint 'local' to let ragsafe start it", url=url) from None
        if r.status_code >= 400:
            raise EndpointUnreachable(f"{url} answered HTTP {r.status_code}: {r.text[:200]}", url=url)
        try:
            data = r.json().get("data", [])
            ids = [m["id"] for m in data]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EndpointUnreachable(f"{url} did not return an OpenAI model list: {r.text[:200]}", url=url) from None
        if base == self.base_url:  # vLLM lists each model's context size
            self.model_info = {m["id"]: {"max_model_len": m["max_model_len"]} for m in data
                               if isinstance(m, dict) and isinstance(m.get("max_model_len"), int)}
        return ids

    async def chat(self, messages: list[dict[str, Any]], *, temperature: float = 0.0, max_tokens: int = 10,
                   top_logprobs: int | None = None, seed: int | None = None, response_format: dict | None = None,
                   stop: list[str] | None = None, use_cache: bool = True, tools: list[dict] | None = None,
                   tool_choice: Any = None) -> Completion:
        """One chat completion, retried on transient faults.

        ``top_logprobs`` asks for the alternatives of each output token; when the server refuses
        logprobs the call is repeated without them and ``logprobs_supported`` becomes False.
        A ``response_format`` that carries a JSON Schema (``{"type": "json_object", "schema": S}``)
        is sent in the form the endpoint enforces (:func:`structured_forms`); the form used is
        recorded on the completion and learnt once per endpoint. Identical requests in flight at
        once are sent once (the others wait for that answer).
        """
        kw = dict(temperature=temperature, max_tokens=max_tokens, top_logprobs=top_logprobs, seed=seed, stop=stop,
                  use_cache=use_cache, tools=tools, tool_choice=tool_choice)
        schema = schema_of(response_format)
        if schema is None:
            return await self._chat(messages, response_format=response_format, **kw)
        caps = self.gate.caps
        known = caps.get("structured")
        forms = [] if known == "none" else [f for f in ([known] if known else []) + list(STRUCTURED_FORMS)
                                             if f][: len(STRUCTURED_FORMS)]
        for form in dict.fromkeys(forms):
            try:
                comp = await self._chat(messages, response_format=structured_format(form, schema, response_format),
                                        form=form, strict_format=True, **kw)
            except openai.APIStatusError as e:
                if rejects(e, "response_format", "json_schema", "json_object", "schema"):
                    continue  # this server does not take this form: the next one
                raise
            caps["structured"] = form
            return comp
        caps["structured"] = "none"  # no form accepted: unconstrained; the lenient parser takes over
        return await self._chat(messages, response_format=None, form="none", **kw)

    def _request(self, messages: list[dict[str, Any]], *, temperature: float, max_tokens: int,
                 top_logprobs: int | None, seed: int | None, response_format: dict | None,
                 stop: list[str] | None, tools: list[dict] | None = None, tool_choice: Any = None) -> dict[str, Any]:
        """The body of one request (its cache key is the key of every answer to it)."""
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        seed = self.seed if seed is None else seed
        if seed is not None:
            params["seed"] = seed
        if stop:
            params["stop"] = stop
        if response_format:
            params["response_format"] = response_format
        if tools:
            params["tools"] = tools
            if tool_choice is not None:
                params["tool_choice"] = tool_choice
        if bool(top_logprobs) and self.logprobs_supported is not False:
            params["logprobs"] = True
            params["top_logprobs"] = top_logprobs
        return {"model": self.model, "messages": messages, **params}

    async def _chat(self, messages: list[dict[str, Any]], *, temperature: float, max_tokens: int,
                    top_logprobs: int | None, seed: int | None, response_format: dict | None,
                    stop: list[str] | None, use_cache: bool, tools: list[dict] | None = None,
                    tool_choice: Any = None, form: str | None = None, strict_format: bool = False) -> Completion:
        request = self._request(messages, temperature=temperature, max_tokens=max_tokens, top_logprobs=top_logprobs,
                                seed=seed, response_format=response_format, stop=stop, tools=tools,
                                tool_choice=tool_choice)
        want_lp = "logprobs" in request
        caching = self.cache is not None and use_cache
        key = cache_key(request) if self.cache is not None else ""
        if caching and self.cache_read:
            hit = self.cache.get(key)
            if hit is not None:
                self.cache_hits += 1
                return _from_cache(hit)
        if caching and key in self._pending:
            # the same request is on the wire already (another variant sharing this step): wait for
            # its answer; should it fail, this caller tries on its own below
            try:
                rec = await asyncio.shield(self._pending[key])
            except Exception:  # noqa: BLE001
                rec = None
            if rec is not None:
                self.cache_hits += 1
                return _from_cache(rec)
        waiter: asyncio.Future | None = None
        if caching and key not in self._pending:
            waiter = asyncio.get_running_loop().create_future()
            self._pending[key] = waiter
        again = dict(temperature=temperature, max_tokens=max_tokens, seed=seed, stop=stop, use_cache=use_cache,
                     tools=tools, tool_choice=tool_choice)
        try:
            comp = (await self._call(request))[0]
        except openai.APIStatusError as e:
            self._settle(key, waiter, error=e)
            if want_lp and rejects(e, "logprob"):
                self.logprobs_supported = False
                return await self._chat(messages, top_logprobs=None, response_format=response_format, form=form,
                                        strict_format=strict_format, **again)
            if response_format and not strict_format and rejects(e, "response_format"):
                return await self._chat(messages, top_logprobs=top_logprobs, response_format=None, **again)
            raise
        except BaseException as e:
            self._settle(key, waiter, error=e)
            raise
        comp.structured_form = form
        if want_lp:
            self.logprobs_supported = comp.top_logprobs is not None or self.logprobs_supported
        if self.cache is not None:
            rec = {k: v for k, v in comp.to_record().items() if k != "cached"}
            self.cache.put(key, rec)
            self._settle(key, waiter, value=rec)
        return comp

    async def sample(self, messages: list[dict[str, Any]], *, seeds: list[int], temperature: float,
                     max_tokens: int = 10, top_logprobs: int | None = None, use_cache: bool = True) -> list[Completion]:
        """One completion per seed (self-consistency samples), in one request where the endpoint takes ``n``.

        Sample ``i`` is cached under the key of the single request with ``seeds[i]``, so a run that
        sends ``n`` and one that sends N requests share their entries. Consecutive seeds
        ``s, s+1, …`` go out as one request with ``seed=s, n=k`` — vLLM gives child ``j`` of such a
        request the seed ``s+j``, the same sample the single request with seed ``s+j`` draws. A
        server that refuses ``n`` or returns fewer choices than asked is asked per sample from then
        on (``caps["n"]`` False, recorded); the choice it did return is kept for the first seed.
        """
        kw = dict(temperature=temperature, max_tokens=max_tokens, top_logprobs=top_logprobs, response_format=None,
                  stop=None)
        out: list[Completion | None] = [None] * len(seeds)
        keys = [cache_key(self._request(messages, seed=s, **kw)) for s in seeds]
        if self.cache is not None and use_cache and self.cache_read:
            for i, k in enumerate(keys):
                hit = self.cache.get(k)
                if hit is not None:
                    self.cache_hits += 1
                    out[i] = _from_cache(hit)
        missing = [i for i, c in enumerate(out) if c is None]
        runs: list[list[int]] = []
        for i in missing:  # runs of consecutive seeds: one request each
            if runs and seeds[i] == seeds[runs[-1][-1]] + 1 and self.use_n:
                runs[-1].append(i)
            else:
                runs.append([i])

        async def one(i: int) -> None:
            out[i] = await self._chat(messages, seed=seeds[i], use_cache=use_cache, **kw)

        async def batch(run: list[int]) -> None:
            if len(run) == 1 or self.gate.caps.get("n") is False:
                await asyncio.gather(*(one(i) for i in run))
                return
            request = {**self._request(messages, seed=seeds[run[0]], **kw), "n": len(run)}
            try:
                comps = await self._call(request)
            except openai.APIStatusError as e:
                if not rejects(e, ""):  # whatever it refused, the single requests will show it again
                    raise
                self.gate.caps["n"] = False
                await asyncio.gather(*(one(i) for i in run))
                return
            got = min(len(comps), len(run))
            self.gate.caps["n"] = len(comps) >= len(run) if self.gate.caps.get("n") is not True else True
            for j in range(got):
                c = comps[j]
                c.batch = {"n": len(run), "index": j, "seed": seeds[run[0]]}
                out[run[j]] = c
                if self.cache is not None and use_cache:
                    self.cache.put(keys[run[j]], {k: v for k, v in c.to_record().items() if k != "cached"})
            if got < len(run):
                self.gate.caps["n"] = False
                await asyncio.gather(*(one(i) for i in run[got:]))

        await asyncio.gather(*(batch(r) for r in runs))
        return out  # type: ignore[return-value]

    def _settle(self, key: str, waiter: asyncio.Future | None, *, value: dict | None = None,
                error: BaseException | None = None) -> None:
        if waiter is None:
            return
        self._pending.pop(key, None)
        if waiter.done():
            return
        if error is not None:
            waiter.set_exception(error if isinstance(error, Exception) else RuntimeError("request cancelled"))
            waiter.exception()  # retrieved: no "never retrieved" warning when nobody waited
        else:
            waiter.set_result(value)

    async def embed(self, texts: list[str], *, model: str | None = None) -> tuple[list[Any], dict[str, Any]]:
        """Embed ``texts`` in one ``/embeddings`` request, under the same gate, retries and timeout as
        chat completions.

        Returns:
            The ``embedding`` of each input in input order (one vector, or a list of per-token vectors
            from a server that does not pool), and facts of the reply (model, tokens, latency, attempts).
        """
        request = {"model": model or self.model, "input": list(texts), "encoding_format": "float"}
        resp, latency, attempts = await self._post(request, "embeddings")
        data = sorted(_get(resp, "data"), key=lambda d: _get(d, "index") or 0)
        if len(data) != len(texts):
            raise EmptyResponse(f"{self.base_url}/embeddings returned {len(data)} vectors for {len(texts)} inputs")
        self.calls += 1
        usage = _get(resp, "usage")
        return [_get(d, "embedding") for d in data], {
            "model": _get(resp, "model") or request["model"], "latency_s": latency, "attempts": attempts,
            "prompt_tokens": _get(usage, "prompt_tokens")}

    async def _call(self, request: dict[str, Any]) -> list[Completion]:
        """Send one request (retried on transient faults); one completion per returned choice."""
        resp, latency, attempts = await self._post(request, "chat/completions")
        self.calls += 1
        usage = _get(resp, "usage")
        choices = sorted(_get(resp, "choices"), key=lambda c: _get(c, "index") or 0)
        shares = _token_shares(_get(usage, "completion_tokens"), choices)
        out = []
        for j, choice in enumerate(choices):
            message = _get(choice, "message")
            text = (_get(message, "content") or "") if message else ""
            reasoning = (_get(message, "reasoning_content") or _get(message, "reasoning")) if message else None
            r_tokens, r_source = _reasoning_tokens(usage, text, reasoning, len(choices))
            out.append(Completion(
                text=text,
                model=_get(resp, "model") or self.model,
                # every sample's prompt is the request's (as if sent alone: runs with and without n cost
                # the same in the records); the completion tokens are split by characters
                prompt_tokens=_get(usage, "prompt_tokens"),
                completion_tokens=shares[j],
                latency_s=latency,
                attempts=attempts,
                finish_reason=_get(choice, "finish_reason"),
                top_logprobs=_first_token_alternatives(choice),
                request=request,
                reasoning=reasoning or None,
                reasoning_tokens=r_tokens,
                reasoning_tokens_source=r_source,
                tool_calls=_tool_calls(message),
            ))
        return out

    async def _post(self, request: dict[str, Any], path: str) -> tuple[Any, float, int]:
        """POST ``request`` to ``path`` of the least-busy URL, retried on transient faults; returns
        (reply, latency of the attempt that answered, attempts)."""
        tries = _Tries()
        try:
            # The first attempt goes straight out: tenacity's per-call set-up (a retry state, a
            # thread-local, wrapped callbacks) costs about as much CPU as the HTTP request itself,
            # and nearly every request succeeds first time. Retries, when needed, are tenacity's.
            try:
                resp, latency = await self._attempt(request, tries, path)
            except Exception as first:
                if not _retryable(first) or self.max_retries < 1:
                    raise
                await asyncio.sleep(self._wait.delay(1, first))
                async for attempt in AsyncRetrying(stop=stop_after_attempt(self.max_retries),
                                                   wait=self._wait.after_first, reraise=True,
                                                   retry=retry_if_exception(_retryable)):
                    with attempt:
                        resp, latency = await self._attempt(request, tries, path)
        except Exception as e:
            if not _retryable(e):
                raise
            what = f"{type(e).__name__}: {str(e)[:200]}"
            msg = (f"{tries.last_url}/{path} failed after {tries.n} attempt(s) (max_retries="
                   f"{self.max_retries}); last fault {what}")
            kind = EndpointUnreachable if isinstance(e, (openai.APIConnectionError, httpx.TransportError)) \
                else RequestFailed
            raise kind(msg, url=tries.last_url or self.base_url, attempts=tries.n) from e
        return resp, latency, tries.n

    async def _attempt(self, request: dict[str, Any], tries: "_Tries", path: str = "chat/completions"
                       ) -> tuple[Any, float]:
        """One attempt on the least-busy URL (avoiding the one that just failed); the slot is held
        only while the request is on the wire."""
        tries.n += 1
        url = await self.gate.acquire(avoid=tries.last_url)
        tries.last_url = url
        try:
            t0 = time.perf_counter()
            resp = await self._send(url, request, path)
            latency = time.perf_counter() - t0
            field = "choices" if path == "chat/completions" else "data"
            if not _get(resp, field):
                raise EmptyResponse(f"{url} returned no {field}")
            return resp, latency
        except BaseException as e:
            if _retryable(e):
                self.failed_attempts += 1
            raise
        finally:
            self.gate.release(url)

    async def _send(self, url: str, request: dict[str, Any], path: str = "chat/completions") -> Any:
        """One attempt: the parsed reply (a dict, or the SDK's object), or the SDK's exception types."""
        if self.http == "openai":
            if url not in self._clients:
                self._clients[url] = openai.AsyncOpenAI(base_url=url, api_key=self._api_key, timeout=self.timeout,
                                                        max_retries=0)
            if path == "embeddings":
                return await self._clients[url].embeddings.create(**request)
            return await self._clients[url].chat.completions.create(**request)
        import aiohttp

        endpoint = f"{url}/{path}"
        session, proxy = await self._session(url)
        try:
            async with session.post(endpoint, data=_dumps(request), proxy=proxy) as r:
                raw = await r.read()
                status = r.status
                headers = dict(r.headers) if status >= 400 else {}
        except asyncio.TimeoutError:
            raise openai.APITimeoutError(request=httpx.Request("POST", endpoint)) from None
        except (aiohttp.ClientError, OSError) as e:
            raise openai.APIConnectionError(message=f"Connection error: {type(e).__name__}: {e}",
                                            request=httpx.Request("POST", endpoint)) from None
        if status >= 400:
            raise _status_error(status, headers, raw, endpoint)
        data = _loads(raw)
        if not isinstance(data, dict):
            raise EmptyResponse(f"{url} returned {type(data).__name__}, not a completion object")
        return data

    async def _session(self, url: str):
        """One aiohttp session per URL and event loop (a session cannot outlive its loop), kept on the
        gate and shared by every client of the endpoint; returns it with the proxy for the URL.

        A suspended async generator holds each session: ``asyncio.run`` finalizes async generators
        before it closes its loop, which closes the session even when nobody calls :meth:`aclose`
        (e.g. ``run_sync(llm.chat(...))`` called several times).
        """
        import aiohttp

        loop = asyncio.get_running_loop()
        key = (url, self._api_key, self.timeout)
        held = self._sessions.get(key)
        if held is None or held[0] is not loop or held[1].closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),  # the gate bounds requests in flight
                # trust_env would look up proxy variables and ~/.netrc on a worker thread for every
                # request (two thread hops each): the proxy is looked up once per URL instead
                timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=False,
                headers={"Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"})
            keeper = _close_at_loop_end(session)
            await keeper.__anext__()
            self._sessions[key] = held = (loop, session, keeper, _env_proxy(url))
        return held[1], held[3]

    async def aclose(self) -> None:
        for c in self._clients.values():
            await c.close()
        self._clients.clear()
        loop = asyncio.get_running_loop()
        for key, (owner, session, keeper, _) in list(self._sessions.items()):
            if owner is loop:
                await keeper.aclose()
            self._sessions.pop(key, None)


try:  # orjson (a chromadb dependency) encodes and decodes request bodies several times faster
    import orjson

    _dumps, _loads = orjson.dumps, orjson.loads  # orjson.JSONDecodeError subclasses json.JSONDecodeError
except ImportError:  # pragma: no cover
    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    _loads = json.loads


def _env_proxy(url: str) -> str | None:
    """The proxy the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY…) names for ``url``, or None."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


async def _close_at_loop_end(session):
    try:
        yield
    finally:
        await session.close()


def default_http() -> str:
    """aiohttp (several times less CPU per request than the SDK's httpx stack) when it is installed;
    ``RAGSAFE_HTTP=openai`` sends requests through the OpenAI SDK instead."""
    from ragsafe import config

    choice = (config.env("RAGSAFE_HTTP") or "").strip().lower()
    if choice:
        return choice
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return "openai"
    return "aiohttp"


def _get(obj: Any, name: str) -> Any:
    """A field of a reply parsed as JSON (dict) or by the SDK (object)."""
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _first_token_alternatives(choice: Any) -> dict[str, float] | None:
    content = _get(_get(choice, "logprobs"), "content")
    if not content:
        return None
    for tok in content:
        token = _get(tok, "token") or ""
        if token.strip():
            alts = {_get(a, "token"): _get(a, "logprob") for a in (_get(tok, "top_logprobs") or [])}
            alts.setdefault(token, _get(tok, "logprob"))
            return alts
    return None


STRUCTURED_FORMS = ("json_schema", "json_object_schema")
"""The ways a JSON Schema can ride on a request, tried in this order until the endpoint accepts one:
``{"type": "json_schema", "json_schema": {"name", "schema"}}`` (OpenAI's form; vLLM enforces it)
and ``{"type": "json_object", "schema": …}`` (llama.cpp's; vLLM accepts it and ignores the schema,
llama-cpp-python's server turns it into a grammar and refuses the first form)."""


def schema_of(response_format: dict | None) -> dict | None:
    """The JSON Schema a ``response_format`` carries, in either form, or None."""
    if not response_format:
        return None
    if response_format.get("type") == "json_object":
        return response_format.get("schema")
    if response_format.get("type") == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema")
    return None


def structured_format(form: str, schema: dict, original: dict | None = None) -> dict:
    """``schema`` as the ``response_format`` of ``form`` (see :data:`STRUCTURED_FORMS`)."""
    if form == "json_schema":
        name = ((original or {}).get("json_schema") or {}).get("name") or "ragsafe_reply"
        return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    if form == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    raise ValueError(f"structured form {form!r}: choose one of {STRUCTURED_FORMS}")


def _reasoning_tokens(usage: Any, text: str, reasoning: str | None, n_choices: int) -> tuple[int | None, str | None]:
    """Reasoning tokens of one choice: the server's count when it gives one, else the completion
    tokens split by the characters of reasoning and answer (a ``<think>`` block counts as reasoning)."""
    import re

    details = _get(usage, "completion_tokens_details")
    server = _get(details, "reasoning_tokens")
    if server is not None and n_choices == 1:
        return int(server), "server"
    think = "".join(re.findall(r"<(?:think|thinking|reasoning)>(.*?)(?:</(?:think|thinking|reasoning)>|\Z)",
                               text or "", flags=re.S | re.I))
    r_chars = len(reasoning or "") + len(think)
    total = _get(usage, "completion_tokens")
    if not r_chars or total is None or n_choices != 1:
        return None, None
    answer_chars = max(len(text or "") - len(think), 0)
    est = round(total * r_chars / (r_chars + answer_chars))
    return min(est, total - 1) if answer_chars and total else est, "estimated"  # an answer is >= 1 token


def _token_shares(total: int | None, choices: list) -> list[int | None]:
    """``total`` completion tokens of a request split over its choices by the characters of each."""
    if len(choices) == 1 or total is None:
        return [total] * len(choices)
    sizes = [len(_get(_get(c, "message"), "content") or "") + 1 for c in choices]
    out = [total * z // sum(sizes) for z in sizes]
    out[-1] += total - sum(out)
    return out


def _tool_calls(message: Any) -> list[dict[str, Any]] | None:
    calls = _get(message, "tool_calls") if message else None
    if not calls:
        return None
    out = []
    for c in calls:
        fn = _get(c, "function") or {}
        out.append({"id": _get(c, "id"), "name": _get(fn, "name"), "arguments": _get(fn, "arguments")})
    return out


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
