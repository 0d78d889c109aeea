"""Settings and the one place that reads environment variables.

Environment:
    RAGSAFE_HOME: root for the model cache, Chroma data and response caches
        (default ``~/.cache/ragsafe``).
    RAGSAFE_SERVER_THREADS: CPU threads for the embedded llama.cpp server (default: all cores).
    The API key of a remote endpoint is read from the variable named by ``--api-key-env``;
    its value is never written to a run record, cache or log.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ragsafe.defaults import DEFAULT_MODEL


class ConfigError(ValueError):
    """A setting is missing or invalid. The message names the key and the fix."""


class DiskFull(OSError):
    """The disk filled up while ragsafe wrote a record or a cache entry. Nothing torn is left behind:
    the run stops, and the same command resumes it once there is space."""

    def __init__(self, path: str | Path, what: str) -> None:
        super().__init__(errno.ENOSPC, f"disk full while writing {what} to {path}: free some space (or point "
                         "RAGSAFE_HOME / --out at a larger disk), then run the same command to resume; "
                         "records written so far are kept whole")
        self.path = str(path)

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(e: BaseException) -> bool:
    """ENOSPC or EDQUOT (a quota), or SQLite's SQLITE_FULL."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    return getattr(e, "sqlite_errorcode", None) == 13  # SQLITE_FULL


def home() -> Path:
    """Root folder for everything ragsafe caches."""
    return Path(os.environ.get("RAGSAFE_HOME") or Path.home() / ".cache" / "ragsafe")


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def read_api_key(var: str | None) -> str:
    """Return the API key held by environment variable ``var`` (a placeholder when none is needed)."""
    if not var:
        return "not-needed"
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"--api-key-env names {var!r}, but that environment variable is empty or unset; "
                          f"export {var}=... or drop --api-key-env")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class EndpointConfig:
    """Where the LLM lives. `base_url="local"` means: start the embedded llama.cpp server."""

    base_url: str = "local"
    """OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1), or "local" for the embedded server."""
    model: str = DEFAULT_MODEL
    """Model id sent to the server; for "local", the name of an embedded model (`ragsafe models`)."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the API key (the key itself is never stored)."""
    timeout: float = 120.0
    """Per-request timeout in seconds."""
    max_retries: int = 4
    """Retries on connection errors, timeouts, 429 and 5xx (never on other 4xx)."""
    context_window: int | None = None
    """Model context size in tokens (embedded server: n_ctx it is started with)."""

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError(f"timeout={self.timeout}: must be > 0 seconds")
        if self.max_retries < 0:
            raise ConfigError(f"max_retries={self.max_retries}: must be >= 0")


ANSWER_MODES = ("generate", "letter_logprobs")
ANSWER_BUDGET = 10
"""The paper's answer budget in tokens (the letter only)."""
REASONING_BUDGET = 4096
"""The paper's answer budget for reasoning models (they think before the letter)."""


def answer_budget(reasoning: bool, max_tokens: int | None = None) -> int:
    """The answer call's token budget: ``max_tokens`` when given, else the paper's for the model kind."""
    if max_tokens is not None:
        return max_tokens
    return REASONING_BUDGET if reasoning else ANSWER_BUDGET


@dataclasses.dataclass(frozen=True, kw_only=True)
class AnswerPolicy:
    """How a graph asks for its answer: decoding settings of a run, apart from where the model lives."""

    answer_mode: str = "generate"
    """"generate" (free text, strict letter parse: the paper's) or "letter_logprobs"."""
    max_tokens: int = 10
    """Completion budget of the answer call (the paper: 10; reasoning models need ~4096)."""
    temperature: float = 0.0
    """Sampling temperature of the answer call (the paper: 0, greedy)."""
    seed: int = 0
    """Sampling seed passed to the server where it supports one."""
    reasoning: bool = False
    """The model reasons before answering (its endpoint setting ``reasoning: true``): the budget defaults
    to the paper's 4096 instead of 10 (see :func:`answer_budget`); thinking is stripped before parsing."""

    def __post_init__(self) -> None:
        if self.answer_mode not in ANSWER_MODES:
            raise ConfigError(f"answer_mode={self.answer_mode!r}: choose 'generate' or 'letter_logprobs'")
        if self.max_tokens < 1:
            raise ConfigError(f"max_tokens={self.max_tokens}: must be >= 1")

    def identity(self) -> dict[str, Any]:
        """The fields hashed into a run's identity (temperature only when it is not the paper's 0, so
        folders made before the policy had its own object keep their names)."""
        out: dict[str, Any] = {"answer_mode": self.answer_mode, "max_tokens": self.max_tokens, "seed": self.seed}
        if self.temperature != 0.0:
            out["temperature"] = self.temperature
        if self.reasoning:
            out["reasoning"] = True
        return out


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON form of ``obj`` (dataclasses included)."""

    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o):
            return dataclasses.asdict(o)
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, (set, frozenset)):
            return sorted(o)
        raise TypeError(f"not hashable as config: {type(o).__name__}")

    blob = json.dumps(obj, sort_keys=True, default=default, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
