"""Endpoints: how requests reach one model (URLs, bounds, pacing), started and probed before a run."""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

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
            progress(f"server ready at {base_url}")
        else:
            base_url, ctx_window = cfg.base_url, cfg.context_window
        gate = Gate([base_url, *ep.replicas], ep.concurrency)
        probe = LLM(base_url, cfg.model, api_key=cfgmod.read_api_key(cfg.api_key_env), gate=gate)
        server_models = asyncio.run(probe.check())
        live[ep.name] = {"base_url": base_url, "model": cfg.model, "context_window": ctx_window,
                         "server_models": server_models, "gate": gate}
    return live
