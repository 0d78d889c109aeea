"""A loopback OpenAI-compatible server that injects faults, for tests and benchmarks.

It serves ``GET /v1/models``, ``POST /v1/chat/completions`` and ``GET /v1/stats`` (its counters,
for a separate process) over raw asyncio streams (HTTP/1.1
keep-alive), so every fault is under exact control: 429 with ``Retry-After``, 500, 503, dropped
connections, timeouts (the server sleeps past the client's timeout), malformed JSON, empty
``choices`` and truncated bodies or streams. Answers are a pure function of the request (model,
messages, temperature, seed), so a run through faults must give the same letters as a fault-free
run for every request that got an answer.

It binds 127.0.0.1 only. Use it in-process (a background thread with its own event loop)::

    with FaultServer(latency=0.05, fault_rate=0.2) as srv:
        LLM(srv.base_url, "fake")

or as a separate process (benchmarks: the server then has its own core)::

    python tests/fault_server.py --latency 0.05 --port-file PATH
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import random
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

FAULT_KINDS = ("429", "500", "503", "drop", "timeout", "malformed", "empty", "truncate")

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


def request_key(body: dict) -> str:
    """What determines an answer: model, messages and decoding params (never headers)."""
    keep = {k: body.get(k) for k in ("model", "messages", "temperature", "seed", "max_tokens")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def default_reply(body: dict) -> str:
    """A letter A–D chosen by a hash of the request: deterministic, and varied across questions."""
    return "ABCD"[int(request_key(body)[:8], 16) % 4]


FLAVORS = (None, "vllm", "llamacpp")
"""How the server treats the fields OpenAI-compatible servers disagree on:

- ``None``: takes every ``response_format`` and passes it to the reply function; ``n`` ignored.
- ``"vllm"``: enforces ``{"type": "json_schema", ...}``; takes ``{"type": "json_object", "schema": ...}``
  and ignores the schema; ``n`` returns n choices, choice ``j`` drawn with seed ``seed + j`` (as
  vLLM's parallel sampling does); ``tools`` with any ``tool_choice``; ``/v1/models`` gives
  ``max_model_len``.
- ``"llamacpp"``: refuses ``json_schema`` with llama-cpp-python's 500 "validation error";
  enforces the schema of ``json_object``; ignores ``n`` (one choice); tool calls only for a named
  ``tool_choice``.
"""


def enforced_schema(body: dict, flavor: str | None) -> dict | None:
    """The JSON Schema this flavor of server would constrain the reply to, or None."""
    rf = body.get("response_format") or {}
    if rf.get("type") == "json_schema" and flavor != "llamacpp":
        return (rf.get("json_schema") or {}).get("schema")
    if rf.get("type") == "json_object" and flavor != "vllm":
        return rf.get("schema")
    return None


class FaultServer:
    """OpenAI-compatible fake with fixed latency and injected faults.

    Args:
        latency: seconds every answered request waits before replying (no compute).
        fault_rate: probability that a request gets a fault instead of an answer.
        kinds: which faults to draw from (uniformly); default all of :data:`FAULT_KINDS`.
        script: outcomes served first, in order (e.g. ``["503", "ok"]``); then the random draw.
        retry_after: value of the ``Retry-After`` header sent with 429.
        hang: seconds a "timeout" fault sleeps before closing (set it above the client's timeout).
        seed: seed of the fault draw.
        reply: function of the request body that returns the completion text.
        models: model ids listed by ``/v1/models``.
        status: a fixed HTTP status for every completion request (e.g. 400), overriding the rest.
        max_requests: requests served before the server answers 503 to everything (a bound).
        reject_logprobs: answer 400 to requests that ask for logprobs (as some servers do).
        record: keep every answered body and per-key counts (tests read them); the separate-process
            mode turns this off so the benchmark's instrument does as little work as possible.
        reject: function of the request body returning ``(status, message)`` to refuse that request
            as a real server would (e.g. ``(400, "This model's maximum context length is 2048 tokens")``),
            or None to serve it.
        flavor: None, "vllm" or "llamacpp" (see :data:`FLAVORS`). The reply function may return a
            dict ``{"content", "reasoning", "tool_calls", "finish_reason"}`` instead of text; it
            sees the schema the flavor enforces as ``body["_enforced_schema"]``.
        reject_n: answer 400 to requests with ``n`` > 1.
    """

    def __init__(self, *, latency: float = 0.0, fault_rate: float = 0.0, kinds: tuple[str, ...] = FAULT_KINDS,
                 script: list[str] | None = None, retry_after: str = "0", hang: float = 5.0, seed: int = 0,
                 reply: Callable[[dict], str] = default_reply, models: tuple[str, ...] = ("fake",),
                 status: int | None = None, max_requests: int = 1_000_000, host: str = "127.0.0.1",
                 port: int = 0, reject_logprobs: bool = False, record: bool = True,
                 reject: Callable[[dict], tuple[int, str] | None] | None = None, flavor: str | None = None,
                 reject_n: bool = False) -> None:
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; valid: {FAULT_KINDS}")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fault server binds loopback only")
        self.latency = latency
        self.fault_rate = fault_rate
        self.kinds = tuple(kinds)
        self.script = list(script or [])
        self.retry_after = retry_after
        self.hang = hang
        self.rng = random.Random(seed)
        self.reply = reply
        self.models = models
        self.status = status
        self.reject_logprobs = reject_logprobs
        self.reject = reject
        if flavor not in FLAVORS:
            raise ValueError(f"flavor={flavor!r}: choose one of {FLAVORS}")
        self.flavor = flavor
        self.reject_n = reject_n
        self.record = record
        self.max_requests = max_requests
        self.host = host
        self.port = port
        self.requests = 0
        """Completion requests received (every attempt, faulted or not)."""
        self.answered = 0
        """Completion requests answered with a well-formed completion."""
        self.faults: collections.Counter[str] = collections.Counter()
        self.by_key: collections.Counter[str] = collections.Counter()
        """Well-formed answers per request key (see :func:`request_key`)."""
        self.bodies: list[dict] = []
        self.max_in_flight = 0
        self.connections = 0
        """TCP connections accepted."""
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task] = set()
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = self.answered = 0
            self.faults.clear()
            self.by_key.clear()
            self.bodies.clear()
            self.max_in_flight = 0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "FaultServer":
        ready = threading.Event()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

        self._thread = threading.Thread(target=main, name="fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def serve_forever(self) -> None:
        """Run in the current event loop (the separate-process mode)."""
        await self._start()
        async with self._server:
            await self._server.serve_forever()

    # -- HTTP ----------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                keep = await self._handle(method, path, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self._tasks.discard(task)
            try:
                writer.close()
            except Exception:  # noqa: BLE001  (the peer is gone already)
                pass

    @staticmethod
    async def _send(writer, status: int, body: bytes, *, headers: dict[str, str] | None = None,
                    content_type: str = "application/json", length: int | None = None) -> None:
        hdr = {"Content-Type": content_type, "Content-Length": str(len(body) if length is None else length),
               **(headers or {})}
        head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdr.items()) + "\r\n"
        writer.write(head.encode("latin-1") + body)
        await writer.drain()

    def _draw(self) -> str:
        with self._lock:
            if self.script:
                return self.script.pop(0)
            if self.fault_rate > 0 and self.rng.random() < self.fault_rate:
                return self.rng.choice(self.kinds)
        return "ok"

    async def _handle(self, method: str, path: str, raw: bytes, writer) -> bool:
        if method == "GET" and path.rstrip("/").endswith("/models"):
            extra = {"max_model_len": 4096} if self.flavor == "vllm" else {}
            data = {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "fake", **extra}
                                               for m in self.models]}
            await self._send(writer, 200, json.dumps(data).encode())
            return True
        if method == "GET" and path.rstrip("/").endswith("/stats"):
            with self._lock:
                data = {"requests": self.requests, "answered": self.answered, "faults": dict(self.faults),
                        "max_in_flight": self.max_in_flight}
            await self._send(writer, 200, json.dumps(data).encode())
            return True
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await self._send(writer, 404, b'{"error": {"message": "not found"}}')
            return True
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            await self._send(writer, 400, b'{"error": {"message": "request body is not JSON"}}')
            return True
        with self._lock:
            self.requests += 1
            n = self.requests
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await self._complete(body, writer, over_bound=n > self.max_requests)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _complete(self, body: dict, writer, *, over_bound: bool) -> bool:
        if over_bound:
            await self._send(writer, 503, b'{"error": {"message": "request bound reached"}}')
            return True
        if self.status is not None:
            self._count(str(self.status))
            await self._send(writer, self.status,
                             json.dumps({"error": {"message": f"scripted status {self.status}",
                                                   "type": "invalid_request_error"}}).encode())
            return True
        refused = self.reject(body) if self.reject else None
        if refused:
            status, message = refused
            self._count(str(status))
            await self._send(writer, status, json.dumps({"error": {"message": message, "type":
                                                                   "invalid_request_error"}}).encode())
            return True
        if self.reject_logprobs and body.get("logprobs"):
            await self._send(writer, 400, b'{"error": {"message": "logprobs are not supported by this server"}}')
            return True
        rf = body.get("response_format") or {}
        if self.flavor == "llamacpp" and rf.get("type") not in (None, "text", "json_object"):
            msg = ("1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
                   "'msg': \"Input should be 'text' or 'json_object'\"}")
            await self._send(writer, 500, json.dumps({"error": {"message": msg, "type": "internal_server_error"}})
                             .encode())
            return True
        if self.reject_n and (body.get("n") or 1) > 1:
            await self._send(writer, 400, b'{"error": {"message": "n > 1 is not supported by this server"}}')
            return True
        outcome = self._draw()
        if outcome != "ok":
            self._count(outcome)
        if self.latency:
            await asyncio.sleep(self.latency)
        if outcome in ("429", "500", "503"):
            hdr = {"Retry-After": self.retry_after} if outcome == "429" else None
            await self._send(writer, int(outcome), json.dumps({"error": {"message": f"injected {outcome}"}}).encode(),
                             headers=hdr)
            return True
        if outcome == "drop":
            return False
        if outcome == "timeout":
            await asyncio.sleep(self.hang)
            return False
        if outcome == "malformed":
            await self._send(writer, 200, b'{"id": "x", "choices": [{"index": 0, "message": {"role": "assi')
            return True
        stream = bool(body.get("stream"))
        schema = enforced_schema(body, self.flavor)
        n = int(body.get("n") or 1) if self.flavor == "vllm" else 1
        replies = []
        for j in range(n):
            child = {**body, "_enforced_schema": schema} if schema is not None else dict(body)
            if n > 1:
                child.pop("n", None)
                child["seed"] = (body.get("seed") or 0) + j
            replies.append(self.reply(child))
        text = replies[0] if isinstance(replies[0], str) else (replies[0].get("content") or "")
        if outcome == "empty":
            payload = self._completion(body, text) | {"choices": []}
            await self._send(writer, 200, json.dumps(payload).encode())
            return True
        if stream:
            return await self._stream(body, text, writer, truncate=outcome == "truncate")
        payload = json.dumps(self._completion(body, replies)).encode()
        if outcome == "truncate":
            await self._send(writer, 200, payload[: len(payload) // 2], length=len(payload))
            return False
        self._answered(body)
        await self._send(writer, 200, payload)
        return True

    def _answered(self, body: dict) -> None:
        with self._lock:
            self.answered += 1
            if self.record:
                self.by_key[request_key(body)] += 1
                self.bodies.append(body)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    async def _stream(self, body: dict, text: str, writer, *, truncate: bool) -> bool:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model", "fake")}
        events = [base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ch},
                                       "finish_reason": None}]} for ch in text]
        events.append(base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        blob = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        if truncate:
            await self._send(writer, 200, blob[: len(blob) // 2], content_type="text/event-stream", length=len(blob))
            return False
        self._answered(body)
        await self._send(writer, 200, blob, content_type="text/event-stream")
        return True

    def _completion(self, body: dict, replies: list) -> dict[str, Any]:
        choices, out_tokens = [], 0
        for j, rep in enumerate(replies if isinstance(replies, list) else [replies]):
            rep = {"content": rep} if isinstance(rep, str) else dict(rep)
            text = rep.get("content")
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if rep.get("reasoning") is not None:  # vLLM's reasoning parsers: the field beside the content
                message["reasoning_content"] = rep["reasoning"]
            if rep.get("tool_calls"):
                message["tool_calls"] = [{"id": f"call_{j}_{i}", "type": "function",
                                          "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}}
                                         for i, c in enumerate(rep["tool_calls"])]
            finish = rep.get("finish_reason") or ("tool_calls" if rep.get("tool_calls") else "stop")
            choice: dict[str, Any] = {"index": j, "message": message, "finish_reason": finish}
            if body.get("logprobs"):
                tok = (text or "")[:1] or " "
                alts = [{"token": tok, "logprob": -0.05, "bytes": None}] + [
                    {"token": L, "logprob": -3.0 - i, "bytes": None} for i, L in enumerate("ABCD") if L != tok]
                choice["logprobs"] = {"content": [{"token": tok, "logprob": -0.05, "bytes": None,
                                                   "top_logprobs": alts[: int(body.get("top_logprobs") or 1)]}]}
            choices.append(choice)
            out_tokens += max(1, len(text or "") // 4) + len(rep.get("reasoning") or "") // 4
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4
        usage: dict[str, Any] = {"prompt_tokens": prompt_tokens, "completion_tokens": out_tokens,
                                 "total_tokens": prompt_tokens + out_tokens}
        return {"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "fake"), "choices": choices, "usage": usage}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="loopback OpenAI-compatible fake server with fault injection")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", default=None, help="write the bound port here once listening")
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--kinds", default=",".join(FAULT_KINDS))
    ap.add_argument("--max-seconds", type=float, default=3600.0, help="exit after this long (a bound)")
    ap.add_argument("--flavor", default=None, choices=["vllm", "llamacpp"], help="server behaviour (see FLAVORS)")
    a = ap.parse_args(argv)
    srv = FaultServer(latency=a.latency, fault_rate=a.fault_rate, kinds=tuple(a.kinds.split(",")), port=a.port,
                      record=False, flavor=a.flavor)

    async def run() -> None:
        await srv._start()
        if a.port_file:
            Path(a.port_file).write_text(str(srv.port))
        print(f"fault server at {srv.base_url}", flush=True)
        try:
            await asyncio.wait_for(srv._server.serve_forever(), a.max_seconds)
        except asyncio.TimeoutError:
            pass

    try:  # the instrument should cost as little as possible: uvloop when installed (chromadb brings it)
        import uvloop
    except ImportError:
        asyncio.run(run())
    else:
        uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
