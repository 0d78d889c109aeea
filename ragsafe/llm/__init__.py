"""The model layer: OpenAI-compatible client, request gate, response cache, embedded server, catalogue."""

from ragsafe.llm.client import LLM, Completion
from ragsafe.llm.errors import EndpointUnreachable, LogprobsUnsupported, RequestFailed
from ragsafe.llm.gate import Gate

__all__ = ["LLM", "Completion", "EndpointUnreachable", "Gate", "LogprobsUnsupported", "RequestFailed"]
