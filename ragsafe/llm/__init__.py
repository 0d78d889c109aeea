"""The model layer: OpenAI-compatible client, request gate, response cache, embedded server, catalogue."""

from ragsafe.llm.client import LLM, Completion, EndpointUnreachable, Gate, LogprobsUnsupported, RequestFailed

__all__ = ["LLM", "Completion", "EndpointUnreachable", "Gate", "LogprobsUnsupported", "RequestFailed"]
