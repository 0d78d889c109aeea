"""Errors of the model layer: a request that failed after its retries, an endpoint that does not
answer, a server without logprobs, an empty reply; and which faults are worth a retry."""

from __future__ import annotations

import json

import httpx
import openai


class RequestFailed(RuntimeError):
    """A request that still failed after its retries; the message names the URL, fault and attempts."""

    def __init__(self, message: str, *, url: str = "", attempts: int = 0) -> None:
        super().__init__(message)
        self.url = url
        self.attempts = attempts


class EndpointUnreachable(RequestFailed):
    """The endpoint did not answer at all; the message names the URL and how to start a server."""


class LogprobsUnsupported(RuntimeError):
    pass


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError, httpx.TransportError)):
        return True
    if isinstance(exc, openai.APIStatusError):
        # llama-cpp-python's server answers a request its schema rejects with 500 "validation
        # error": the same request fails the same way every time, so it is not retried
        if exc.status_code >= 500 and "validation error" in str(exc).lower():
            return False
        return exc.status_code == 429 or exc.status_code >= 500
    # Malformed bodies from a flaky proxy (bad JSON, empty choices) are transient too.
    return isinstance(exc, (json.JSONDecodeError, EmptyResponse))


class EmptyResponse(RuntimeError):
    pass


def rejects(exc: BaseException, *words: str) -> bool:
    """Whether ``exc`` is the server refusing a request field (one of ``words`` in its message):
    400/422, or the 500 "validation error" llama-cpp-python's server gives for a field it does not know."""
    if not isinstance(exc, openai.APIStatusError):
        return False
    text = str(exc).lower()
    refused = exc.status_code in (400, 422) or (exc.status_code >= 500 and "validation error" in text)
    return refused and any(w in text for w in words)


def _retry_after(exc: BaseException | None) -> float | None:
    if isinstance(exc, openai.APIStatusError) and exc.response is not None:
        value = exc.response.headers.get("retry-after")
        try:
            return min(float(value), 60.0) if value is not None else None
        except ValueError:
            return None
    return None


_STATUS_ERRORS = {400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
                  404: openai.NotFoundError, 409: openai.ConflictError, 422: openai.UnprocessableEntityError,
                  429: openai.RateLimitError}


def _status_error(status: int, headers: dict, raw: bytes, url: str) -> openai.APIStatusError:
    """The exception the OpenAI SDK raises for this status, so callers see one set of types."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    err = body.get("error") if isinstance(body, dict) else None
    message = (err.get("message") if isinstance(err, dict) else err) or raw[:300].decode("utf-8", "replace")
    cls = _STATUS_ERRORS.get(status) or (openai.InternalServerError if status >= 500 else openai.APIStatusError)
    resp = httpx.Response(status, headers=headers, content=raw, request=httpx.Request("POST", url))
    return cls(f"Error code: {status} - {message}", response=resp, body=err if isinstance(err, dict) else body)


NON_RETRYABLE = ("context_overflow", "unknown_model", "auth", "bad_request")
"""Error kinds that no retry will fix: the same request fails the same way every time."""

_FIXES = {
    "context_overflow": "the prompt does not fit the model's context: retrieve fewer chunks (a smaller k, e.g. "
                        "--set standard_rag.k=5), let max_context pack chunks up to the window, or give the model "
                        "a larger context (--n-ctx N for the embedded server; the server's own setting otherwise)",
    "unknown_model": "the server does not serve this model: pass a model id its /v1/models lists (--model)",
    "auth": "the server refused the API key: check the variable named by --api-key-env",
    "bad_request": "the server refuses a parameter of the request: check --max-tokens, --answer-mode and the "
                   "graph's params",
    "unreachable": "no server answers: start it (or check --base-url), then run the same command to resume",
    "transient": "the server kept failing after the retries: check its log, then rerun with --retry-errors",
}


def classify(exc: BaseException) -> tuple[str, int | None, str]:
    """(kind, HTTP status or None, the server's own message) of a request's failure.

    Kinds: ``context_overflow``, ``unknown_model``, ``auth``, ``bad_request`` (see
    :data:`NON_RETRYABLE`), ``unreachable``, ``transient`` (retries ran out), ``other``.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:  # a graph may wrap the client's error
        seen.add(id(e))
        if isinstance(e, (openai.APIStatusError,)):
            break
        if isinstance(e, EndpointUnreachable):
            return "unreachable", None, str(e)
        if isinstance(e, RequestFailed):
            return "transient", None, str(e)
        e = e.__cause__ or e.__context__
    if not isinstance(e, openai.APIStatusError):
        return "other", None, str(exc)
    status = e.status_code
    body = e.body if isinstance(e.body, dict) else {}
    msg = str(body.get("message") or e.message or "")
    low = msg.lower()
    if status in (400, 413, 422) and "context" in low and any(w in low for w in (
            "length", "exceed", "maximum", "too long", "tokens", "window")):
        return "context_overflow", status, msg
    if status == 404 or (status == 400 and "model" in low and any(w in low for w in (
            "not found", "does not exist", "unknown", "not exist", "no such"))):
        return "unknown_model", status, msg
    if status in (401, 403):
        return "auth", status, msg
    if status in (400, 422):
        return "bad_request", status, msg
    return "transient", status, msg


def fix_for(kind: str) -> str:
    """How to fix an error of ``kind`` (see :func:`classify`), for one-line messages."""
    return _FIXES.get(kind, "see the message; fix it and run the same command to resume")
