"""Defaults that several layers share, written once (a layer that needs one imports it from here).

Nothing here reads the environment (that is :mod:`ragsafe.config`) or imports ragsafe.
"""

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
"""The embedded model a run uses when none is named (`ragsafe models` marks it with *)."""

CHUNK_SIZE = 300
"""Chunk length in embedder tokens."""
CHUNK_OVERLAP = 50
"""Tokens shared by consecutive chunks of a document."""

BOOTSTRAP_B = 1000
"""Bootstrap resamples behind every confidence interval and paired test."""
BOOTSTRAP_SEED = 42
"""Seed of the shared bootstrap index matrix."""
