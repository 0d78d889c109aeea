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
