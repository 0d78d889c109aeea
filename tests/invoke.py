"""Run a registered graph over questions the way the runner does, for end-to-end tests."""

from __future__ import annotations

import asyncio

from ragsafe.graphs import graphs


def invoke_all(deps, name, questions, **params):
    """Build ``name`` with ``params`` and invoke it on every question in one event loop (the client's
    connection pool belongs to the loop that opened it); the final states, in order."""
    spec = graphs.get(name)
    app = spec.build(deps, spec.make_params(params))

    async def go():
        return [await app.ainvoke({"question": q, "queries": [], "trace": []}) for q in questions]

    return asyncio.run(go())
