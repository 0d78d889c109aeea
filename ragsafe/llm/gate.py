"""The request gate: bounds requests in flight per base URL and sends each attempt to the least-busy
replica (a retry avoids the URL that just failed). A slot is held only while a request is on the
wire, never during a backoff wait."""

from __future__ import annotations

import asyncio
import collections
import itertools
from typing import Any


class Gate:
    """Request slots of one endpoint, spread over its replica base URLs.

    Each URL takes at most ``per_url`` requests at once (None: no bound). :meth:`acquire` waits
    for a free slot and returns the least-busy URL, preferring one other than ``avoid`` (the URL a
    retry just failed on). Share one gate between the clients of one endpoint (one per seed) so
    the bound holds for the endpoint as a whole.

    Args:
        urls: the endpoint's base URLs (the first is the primary).
        per_url: requests in flight per URL.
    """

    def __init__(self, urls: list[str], per_url: int | None = None) -> None:
        if not urls:
            raise ValueError("a gate needs at least one base URL")
        if per_url is not None and per_url < 1:
            raise ValueError(f"per_url={per_url}: must be >= 1")
        self.urls = [u.rstrip("/") for u in urls]
        self.per_url = per_url
        self.busy = {u: 0 for u in self.urls}
        self.sent = {u: 0 for u in self.urls}
        """Requests sent per URL (every attempt), for the run record."""
        self.peak = 0
        self._turn = itertools.count()
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self.sessions: dict[tuple, tuple[asyncio.AbstractEventLoop, Any, Any, str | None]] = {}
        """aiohttp sessions of the clients using this gate, per (URL, key, timeout), for one event loop."""
        self.caps: dict[str, Any] = {}
        """What the endpoint was found to support, learnt once and shared by its clients:
        ``structured`` (the response_format form it enforces), ``n`` (several choices per request),
        ``tools`` (native tool calls)."""

    def _pick(self, avoid: str | None) -> str | None:
        free = [u for u in self.urls if self.per_url is None or self.busy[u] < self.per_url]
        if not free:
            return None
        if avoid is not None and len(free) > 1:
            free = [u for u in free if u != avoid] or free
        least = min(self.busy[u] for u in free)
        ties = [u for u in free if self.busy[u] == least]
        return ties[next(self._turn) % len(ties)]

    async def acquire(self, avoid: str | None = None) -> str:
        while True:
            url = self._pick(avoid)
            if url is not None:
                self.busy[url] += 1
                self.sent[url] += 1
                self.peak = max(self.peak, sum(self.busy.values()))
                return url
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake()  # it was woken for a slot it will not take: pass the turn on
                else:
                    self._waiters.remove(fut)
                raise

    def release(self, url: str) -> None:
        self.busy[url] -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def in_flight(self) -> int:
        return sum(self.busy.values())
