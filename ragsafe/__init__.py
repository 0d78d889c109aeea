"""ragsafe: agentic-RAG experiments for clinical safety research.

Retrieval strategies are LangGraph state machines over a Chroma store; models sit behind any
OpenAI-compatible endpoint; every run is scored with the SaFE-Scale metrics against the
closed-book floor and the clean-evidence ceiling, with paired statistics.

Example:
    >>> from ragsafe import RunConfig, run          # doctest: +SKIP
    >>> run(RunConfig(graphs=["closed_book", "standard_rag[k=3]"], limit=10))  # doctest: +SKIP
"""

from ragsafe.config import ConfigError, EndpointConfig

__version__ = "0.1.0"

__all__ = ["ConfigError", "EndpointConfig", "RunConfig", "run", "load_run", "graph", "metric", "Deps", "State",
           "__version__"]


def __getattr__(name):  # heavy imports (torch, chromadb) only when used
    if name == "RunConfig":
        from ragsafe.experiments.config import RunConfig

        return RunConfig
    if name == "load_run":
        from ragsafe.experiments.frames import load_runs

        return load_runs
    if name == "run":
        from ragsafe.experiments.procs import run

        return run
    if name == "metric":
        from ragsafe.evals.metrics import metric

        return metric
    if name in ("graph", "Deps", "State"):
        from ragsafe import graphs

        return getattr(graphs, name)
    raise AttributeError(name)
