"""Endpoints: how requests reach one model (URLs, bounds, pacing), started and probed before a run."""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Callable

from ragsafe import config as cfgmod
from ragsafe.config import AnswerPolicy, EndpointConfig
from ragsafe.llm.client import LLM

if TYPE_CHECKING:
    from ragsafe.experiments.plan import RunJob


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """How requests reach one model: URLs, bounds and retry pacing (a sweep may list several)."""

    name: str
    config: EndpointConfig
    policy: AnswerPolicy = AnswerPolicy()
    """How this endpoint's model is asked (a sweep sets max_tokens per endpoint); a run's own copy is
    ``RunConfig.answer``, which its hash covers."""
    replicas: tuple[str, ...] = ()
    """Further base URLs serving the same model; requests are spread over all of them."""
    concurrency: int | None = None
    """Requests in flight per base URL (None: only ``workers`` bounds them)."""
    workers: int = 1
    """Questions in flight for this endpoint (they wait for request slots at the gate)."""
    backoff_initial: float = 0.5
    backoff_max: float = 20.0


def _start_endpoints(jobs: list[RunJob], stack: ExitStack, progress) -> dict[str, dict[str, Any]]:
    """Start the embedded server where an endpoint is "local", make each endpoint's gate, and check
    that every URL answers (within seconds, naming the URL that does not)."""
    from ragsafe.llm.gate import Gate
    live: dict[str, dict[str, Any]] = {}
    for job in jobs:
        ep = job.endpoint
        if ep.name in live:
            continue
        cfg = ep.config
        if cfg.base_url == "local":
            from ragsafe.llm.server import LocalServer

            progress(f"starting the embedded llama.cpp server with {cfg.model} ...")
            srv = stack.enter_context(LocalServer(cfg.model, n_ctx=cfg.context_window))
            base_url, ctx_window = srv.base_url, srv.n_ctx
            progress(f"server ready at {base_url} (n_ctx {srv.n_ctx})")
        else:
            srv = None
            base_url, ctx_window = cfg.base_url, cfg.context_window
        gate = Gate([base_url, *ep.replicas], ep.concurrency)
        probe = LLM(base_url, cfg.model, api_key=cfgmod.read_api_key(cfg.api_key_env), gate=gate)
        server_models = asyncio.run(probe.check())
        if ctx_window is None:  # vLLM's model list gives the context size
            ctx_window = (probe.model_info.get(cfg.model) or {}).get("max_model_len")
        live[ep.name] = {"base_url": base_url, "model": cfg.model, "context_window": ctx_window,
                         "server_models": server_models, "gate": gate, "server": srv}
    return live


class ServerWatch:
    """Keeps the embedded server of one endpoint up during a run.

    :meth:`watch` checks every ``poll`` seconds whether the process still runs and restarts it on
    the same port (a crash, an OOM kill); a question whose request failed because the server was
    gone calls :meth:`recover` and is asked again once the server is back. After
    ``max_restarts`` restarts the next death raises :class:`ServerDied`: the run stops with what
    it finished kept, and the same command resumes it.
    """

    def __init__(self, name: str, server, *, max_restarts: int = 3, poll: float = 0.5,
                 progress: Callable[[str], None] = print) -> None:
        self.name = name
        self.server = server
        self.max_restarts = max_restarts
        self.poll = poll
        self.progress = progress
        self.generation = 0
        """Bumped by every restart: a question that saw an older generation fail is asked again."""
        self._lock: asyncio.Lock | None = None

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            if not self.server.alive():
                await self.recover(self.generation)

    async def recover(self, seen: int) -> bool:
        """After a failed request that began in generation ``seen``: True when it is worth asking again
        (the server was restarted since, or now); False when the server runs and the failure is its own."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.generation != seen:
                return True
            if self.server.alive():
                return False
            how = self.server.exit_status()
            log = self.server.log_path
            if self.server.restarts >= self.max_restarts:
                raise ServerDied(f"the embedded server of endpoint {self.name!r} died again ({how}) after "
                                 f"{self.server.restarts} restart(s); the run stops here. Records finished so far "
                                 f"are kept: check its log ({log}; out of memory? try a smaller model or --n-ctx), "
                                 "then run the same command to resume")
            self.progress(f"the embedded server died ({how}); restarting it on the same port "
                          f"({self.server.restarts + 1} of at most {self.max_restarts} restarts; log {log}) ...")
            try:
                await asyncio.to_thread(self.server.restart)
            except Exception as e:  # noqa: BLE001  (ServerError, a missing model: all stop the run)
                raise ServerDied(f"the embedded server died ({how}) and did not start again: {e}") from None
            self.generation += 1
            self.progress(f"server ready again at {self.server.base_url}; questions in flight are asked again")
            return True


class ServerDied(RuntimeError):
    """The embedded server kept dying: the run stopped (finished records kept; the same command resumes)."""