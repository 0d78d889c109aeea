"""Token-window chunking: sizes, overlap, title, stable ids and hashes."""

import pytest
from langchain_core.documents import Document

from ragsafe.corpora.chunking import ChunkParams, chunk_documents


class WordTokenizer:
    """One token per whitespace-separated word, with character offsets (like a fast HF tokenizer)."""

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        import re

        spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        return {"input_ids": list(range(len(spans))), "offset_mapping": spans}


def make(n_words, title="Title"):
    text = " ".join(f"w{i}" for i in range(n_words))
    return Document(page_content=text, metadata={"doc_id": "d1", "title": title})


def test_windows_have_size_and_overlap():
    chunks = chunk_documents([make(25)], WordTokenizer(), ChunkParams(size=10, overlap=3))
    bodies = [c.page_content.split("\n", 1)[1].split() for c in chunks]
    assert [len(b) for b in bodies] == [10, 10, 10, 4]  # starts 0, 7, 14, 21
    # consecutive windows share exactly `overlap` tokens and together cover every token once or more
    for a, b in zip(bodies, bodies[1:]):
        assert a[-3:] == b[:3]
    covered = {w for b in bodies for w in b}
    assert covered == {f"w{i}" for i in range(25)}
    assert bodies[-1][-1] == "w24"


def test_short_document_is_one_chunk_with_title_prepended():
    (c,) = chunk_documents([make(5, title="Subdural haematoma")], WordTokenizer(), ChunkParams(size=10, overlap=3))
    assert c.page_content.startswith("Subdural haematoma\n")
    assert c.metadata["chunk_id"] == "d1#c0" and c.id == "d1#c0"
    assert c.metadata["n_tokens"] == 5


def test_ids_and_hashes_are_stable_and_content_sensitive():
    a = chunk_documents([make(30)], WordTokenizer(), ChunkParams(size=10, overlap=2))
    b = chunk_documents([make(30)], WordTokenizer(), ChunkParams(size=10, overlap=2))
    assert [c.metadata["chunk_id"] for c in a] == [c.metadata["chunk_id"] for c in b]
    assert [c.metadata["content_hash"] for c in a] == [c.metadata["content_hash"] for c in b]
    changed = make(30)
    changed.page_content = changed.page_content.replace("w25", "CHANGED")
    c = chunk_documents([changed], WordTokenizer(), ChunkParams(size=10, overlap=2))
    diff = [x.metadata["chunk_id"] for x, y in zip(a, c) if x.metadata["content_hash"] != y.metadata["content_hash"]]
    assert diff and all(d in ("d1#c2", "d1#c3") for d in diff)


def test_invalid_params_name_the_field():
    with pytest.raises(ValueError, match="overlap"):
        ChunkParams(size=10, overlap=10)
    with pytest.raises(ValueError, match="size"):
        ChunkParams(size=0, overlap=0)


def test_real_tokenizer_counts_300_token_windows():
    from ragsafe.retrievers.embedders import get_embedder

    emb = get_embedder()
    text = " ".join(["pneumothorax"] * 400)
    chunks = chunk_documents([Document(page_content=text, metadata={"doc_id": "p", "title": "T"})],
                             emb.tokenizer, ChunkParams())
    assert len(chunks) >= 2
    assert max(c.metadata["n_tokens"] for c in chunks) == 300
